package tuf

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestOnlineKeyLeak plays a leaked timestamp key: its holder gets a client
// to accept timestamp version 1000 (a fast-forward), after which the
// genuine timestamp looks like a rollback. Root version 2 with new online
// keys recovers the client (go-tuf drops cached metadata the new root's
// keys did not sign), and the leaked key signs nothing clients accept.
func TestOnlineKeyLeak(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	leaked := f.onlineKey(metadata.TIMESTAMP)
	genuine := f.readFile(metadataDir, timestampFile)
	f.forgeTimestamp(leaked, 1000, 1)
	f.mustFetch(cache)
	f.writeFile(genuine, metadataDir, timestampFile)
	if _, err := f.fetch(cache); !errors.Is(err, ErrRollback) {
		t.Fatalf("after a fast-forward to version 1000: %v, want ErrRollback", err)
	}

	snap, ts := f.newKeyFile(metadata.SNAPSHOT, "repo/keys"), f.newKeyFile(metadata.TIMESTAMP, "repo/keys")
	ch := RootChange{SnapshotKey: snap, TimestampKey: ts, Expires: f.clock.Now().Add(DefaultRootExpiry)}
	if _, err := f.repo.RotateRoot(ch, []string{f.offline}); err != nil {
		t.Fatal(err)
	}
	if s := f.signOnline(); !s.Snapshot || !s.Timestamp {
		t.Errorf("after new online keys: signed snapshot %v, timestamp %v; want both", s.Snapshot, s.Timestamp)
	}
	f.mustFetch(cache)

	// The new keys' first snapshot is time-versioned (snapshotFloor: the
	// old keys' timestamp no longer verifies); the forgery names it.
	f.forgeTimestamp(leaked, 2000, f.status().Versions[metadata.SNAPSHOT])
	if _, err := f.fetch(cache); !errors.Is(err, ErrUntrusted) {
		t.Errorf("timestamp signed by the replaced key: %v, want ErrUntrusted", err)
	}
}

// TestTargetsKeyRotation replaces the targets key: root version 2 names
// the new key and the targets are re-signed with it; the old key can no
// longer publish.
func TestTargetsKeyRotation(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	next := f.newKeyFile(metadata.TARGETS, "next")
	now := f.clock.Now()
	ch := RootChange{TargetsKeys: []*Key{next}, Expires: now.Add(DefaultRootExpiry), TargetsExpires: now.Add(DefaultTargetsExpiry)}
	if _, err := f.repo.RotateRoot(ch, []string{f.offline}); err != nil {
		t.Fatal(err)
	}
	f.signOnline()
	f.mustFetch(cache)
	if st := f.status(); st.Versions[metadata.TARGETS] != 2 || st.Versions[metadata.ROOT] != 2 {
		t.Errorf("after rotating the targets key: %v, want root 2 and targets 2", st.Versions)
	}

	var missing *MissingKeysError
	if _, err := f.repo.Publish(mustDatabase(t, newVKey(t)), []string{f.offline}, now.Add(DefaultTargetsExpiry)); !errors.As(err, &missing) {
		t.Errorf("publish with the replaced targets key: %v, want MissingKeysError", err)
	}
	if _, err := f.repo.Publish(mustDatabase(t, newVKey(t)), []string{filepath.Join(filepath.Dir(f.dir), "next")}, now.Add(DefaultTargetsExpiry)); err != nil {
		t.Errorf("publish with the new targets key: %v", err)
	}
}

// TestRootChangeChecks refuses a root no threshold can sign.
func TestRootChangeChecks(t *testing.T) {
	f := newFixture(t)
	k := f.newKeyFile(metadata.ROOT, "x")
	for _, ch := range []RootChange{
		{RootKeys: []*Key{k}, RootThreshold: 2, Expires: f.clock.Now()},
		{TargetsThreshold: 3, Expires: f.clock.Now()},
		{},
	} {
		if _, err := f.repo.RotateRoot(ch, []string{f.offline}); err == nil {
			t.Errorf("RotateRoot(%+v) succeeded", ch)
		}
	}
	if st := f.status(); st.Versions[metadata.ROOT] != 1 {
		t.Errorf("refused rotations left root version %d", st.Versions[metadata.ROOT])
	}
}

// TestRotateRootFailingLeavesNoTargets raises the root threshold to 2 of 2
// with one root key at hand, and replaces the targets key: the new root
// cannot be signed. The re-signed targets used to be written before
// signing the root failed, a version naming keys no root lists (reported
// as a problem for ever); now nothing is written.
func TestRotateRootFailingLeavesNoTargets(t *testing.T) {
	dir, offline := filepath.Join(t.TempDir(), "repo"), t.TempDir()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r, err := Init(dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: offline, RootKeys: 2, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := filepath.Glob(filepath.Join(offline, metadata.ROOT+"-*.key"))
	if err != nil || len(keys) != 2 {
		t.Fatalf("root key files %q: %v", keys, err)
	}
	if err := os.Remove(keys[1]); err != nil {
		t.Fatal(err)
	}
	before := mustGlob(t, filepath.Join(dir, metadataDir, "*"))
	next := mustKey(t)
	ch := RootChange{RootThreshold: 2, TargetsKeys: []*Key{next}, Expires: now.Add(DefaultRootExpiry), TargetsExpires: now.Add(DefaultTargetsExpiry)}
	if _, err := r.RotateRoot(ch, []string{offline}); err == nil || !strings.Contains(err.Error(), "not signed by a threshold of its own root keys") {
		t.Fatalf("RotateRoot with 1 of the 2 root keys the new root needs: %v, want a refusal", err)
	}
	if after := mustGlob(t, filepath.Join(dir, metadataDir, "*")); !slices.Equal(after, before) {
		t.Errorf("the failed rotation left metadata %q, want %q as before", after, before)
	}
	if st, err := r.Status(); err != nil || len(st.Problems) != 0 {
		t.Errorf("after the failed rotation: status %+v, %v; want no problem", st, err)
	}
}
