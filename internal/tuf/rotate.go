package tuf

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// A RootChange is what a new root version changes. Zero fields keep what
// the current root says; a root version with no change renews the root's
// expiry.
type RootChange struct {
	// RootKeys replace the root keys; they sign the new root beside a
	// threshold of the old ones.
	RootKeys      []*Key
	RootThreshold int
	// TargetsKeys replace the targets keys; the newest targets are then
	// re-signed with them as the next targets version.
	TargetsKeys      []*Key
	TargetsThreshold int
	// SnapshotKey and TimestampKey replace the online keys (after a leak).
	SnapshotKey, TimestampKey *Key
	// Expires is the new root's expiry (required).
	Expires time.Time
	// TargetsExpires is the expiry of targets re-signed for TargetsKeys
	// or a raised TargetsThreshold; zero keeps the current expiry.
	TargetsExpires time.Time
}

// RotateRoot writes root version N+1: the current root with ch applied,
// signed by a threshold of the current root's keys (found in keyDirs) and
// by a threshold of its own keys, as clients walking N → N+1 require.
// The newest targets are re-signed if they would not verify under it
// (targetsForRoot), or RotateRoot refuses. Nothing is written unless both
// are signed. Snapshot and timestamp follow through SignOnline, as after
// Publish. It returns the new root version.
func (r *Repo) RotateRoot(ch RootChange, keyDirs []string) (int64, error) {
	if ch.Expires.IsZero() {
		return 0, errors.New("RotateRoot: no expiry for the new root")
	}
	unlock, err := lock(r.dir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	st, err := r.load()
	if err != nil {
		return 0, err
	}
	oldKeys, err := roleKeys(st.root, metadata.ROOT, keyDirs)
	if err != nil {
		return 0, err
	}
	next, err := ch.apply(st.root)
	if err != nil {
		return 0, err
	}
	targets, err := r.targetsForRoot(st, next, ch, keyDirs)
	if err != nil {
		return 0, err
	}
	data, err := signRoot(st.root, next, append(oldKeys, ch.RootKeys...))
	if err != nil {
		return 0, err
	}
	// Everything is signed: only now is anything written, so that a
	// refusal leaves no targets naming keys no root lists. Targets come
	// first: until the root naming their keys is written, the server
	// keeps serving the old targets (loadTargets skips this version).
	if targets != nil {
		if err := r.writeVersion(metadata.TARGETS, targets.version, targets.data); err != nil {
			return 0, err
		}
	}
	return next.Signed.Version, r.writeVersion(metadata.ROOT, next.Signed.Version, data)
}

// signedTargets is a targets version signed, not yet written.
type signedTargets struct {
	version int64
	data    []byte
}

// targetsForRoot makes sure the newest targets verify under next before
// next is written: clients would refuse them, and the server would serve
// an older targets version (carrying an older verifier key) that does.
// New targets keys re-sign them; so do the targets keys in keyDirs when
// next only raised the threshold; otherwise RotateRoot refuses. It
// returns the targets to write before the root, nil if none.
func (r *Repo) targetsForRoot(st *state, next *metadata.Metadata[metadata.RootType], ch RootChange, keyDirs []string) (*signedTargets, error) {
	expires := ch.TargetsExpires
	if expires.IsZero() {
		expires = st.targets.Signed.Expires
	}
	if ch.TargetsKeys != nil {
		return r.resignTargets(st, next, ch.TargetsKeys, expires)
	}
	if next.VerifyDelegate(metadata.TARGETS, st.targets) == nil {
		return nil, nil
	}
	keys, err := roleKeys(next, metadata.TARGETS, keyDirs)
	if err != nil {
		return nil, fmt.Errorf("targets version %d does not meet the targets threshold %d of root version %d, and cannot be re-signed: %w",
			st.targets.Signed.Version, next.Signed.Roles[metadata.TARGETS].Threshold, next.Signed.Version, err)
	}
	return r.resignTargets(st, next, keys, expires)
}

// apply returns a copy of root, one version on, with ch applied.
func (ch RootChange) apply(root *metadata.Metadata[metadata.RootType]) (*metadata.Metadata[metadata.RootType], error) {
	data, err := root.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("failed to copy root: %w", err)
	}
	next, err := metadata.Root().FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("failed to copy root: %w", err)
	}
	next.Signed.Version++
	next.Signed.Expires = ch.Expires.UTC().Truncate(time.Second)
	var online [2][]*Key
	if ch.SnapshotKey != nil {
		online[0] = []*Key{ch.SnapshotKey}
	}
	if ch.TimestampKey != nil {
		online[1] = []*Key{ch.TimestampKey}
	}
	return next, errors.Join(
		replaceKeys(next, metadata.ROOT, ch.RootKeys, ch.RootThreshold),
		replaceKeys(next, metadata.TARGETS, ch.TargetsKeys, ch.TargetsThreshold),
		replaceKeys(next, metadata.SNAPSHOT, online[0], 0),
		replaceKeys(next, metadata.TIMESTAMP, online[1], 0),
	)
}

