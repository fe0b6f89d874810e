package tuf

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestRotateOnlineAfterPruning: old snapshot files (not the one the
// timestamp names) were removed, as TUF repositories may garbage-collect
// old consistent snapshots; then rotate-root -rotate-online. The new
// snapshot version must not fall below the client's.
func TestRotateOnlineAfterPruning(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	for i := 0; i < 4; i++ {
		f.publish(newVKey(t))
	}
	f.mustFetch(cache)
	held := cachedVersion(t, cache, metadata.SNAPSHOT)
	t.Logf("client holds snapshot %d, timestamp %d", held, cachedVersion(t, cache, metadata.TIMESTAMP))
	f.removeSnapshotsBelow(held)
	snap, ts := f.newKeyFile(metadata.SNAPSHOT, "repo/keys"), f.newKeyFile(metadata.TIMESTAMP, "repo/keys")
	if _, err := f.repo.RotateRoot(RootChange{SnapshotKey: snap, TimestampKey: ts, Expires: f.clock.Now().Add(DefaultRootExpiry)}, []string{f.offline}); err != nil {
		t.Fatal(err)
	}
	for tick := 0; tick < 3; tick++ {
		s := f.signOnline()
		t.Logf("tick %d: snapshot %d timestamp %d problems %v", tick, s.Status.Versions[metadata.SNAPSHOT], s.Status.Versions[metadata.TIMESTAMP], s.Status.Problems)
		f.clock.advance(TimestampRenewAfter)
	}
	if _, err := f.fetch(cache); err != nil {
		t.Errorf("client holding snapshot %d after the rotation: %v", held, err)
	}
}

// TestDeletedSnapshotsAndBrokenTimestamp: a writer of metadata/
// without keys deletes the old snapshot files and breaks timestamp.json.
func TestDeletedSnapshotsAndBrokenTimestamp(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	for i := 0; i < 4; i++ {
		f.publish(newVKey(t))
	}
	f.mustFetch(cache)
	held := cachedVersion(t, cache, metadata.SNAPSHOT)
	f.removeSnapshotsBelow(held)
	f.writeFile(breakSignature(t, f.readFile(metadataDir, timestampFile)), metadataDir, timestampFile)
	for tick := 0; tick < 4; tick++ {
		s := f.signOnline()
		t.Logf("tick %d: snapshot %d timestamp %d", tick, s.Status.Versions[metadata.SNAPSHOT], s.Status.Versions[metadata.TIMESTAMP])
		f.clock.advance(TimestampRenewAfter)
	}
	if _, err := f.fetch(cache); err != nil {
		t.Errorf("client holding snapshot %d a day later: %v", held, err)
	}
}

// removeSnapshotsBelow removes the snapshot files of versions below held.
// Versions are the time of signing, so the files are listed, not counted.
func (f *fixture) removeSnapshotsBelow(held int64) {
	f.t.Helper()
	vs, err := versions(f.dir, metadata.SNAPSHOT)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, v := range vs {
		if v >= held {
			continue
		}
		if err := os.Remove(filepath.Join(f.dir, metadataDir, versionedName(v, metadata.SNAPSHOT))); err != nil {
			f.t.Fatal(err)
		}
	}
}
