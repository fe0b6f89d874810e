package tuf

import (
	"errors"
	"path/filepath"
	"testing"

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
