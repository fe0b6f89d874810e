package tuf

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// The online re-signing policy. A client refuses a timestamp past its
// expiry (PROTOCOL.md §5), so the timestamp lives a day and is renewed
// four times as often: a server down for up to 18 hours loses no client.
// The snapshot changes only with the targets, and is renewed at half life.
const (
	TimestampExpiry = 24 * time.Hour
	// TimestampRenewAfter is the timestamp's age at which it is re-signed:
	// 18 hours of validity are then left.
	TimestampRenewAfter = 6 * time.Hour
	SnapshotExpiry      = 7 * 24 * time.Hour
	// SnapshotRenewAfter is the snapshot's age at which it is re-signed.
	SnapshotRenewAfter = SnapshotExpiry / 2
)

// A Signing reports what SignOnline did and what the repository serves.
type Signing struct {
	Snapshot  bool // a new snapshot version was signed
	Timestamp bool // a new timestamp version was signed
	Status    *Status
}

// SignOnline brings the online metadata up to date at time now, signing
// with the snapshot and timestamp keys found in keyDirs. A new snapshot is
// signed when there is none, when it does not list the newest valid
// targets version, when the newest root does not accept its signature (its
// keys were rotated) or when it is SnapshotRenewAfter old; a new timestamp
// when there is a new snapshot, or on the same conditions with
// TimestampRenewAfter. A new snapshot that cannot be signed is an error,
// but the timestamp is still renewed if the snapshot it names can be
// named again (keepTimestamp); without the timestamp keys nothing is
// signed. It is what sumd serve runs every minute,
// and what the offline commands run after writing when the online keys
// are at hand.
func (r *Repo) SignOnline(keyDirs []string, now time.Time) (*Signing, error) {
	unlock, err := lock(r.dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	return r.signOnline(st, keyDirs, now)
}

// CheckOnlineKeys reports whether keyDirs hold the snapshot and timestamp
// keys the newest root names: a server without them would serve until the
// timestamp expires, then fail every client.
func (r *Repo) CheckOnlineKeys(keyDirs []string) error {
	root, err := r.loadRoot()
	if err != nil {
		return err
	}
	for _, role := range []string{metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if _, err := roleKeys(root, role, keyDirs); err != nil {
			return err
		}
	}
	return nil
}

func (r *Repo) signOnline(st *state, keyDirs []string, now time.Time) (*Signing, error) {
	var s Signing
	if st.needsSnapshot(now) {
		// A new snapshot needs a new timestamp naming it: without the
		// timestamp keys none is signed, where every tick would write a
		// snapshot version no timestamp names.
		if _, err := roleKeys(st.root, metadata.TIMESTAMP, keyDirs); err != nil {
			return nil, err
		}
		if err := r.signSnapshot(st, keyDirs, now); err != nil {
			return nil, r.keepTimestamp(st, keyDirs, now, err)
		}
		s.Snapshot = true
	}
	if s.Snapshot || st.needsTimestamp(now) {
		if err := r.signTimestamp(st, keyDirs, now); err != nil {
			return nil, err
		}
		s.Timestamp = true
	}
	s.Status = st.status()
	return &s, nil
}

// keepTimestamp renews the timestamp, naming the snapshot it names, when
// a new snapshot was refused (snapErr: the targets need publishing again,
// the snapshot key is missing) while that snapshot is still valid and the
// newest the snapshot keys signed: clients keep working until it expires,
// days later, rather than failing with the timestamp a day later. It
// returns snapErr, saying whether the timestamp was renewed.
func (r *Repo) keepTimestamp(st *state, keyDirs []string, now time.Time, snapErr error) error {
	if st.snapshot == nil || !now.Before(st.snapshot.Signed.Expires) || st.aheadSnapshot > st.namedSnapshot || !st.needsTimestamp(now) {
		return snapErr
	}
	if err := r.signTimestamp(st, keyDirs, now); err != nil {
		return errors.Join(snapErr, fmt.Errorf("failed to renew the timestamp naming the current snapshot: %w", err))
	}
	return fmt.Errorf("%w (the timestamp was renewed, naming snapshot version %d, which expires %s)",
		snapErr, st.namedSnapshot, st.snapshot.Signed.Expires.Format(time.RFC3339))
}

func (st *state) needsSnapshot(now time.Time) bool {
	if st.snapshot == nil || st.aheadSnapshot > st.namedSnapshot {
		return true
	}
	listed := st.snapshot.Signed.Meta[metadata.TARGETS+".json"]
	return listed == nil || listed.Version != st.targets.Signed.Version ||
		old(st.snapshot.Signed.Expires, SnapshotExpiry, SnapshotRenewAfter, now)
}

func (st *state) needsTimestamp(now time.Time) bool {
	return st.timestamp == nil || old(st.timestamp.Signed.Expires, TimestampExpiry, TimestampRenewAfter, now)
}

// old reports whether metadata expiring at expires, signed for lifetime,
// is at least renewAfter old at now, or was signed after now: by a clock
// ahead (a bad NTP step, a VM restored with a wrong clock) since put
// back. Kept until the clock caught up, such metadata would stay valid
// for as long as the clock was ahead, beyond its lifetime, and anyone
// who kept a copy could replay it to freeze clients on it; re-signed,
// clients that update take a higher version and refuse the copy.
func old(expires time.Time, lifetime, renewAfter time.Duration, now time.Time) bool {
	signed := expires.Add(-lifetime)
	return !now.Before(signed.Add(renewAfter)) || signed.After(now)
}

// signSnapshot writes the next snapshot version, listing st.targets.
func (r *Repo) signSnapshot(st *state, keyDirs []string, now time.Time) error {
	if listed := max(st.listedTargets(), r.highestListedTargets(st.roots)); st.targets.Signed.Version < listed {
		// Clients would take a lower version for a rollback attack.
		return fmt.Errorf("the snapshot lists targets version %d, but the newest one the targets keys of root version %d signed is %d: "+
			"publish the targets again with the root's targets keys", listed, st.root.Signed.Version, st.targets.Signed.Version)
	}
	keys, err := st.roleKeys(metadata.SNAPSHOT, keyDirs)
	if err != nil {
		return err
	}
	snap := metadata.Snapshot(expiry(now, SnapshotExpiry))
	if snap.Signed.Version, err = r.freeVersion(metadata.SNAPSHOT, st.snapshotFloor(now)); err != nil {
		return err
	}
	snap.Signed.Meta[metadata.TARGETS+".json"] = metaFile(st.targets.Signed.Version, st.targetsData)
	data, err := signAndEncode(snap, keys)
	if err != nil {
		return err
	}
	if err := r.writeVersion(metadata.SNAPSHOT, snap.Signed.Version, data); err != nil {
		return err
	}
	st.snapshot, st.snapshotData = snap, data
	st.namedSnapshot, st.aheadSnapshot = snap.Signed.Version, 0
	return nil
}

// signTimestamp replaces the timestamp with the next version, naming
// st.snapshot. It is written last, by rename: the files it names exist.
func (r *Repo) signTimestamp(st *state, keyDirs []string, now time.Time) error {
	keys, err := st.roleKeys(metadata.TIMESTAMP, keyDirs)
	if err != nil {
		return err
	}
	ts := metadata.Timestamp(expiry(now, TimestampExpiry))
	if ts.Signed.Version, err = st.nextTimestamp(now); err != nil {
		return err
	}
	ts.Signed.Meta[metadata.SNAPSHOT+".json"] = metaFile(st.snapshot.Signed.Version, st.snapshotData)
	data, err := signAndEncode(ts, keys)
	if err != nil {
		return err
	}
	if err := replaceFile(filepath.Join(r.dir, metadataDir, timestampFile), data); err != nil {
		return err
	}
	st.timestamp = ts
	return nil
}

// roleKeys returns the keys of an online role, adding the key files it
// skipped to the problems reported.
func (st *state) roleKeys(role string, keyDirs []string) ([]*Key, error) {
	keys, skipped, err := findRoleKeys(st.root, role, keyDirs)
	if err == nil {
		for _, e := range skipped {
			st.problems = append(st.problems, fmt.Errorf("key file skipped: %w", e))
		}
	}
	return keys, err
}

// snapshotFloor is the version the next snapshot must pass: the newest
// one the root's snapshot keys signed (the one the verified timestamp
// names, or a newer file: a timestamp put back names an older snapshot),
// or the time of signing (timeFloor) if that is later. The files of a
// snapshot clients hold may be gone (old versions pruned, or deleted by
// someone without the keys: the first free version would then be 1), so
// the files are not enough either.
func (st *state) snapshotFloor(now time.Time) int64 {
	if st.first {
		return st.namedSnapshot
	}
	return max(st.namedSnapshot, st.aheadSnapshot, timeFloor(now)-1)
}

// nextTimestamp is the version of the timestamp signed at now: one past
// the timestamp the root's keys signed, or the Unix time of signing if
// that is later (it is, unless sumd signed within the same second).
// Clients refuse a version below the one they hold, even an expired one,
// and the timestamp.json on disk may be older than theirs: an old one put
// back (a backup restored, data/tuf copied back from the machine of an
// offline publish), valid or not, or none that verifies (lost, tampered
// with, signed by keys since rotated). One past it would freeze every
// client holding a newer one until that expired; the time is past every
// version signed before, as long as the clock does not go back.
func (st *state) nextTimestamp(now time.Time) (int64, error) {
	if st.first {
		return 1, nil
	}
	var last int64
	if st.timestamp != nil {
		last = st.timestamp.Signed.Version
	}
	v, err := nextVersion(metadata.TIMESTAMP, last)
	return max(v, timeFloor(now)), err
}

// timeFloor is the least version of online metadata signed at now (after
// Init's first): the Unix time, so that versions grow with the clock
// whatever the files on disk say. It stays far below maxVersion.
func timeFloor(now time.Time) int64 {
	return max(now.Unix(), 1)
}

// highestListedTargets is the highest targets version a snapshot on disk
// signed under any root version lists: clients may hold it. The snapshot
// the timestamp names is not enough: after new online keys (or a lost
// timestamp.json) it no longer verifies, and clients drop what the new
// keys did not sign, so a snapshot listing older targets (and an older
// verifier key) would be accepted.
//
// A snapshot counts only with the targets it lists (listedUnder): the
// snapshot keys of an older root may be the ones replaced after a leak,
// and their holder must not set the floor with a snapshot listing a
// version no targets key signed, which would stop every snapshot after.
// Nor may such a snapshot hide the floor: every snapshot is read, not the
// newest that counts, since the holder can sign a version above all the
// others listing older targets. Snapshots are re-signed every few days,
// and this runs only when one is: a few hundred files a year.
func (r *Repo) highestListedTargets(roots []*metadata.Metadata[metadata.RootType]) int64 {
	vs, err := versions(r.dir, metadata.SNAPSHOT)
	if err != nil {
		return 0
	}
	var highest int64
	for _, v := range vs {
		data, err := r.readMetadata(versionedName(v, metadata.SNAPSHOT))
		if err != nil {
			continue
		}
		snap, err := metadata.Snapshot().FromBytes(data)
		if err != nil || snap.Signed.Version != v {
			continue
		}
		m := snap.Signed.Meta[metadata.TARGETS+".json"]
		if m != nil && m.Version > highest && slices.ContainsFunc(roots, func(root *metadata.Metadata[metadata.RootType]) bool {
			return r.listedUnder(root, snap, m)
		}) {
			highest = m.Version
		}
	}
	return highest
}

// listedUnder reports whether one root version's keys signed both snap
// and the targets version m it lists, as clients holding that root
// verified them: the snapshot by its snapshot keys, the targets file on
// disk by its targets keys and by the length and hashes snap gives.
func (r *Repo) listedUnder(root *metadata.Metadata[metadata.RootType], snap *metadata.Metadata[metadata.SnapshotType], m *metadata.MetaFiles) bool {
	if root.VerifyDelegate(metadata.SNAPSHOT, snap) != nil {
		return false
	}
	data, _, err := r.readTargets(root, m.Version)
	return err == nil && m.VerifyLengthHashes(data) == nil
}

func (st *state) listedTargets() int64 {
	if st.snapshot == nil || st.snapshot.Signed.Meta[metadata.TARGETS+".json"] == nil {
		return 0
	}
	return st.snapshot.Signed.Meta[metadata.TARGETS+".json"].Version
}

// metaFile describes a metadata file with its length and hash, so that a
// client fetches exactly those bytes (and no endless stream).
func metaFile(version int64, data []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(data)
	m := metadata.MetaFile(version)
	m.Length = int64(len(data))
	m.Hashes = metadata.Hashes{"sha256": sum[:]}
	return m
}

// expiry is now+d, in UTC and whole seconds, as TUF writes dates.
func expiry(now time.Time, d time.Duration) time.Time {
	return now.Add(d).UTC().Truncate(time.Second)
}

// signAndEncode signs m with keys and encodes it.
func signAndEncode[T metadata.Roles](m *metadata.Metadata[T], keys []*Key) ([]byte, error) {
	if err := sign(m, keys); err != nil {
		return nil, err
	}
	data, err := m.ToBytes(true)
	if err != nil {
		return nil, fmt.Errorf("failed to encode metadata: %w", err)
	}
	return data, nil
}