// replaceKeys makes keys (unless nil) the keys of role, and threshold
// (unless 0) its threshold.
func replaceKeys(root *metadata.Metadata[metadata.RootType], role string, keys []*Key, threshold int) error {
	r := root.Signed.Roles[role]
	if keys != nil {
		for _, id := range slices.Clone(r.KeyIDs) {
			if err := root.Signed.RevokeKey(id, role); err != nil {
				return fmt.Errorf("failed to revoke %s key: %w", role, err)
			}
		}
		for _, k := range keys {
			if err := root.Signed.AddKey(k.public, role); err != nil {
				return fmt.Errorf("failed to add %s key: %w", role, err)
			}
		}
	}
	if threshold > 0 {
		r.Threshold = threshold
	}
	if len(r.KeyIDs) > maxRoleKeys || r.Threshold > len(r.KeyIDs) {
		return fmt.Errorf("%s: threshold %d of %d keys: want 1 ≤ threshold ≤ keys ≤ %d", role, r.Threshold, len(r.KeyIDs), maxRoleKeys)
	}
	return nil
}

// signRoot signs next with keys and checks it as a client would: a
// threshold of prev's root keys and of next's own signed it.
func signRoot(prev, next *metadata.Metadata[metadata.RootType], keys []*Key) ([]byte, error) {
	data, err := signAndEncode(next, uniqueKeys(keys))
	if err != nil {
		return nil, err
	}
	if err := prev.VerifyDelegate(metadata.ROOT, next); err != nil {
		return nil, fmt.Errorf("root version %d is not signed by a threshold of version %d's root keys: %w", next.Signed.Version, prev.Signed.Version, err)
	}
	if err := next.VerifyDelegate(metadata.ROOT, next); err != nil {
		return nil, fmt.Errorf("root version %d is not signed by a threshold of its own root keys: %w", next.Signed.Version, err)
	}
	return data, nil
}

// resignTargets signs the newest targets again as the next version, with
// keys under the new root.
func (r *Repo) resignTargets(st *state, next *metadata.Metadata[metadata.RootType], keys []*Key, expires time.Time) (*signedTargets, error) {
	t, err := metadata.Targets().FromBytes(st.targetsData)
	if err != nil {
		return nil, fmt.Errorf("failed to copy targets: %w", err)
	}
	if t.Signed.Version, err = r.freeVersion(metadata.TARGETS, st.targets.Signed.Version); err != nil {
		return nil, err
	}
	t.Signed.Expires = expires.UTC().Truncate(time.Second)
	data, err := signAndEncode(t, keys)
	if err == nil {
		err = next.VerifyDelegate(metadata.TARGETS, t)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to sign targets version %d with the new targets keys: %w", t.Signed.Version, err)
	}
	return &signedTargets{version: t.Signed.Version, data: data}, nil
}
