package tuf

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// thresholdFixture is a repository with 1 of 2 targets keys, the second
// kept on another medium, that published a second verifier key (targets
// version 2) which a client fetched.
type thresholdFixture struct {
	*fixture
	media2  string // the second targets key
	newVKey string // what targets version 2 publishes
	cache   string // a client that fetched targets version 2
}

func newThresholdFixture(t *testing.T) *thresholdFixture {
	base := t.TempDir()
	f := &fixture{t: t, dir: filepath.Join(base, "repo"), offline: filepath.Join(base, "offline"),
		clock: &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	f.online = filepath.Join(f.dir, DefaultOnlineKeys)
	repo, err := Init(f.dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: f.offline, TargetsKeys: 2, Now: f.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	f.repo = repo
	h, err := NewHandler(f.dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	f.url = httptestServer(t, h) + "/tuf"
	tf := &thresholdFixture{fixture: f, media2: filepath.Join(base, "media2"), newVKey: newVKey(t), cache: t.TempDir()}
	keys, _ := filepath.Glob(filepath.Join(f.offline, "targets-*.key"))
	os.MkdirAll(tf.media2, 0o700)
	if err := os.Rename(keys[1], filepath.Join(tf.media2, filepath.Base(keys[1]))); err != nil {
		t.Fatal(err)
	}
	f.publish(tf.newVKey)
	if d := f.mustFetch(tf.cache); d.VerifierKeys[0] != tf.newVKey {
		t.Fatalf("client learned %q, want %q", d.VerifierKeys, tf.newVKey)
	}
	return tf
}

// withOnlineKeys adds new online keys to ch, as -rotate-online does.
func (f *thresholdFixture) withOnlineKeys(ch RootChange) RootChange {
	ch.SnapshotKey = f.newKeyFile(metadata.SNAPSHOT, "repo/keys")
	ch.TimestampKey = f.newKeyFile(metadata.TIMESTAMP, "repo/keys")
	return ch
}

// checkClients checks that a cached and a fresh client learn the newest
// verifier key (or fail), never the older one.
func (f *thresholdFixture) checkClients() {
	f.t.Helper()
	for _, cache := range []string{f.cache, f.t.TempDir()} {
		d, err := f.fetch(cache)
		if err == nil && d.VerifierKeys[0] != f.newVKey {
			f.t.Errorf("client (cache %s) learned %q, older than the published %q", cache, d.VerifierKeys, f.newVKey)
		}
	}
}

// TestTargetsThresholdRaise raises the targets threshold without new
// targets keys: the newest targets carry one signature, so a root
// requiring two must be refused (or the targets re-signed when both keys
// are at hand), and the server must never fall back to older targets
// that carry the old verifier key.
func TestTargetsThresholdRaise(t *testing.T) {
	for _, online := range []bool{false, true} {
		t.Run(map[bool]string{false: "threshold", true: "threshold+online"}[online], func(t *testing.T) {
			f := newThresholdFixture(t)
			ch := RootChange{TargetsThreshold: 2, Expires: f.clock.Now().Add(DefaultRootExpiry)}
			if online {
				ch = f.withOnlineKeys(ch)
			}
			if v, err := f.repo.RotateRoot(ch, []string{f.offline}); err == nil {
				t.Errorf("RotateRoot to a targets threshold the newest targets miss wrote root version %d", v)
			}
			if _, err := f.repo.SignOnline([]string{f.online}, f.clock.Now()); err != nil {
				t.Errorf("SignOnline after the refusal: %v", err)
			}
			f.checkClients()

			// With both targets keys at hand the targets are re-signed.
			if _, err := f.repo.RotateRoot(ch, []string{f.offline, f.media2}); err != nil {
				t.Fatalf("RotateRoot with both targets keys: %v", err)
			}
			f.signOnline()
			if st := f.status(); st.Versions[metadata.ROOT] != 2 || st.Versions[metadata.TARGETS] != 3 {
				t.Errorf("after raising the threshold with both keys: versions %v, want root 2 and targets 3", st.Versions)
			}
			f.checkClients()
			if _, err := f.fetch(f.cache); err != nil {
				t.Errorf("cached client: %v", err)
			}
		})
	}
}

// TestSnapshotNeverListsOlderTargets writes, as an older sumd did, a root
// the newest targets do not meet, with new online keys: the snapshot the
// new keys sign must not list the older targets (and its older verifier
// key), though no snapshot verifying under the new root lists the newer.
func TestSnapshotNeverListsOlderTargets(t *testing.T) {
	f := newThresholdFixture(t)
	ch := f.withOnlineKeys(RootChange{TargetsThreshold: 2, Expires: f.clock.Now().Add(DefaultRootExpiry)})
	st, err := f.repo.load()
	if err != nil {
		t.Fatal(err)
	}
	next, err := ch.apply(st.root)
	if err != nil {
		t.Fatal(err)
	}
	rootKeys, err := roleKeys(st.root, metadata.ROOT, []string{f.offline})
	if err != nil {
		t.Fatal(err)
	}
	data, err := signRoot(st.root, next, rootKeys)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.repo.writeVersion(metadata.ROOT, 2, data); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.SignOnline([]string{f.online}, f.clock.Now()); err == nil {
		t.Errorf("SignOnline listed targets version %d below version 2, which a snapshot listed before", f.status().Versions[metadata.TARGETS])
	}
	f.checkClients()
}

// TestRevokedSnapshotKeySetsNoFloor: the snapshot key leaked and was
// replaced (rotate-root -rotate-online); its holder then plants a
// snapshot, signed with it, listing a targets version no targets key
// signed. The older root still verifies that signature, but the re-signer
// must not take it for a snapshot clients held: were it the floor, no
// snapshot could be signed again (publishing cannot reach version 1e15),
// and the clients would fail once the current one expired.
func TestRevokedSnapshotKeySetsNoFloor(t *testing.T) {
	f := newFixture(t)
	leaked := f.onlineKey(metadata.SNAPSHOT)
	snap, ts := f.newKeyFile(metadata.SNAPSHOT, "repo/keys"), f.newKeyFile(metadata.TIMESTAMP, "repo/keys")
	if _, err := f.repo.RotateRoot(RootChange{SnapshotKey: snap, TimestampKey: ts, Expires: f.clock.Now().Add(DefaultRootExpiry)}, []string{f.offline}); err != nil {
		t.Fatal(err)
	}
	f.signOnline()

	forged := metadata.Snapshot(expiry(f.clock.Now(), SnapshotExpiry))
	forged.Signed.Version = 1e12
	forged.Signed.Meta[metadata.TARGETS+".json"] = metadata.MetaFile(1e15)
	data, err := signAndEncode(forged, []*Key{leaked})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.repo.writeVersion(metadata.SNAPSHOT, forged.Signed.Version, data); err != nil {
		t.Fatal(err)
	}

	vkey := newVKey(t)
	if _, err := f.repo.Publish(mustDatabase(t, vkey), []string{f.offline}, f.clock.Now().Add(DefaultTargetsExpiry)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.SignOnline([]string{f.online}, f.clock.Now()); err != nil {
		t.Errorf("SignOnline after a snapshot signed by the revoked key was planted: %v", err)
	}
	if d, err := f.fetch(t.TempDir()); err != nil || d.VerifierKeys[0] != vkey {
		t.Errorf("client learned %v (err %v), want the published %q", d, err, vkey)
	}
}

// TestRevokedSnapshotKeyHidesNoFloor: as TestSnapshotNeverListsOlderTargets,
// and the holder of the replaced snapshot key plants a snapshot of a
// version above every other, listing the older targets (genuine, signed
// under the same root). Only the newest snapshot that verified counted,
// so it hid the one listing the newer targets, and the new keys listed
// the older verifier key.
func TestRevokedSnapshotKeyHidesNoFloor(t *testing.T) {
	f := newThresholdFixture(t)
	leaked := f.onlineKey(metadata.SNAPSHOT)
	ch := f.withOnlineKeys(RootChange{TargetsThreshold: 2, Expires: f.clock.Now().Add(DefaultRootExpiry)})
	st, err := f.repo.load()
	if err != nil {
		t.Fatal(err)
	}
	next, err := ch.apply(st.root)
	if err != nil {
		t.Fatal(err)
	}
	rootKeys, err := roleKeys(st.root, metadata.ROOT, []string{f.offline})
	if err != nil {
		t.Fatal(err)
	}
	data, err := signRoot(st.root, next, rootKeys)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.repo.writeVersion(metadata.ROOT, 2, data); err != nil {
		t.Fatal(err)
	}
	forged := metadata.Snapshot(expiry(f.clock.Now(), SnapshotExpiry))
	forged.Signed.Version = 1e12
	forged.Signed.Meta[metadata.TARGETS+".json"] = metaFile(1, f.readFile(metadataDir, versionedName(1, metadata.TARGETS)))
	if data, err = signAndEncode(forged, []*Key{leaked}); err != nil {
		t.Fatal(err)
	}
	if err := f.repo.writeVersion(metadata.SNAPSHOT, forged.Signed.Version, data); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.SignOnline([]string{f.online}, f.clock.Now()); err == nil {
		t.Errorf("SignOnline listed targets version %d below version 2, which a snapshot listed before", f.status().Versions[metadata.TARGETS])
	}
	f.checkClients()
}
