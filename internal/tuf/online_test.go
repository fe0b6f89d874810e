package tuf

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The tests below play a writer of DIR/metadata without the online keys:
// what it writes must not decide the versions the server signs next, and
// clients holding the genuine metadata must keep working.

// TestUnsignedTimestampVersion drops an unsigned timestamp.json of version
// 2^63-1 in place of the genuine one. The server used to sign its version
// + 1, which overflowed to -2^63: every client holding a timestamp refused
// the repository as a rollback, for ever. Now the file is ignored and the
// next version is the time of signing, past the client's.
func TestUnsignedTimestampVersion(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.clock.advance(TimestampRenewAfter)
	f.signOnline()
	f.mustFetch(cache)
	f.writeFile(setVersion(t, f.readFile(metadataDir, timestampFile), math.MaxInt64), metadataDir, timestampFile)

	s := f.signOnline()
	if v := s.Status.Versions[metadata.TIMESTAMP]; !s.Timestamp || v != f.clock.Now().Unix() {
		t.Errorf("after an unsigned timestamp of version 2^63-1: signed %v, version %d; want a timestamp of version %d (the time)", s.Timestamp, v, f.clock.Now().Unix())
	}
	wantProblem(t, s.Status, timestampFile)
	f.mustFetch(cache)
	f.mustFetch("")
	if v := cachedVersion(t, cache, metadata.TIMESTAMP); v != f.clock.Now().Unix() {
		t.Errorf("client holds timestamp version %d, want %d", v, f.clock.Now().Unix())
	}
	f.clock.advance(TimestampRenewAfter)
	if s := f.signOnline(); s.Status.Versions[metadata.TIMESTAMP] != f.clock.Now().Unix() || len(s.Status.Problems) != 0 {
		t.Errorf("the renewal after: %+v; want the time of signing as the version, and no problem", s.Status)
	}
}

// TestSnapshotNameFastForward plants an empty 999999999999999999.snapshot.json
// and a timestamp.json whose signature is broken. The server used to take
// its next snapshot version from the newest file name: 10^18, a 19-digit
// name that the handler refuses, so every client got a 404, for ever.
func TestSnapshotNameFastForward(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	f.writeFile(nil, metadataDir, versionedName(999999999999999999, metadata.SNAPSHOT))
	f.writeFile(breakSignature(t, f.readFile(metadataDir, timestampFile)), metadataDir, timestampFile)

	// Without a timestamp that verifies, the snapshot clients hold is
	// unknown: the next one is the time (snapshotFloor).
	s := f.signOnline()
	now := f.clock.Now().Unix()
	if v := s.Status.Versions[metadata.SNAPSHOT]; !s.Snapshot || v != now {
		t.Errorf("with a broken timestamp: signed snapshot %v, version %d; want version %d (the time)", s.Snapshot, v, now)
	}
	wantProblem(t, s.Status, timestampFile)
	f.mustFetch(cache)
	f.publish(newVKey(t))
	if v := f.status().Versions[metadata.SNAPSHOT]; v != now+1 {
		t.Errorf("after a publication: snapshot version %d, want %d", v, now+1)
	}
	f.mustFetch(cache)
	f.mustFetch("")
}

// TestWrongKeyOnlineMetadata writes a timestamp and the snapshot it names,
// well-formed and signed, but by keys the root does not list, at versions
// far beyond the genuine ones: neither may raise the next versions.
func TestWrongKeyOnlineMetadata(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	wrongSnap, wrongTS := mustKey(t), mustKey(t)
	const forged = 50_000_000_000_000_000
	snap := metadata.Snapshot(expiry(f.clock.Now(), SnapshotExpiry))
	snap.Signed.Version = forged
	data, err := signAndEncode(snap, []*Key{wrongSnap})
	if err != nil {
		t.Fatal(err)
	}
	f.writeFile(data, metadataDir, versionedName(forged, metadata.SNAPSHOT))
	ts := metadata.Timestamp(expiry(f.clock.Now(), TimestampExpiry))
	ts.Signed.Version = forged
	ts.Signed.Meta[metadata.SNAPSHOT+".json"] = metaFile(forged, data)
	if data, err = signAndEncode(ts, []*Key{wrongTS}); err != nil {
		t.Fatal(err)
	}
	f.writeFile(data, metadataDir, timestampFile)

	s := f.signOnline()
	if v := s.Status.Versions; v[metadata.TIMESTAMP] != f.clock.Now().Unix() || v[metadata.SNAPSHOT] != f.clock.Now().Unix() {
		t.Errorf("after wrong-key metadata of version %d: timestamp %d, snapshot %d; want %d (the time) for both",
			int64(forged), v[metadata.TIMESTAMP], v[metadata.SNAPSHOT], f.clock.Now().Unix())
	}
	wantProblem(t, s.Status, "not signed by the timestamp keys of root version 1")
	f.mustFetch(cache)
}

// TestWrongKeySnapshot keeps the genuine timestamp but replaces the
// snapshot it names with one signed by another key: it is ignored, and a
// new snapshot is signed past it (at the time of signing, as always).
func TestWrongKeySnapshot(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	snap := metadata.Snapshot(expiry(f.clock.Now(), SnapshotExpiry))
	data, err := signAndEncode(snap, []*Key{mustKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	f.writeFile(data, metadataDir, versionedName(1, metadata.SNAPSHOT))
	s := f.signOnline()
	if v, now := s.Status.Versions, f.clock.Now().Unix(); !s.Snapshot || v[metadata.SNAPSHOT] != now || v[metadata.TIMESTAMP] != now {
		t.Errorf("after a wrong-key snapshot 1: %+v; want snapshot and timestamp %d (the time)", s.Status.Versions, now)
	}
	wantProblem(t, s.Status, "1.snapshot.json")
	f.mustFetch(cache)
}

// TestOldTimestampPutBack puts back an expired genuine timestamp, as an
// old backup or a writer who kept one would: its version + 1 is below the
// client's, so the next version is the time of signing.
func TestOldTimestampPutBack(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	first := f.readFile(metadataDir, timestampFile)
	for range 8 {
		f.clock.advance(TimestampRenewAfter)
		f.signOnline()
	}
	f.mustFetch(cache)
	f.writeFile(first, metadataDir, timestampFile)
	s := f.signOnline()
	if v := s.Status.Versions[metadata.TIMESTAMP]; !s.Timestamp || v != f.clock.Now().Unix() {
		t.Errorf("after version 1 was put back: signed %v, version %d; want %d (the time)", s.Timestamp, v, f.clock.Now().Unix())
	}
	f.mustFetch(cache)
}

// TestTimestampVersionBound: a timestamp key that signed a version at the
// bound (it leaked) stops re-signing with an error, rather than an
// overflow or an unservable version; new online keys recover.
func TestTimestampVersionBound(t *testing.T) {
	for _, v := range []int64{maxVersion - 1, math.MaxInt64} {
		f := newFixture(t)
		f.forgeTimestamp(f.onlineKey(metadata.TIMESTAMP), v, 1)
		f.clock.advance(TimestampRenewAfter)
		_, err := f.repo.SignOnline([]string{f.online}, f.clock.Now())
		if err == nil || !strings.Contains(err.Error(), "refusing to sign timestamp version 100000000000000000 or above") {
			t.Errorf("after the timestamp key signed version %d: %v; want a refusal", v, err)
		}
		snap, ts := f.newKeyFile(metadata.SNAPSHOT, "repo/keys"), f.newKeyFile(metadata.TIMESTAMP, "repo/keys")
		if _, err := f.repo.RotateRoot(RootChange{SnapshotKey: snap, TimestampKey: ts, Expires: f.clock.Now().Add(DefaultRootExpiry)}, []string{f.offline}); err != nil {
			t.Fatal(err)
		}
		if s := f.signOnline(); s.Status.Versions[metadata.TIMESTAMP] != f.clock.Now().Unix() {
			t.Errorf("after new online keys: timestamp version %d, want %d", s.Status.Versions[metadata.TIMESTAMP], f.clock.Now().Unix())
		}
		f.mustFetch("")
	}
}

func mustKey(t *testing.T) *Key {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// setVersion rewrites the version of signed metadata, leaving its
// signatures as they were.
func setVersion(t *testing.T, data []byte, v int64) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m["signed"].(map[string]any)["version"] = v
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// breakSignature replaces the signatures of metadata with zeros.
func breakSignature(t *testing.T, data []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, s := range m["signatures"].([]any) {
		s.(map[string]any)["sig"] = strings.Repeat("00", 64)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wantProblem(t *testing.T, st *Status, substr string) {
	t.Helper()
	for _, p := range st.Problems {
		if strings.Contains(p.Error(), substr) {
			return
		}
	}
	t.Errorf("problems %v, want one about %q", st.Problems, substr)
}

// TestValidTimestampPutBack puts back timestamp version 1 while it is
// still valid (a recent backup restored, data/tuf copied back from the
// machine of an offline publish), after versions signed at 6, 12 and 18 h
// that a client holds. The server used to sign version 2, which the
// client refused as a rollback until the put-back one expired; the next
// version must pass the client's.
func TestValidTimestampPutBack(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	first := f.readFile(metadataDir, timestampFile)
	for range 3 {
		f.clock.advance(TimestampRenewAfter)
		f.signOnline()
	}
	f.mustFetch(cache)
	held := cachedVersion(t, cache, metadata.TIMESTAMP)
	f.writeFile(first, metadataDir, timestampFile)
	f.clock.advance(time.Minute)
	s := f.signOnline()
	if v := s.Status.Versions[metadata.TIMESTAMP]; !s.Timestamp || v <= held {
		t.Errorf("after a valid version 1 was put back: signed %v, version %d; want a version above the client's %d", s.Timestamp, v, held)
	}
	if _, err := f.fetch(cache); err != nil {
		t.Errorf("client holding timestamp version %d: %v", held, err)
	}
	if v := cachedVersion(t, cache, metadata.TIMESTAMP); v != s.Status.Versions[metadata.TIMESTAMP] {
		t.Errorf("client holds timestamp version %d, want the new %d", v, s.Status.Versions[metadata.TIMESTAMP])
	}
}

// TestTimestampPutBackNamesOlderSnapshot: snapshot 1 was unreadable for a
// while, so a new snapshot (of the time's version) was signed and a client
// fetched it; then the old timestamp and snapshot 1 came back from a
// backup, both still valid. The snapshot the timestamp names is older than
// the client's: naming it again would be a rollback, so a new snapshot is
// signed past the newer file. (Snapshot versions used to count up by one,
// and only version named+1 was looked for.)
func TestTimestampPutBackNamesOlderSnapshot(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	ts, snap := f.readFile(metadataDir, timestampFile), f.readFile(metadataDir, versionedName(1, metadata.SNAPSHOT))
	f.writeFile(nil, metadataDir, versionedName(1, metadata.SNAPSHOT))
	f.clock.advance(time.Minute)
	held := f.signOnline().Status.Versions[metadata.SNAPSHOT]
	f.mustFetch(cache)
	f.writeFile(snap, metadataDir, versionedName(1, metadata.SNAPSHOT))
	f.writeFile(ts, metadataDir, timestampFile)
	f.clock.advance(time.Minute)
	s := f.signOnline()
	if v := s.Status.Versions[metadata.SNAPSHOT]; !s.Snapshot || v <= held {
		t.Errorf("after the timestamp naming snapshot 1 was put back: signed snapshot %v, version %d; want a version above the client's %d", s.Snapshot, v, held)
	}
	if _, err := f.fetch(cache); err != nil {
		t.Errorf("client holding snapshot version %d: %v", held, err)
	}
}

// TestTimestampRenewedWhenSnapshotRefused loses the snapshot key (a
// restore left its file out): from 3.5 days on, when the snapshot is due,
// SignOnline fails, but the snapshot stays valid for 7 days and the
// timestamp key is at hand. The timestamp used to be left to expire a day
// later with the snapshot; now it keeps being renewed, naming the snapshot
// clients hold, and the failure is still reported.
func TestTimestampRenewedWhenSnapshotRefused(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	keys, err := filepath.Glob(filepath.Join(f.online, metadata.SNAPSHOT+"-*.key"))
	if err != nil || len(keys) != 1 {
		t.Fatalf("snapshot key files %q: %v", keys, err)
	}
	if err := os.Rename(keys[0], filepath.Join(t.TempDir(), filepath.Base(keys[0]))); err != nil {
		t.Fatal(err)
	}
	start := f.clock.Now()
	for f.clock.Now().Before(start.Add(SnapshotExpiry - TimestampRenewAfter)) {
		f.clock.advance(TimestampRenewAfter)
		_, err := f.repo.SignOnline([]string{f.online}, f.clock.Now())
		if due := !f.clock.Now().Before(start.Add(SnapshotRenewAfter)); due != (err != nil) {
			t.Fatalf("%v after Init: %v; want a failure exactly once the snapshot is due", f.clock.Now().Sub(start), err)
		} else if due && !strings.Contains(err.Error(), "the timestamp was renewed, naming snapshot version 1") {
			t.Errorf("%v after Init: %v; want it to say the timestamp was renewed", f.clock.Now().Sub(start), err)
		}
		if exp := f.status().Expires[metadata.TIMESTAMP]; !exp.Equal(f.clock.Now().Add(TimestampExpiry)) {
			t.Fatalf("%v after Init: timestamp expires %v, want it renewed", f.clock.Now().Sub(start), exp)
		}
	}
	f.mustFetch(cache)
	f.mustFetch("")
}

// TestSnapshotNotSignedWithoutTimestampKey loses the timestamp key (a
// restore left its file out, or gave it a mode sumd refuses) while the
// snapshot key is at hand, and publishes new targets: every tick signed
// and wrote a new snapshot version, then failed on the timestamp that was
// to name it, so a server left so wrote a snapshot file a minute, each
// read again by the next signing. No snapshot is written that no
// timestamp can name.
func TestSnapshotNotSignedWithoutTimestampKey(t *testing.T) {
	f := newFixture(t)
	keys, err := filepath.Glob(filepath.Join(f.online, metadata.TIMESTAMP+"-*.key"))
	if err != nil || len(keys) != 1 {
		t.Fatalf("timestamp key files %q: %v", keys, err)
	}
	if err := os.Rename(keys[0], filepath.Join(t.TempDir(), filepath.Base(keys[0]))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.Publish(mustDatabase(t, newVKey(t)), []string{f.offline}, f.clock.Now().Add(DefaultTargetsExpiry)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		f.clock.advance(ResignInterval)
		if _, err := f.repo.SignOnline([]string{f.online}, f.clock.Now()); err == nil || !strings.Contains(err.Error(), "signing timestamp needs 1 of its keys") {
			t.Fatalf("SignOnline without the timestamp key: %v", err)
		}
	}
	if vs, err := versions(f.dir, metadata.SNAPSHOT); err != nil || len(vs) != 1 {
		t.Errorf("snapshot versions %v (%v), want Init's alone", vs, err)
	}
}
