package tuf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// A Repo is a TUF repository directory created by Init. Its methods that
// write take the repository's lock, so several processes may use one
// directory; the read-only ones (the handler) need none, since files
// appear whole (see files.go).
type Repo struct {
	dir string
}

// Open opens the repository in dir.
func Open(dir string) (*Repo, error) {
	if _, err := os.Stat(filepath.Join(dir, metadataDir, versionedName(1, metadata.ROOT))); err != nil {
		return nil, fmt.Errorf("%s is not a TUF repository: %w", dir, err)
	}
	return &Repo{dir: dir}, nil
}

// Dir is the repository's directory.
func (r *Repo) Dir() string { return r.dir }

// A state is the repository's metadata as read from disk. Everything in
// it is verified under the newest root, as a client verifies it; files
// that do not verify are left out and reported in problems, so that a
// writer of the directory without the keys can neither stop the server
// nor raise the versions it signs next (online.go). Root files are the
// exception (loadRoot): clients walk every version, so a root that does
// not verify is an error until it is removed, not skipped.
type state struct {
	root          *metadata.Metadata[metadata.RootType]    // newest, chain verified
	roots         []*metadata.Metadata[metadata.RootType]  // every version, oldest first
	targets       *metadata.Metadata[metadata.TargetsType] // newest version the root's targets keys signed
	targetsData   []byte
	timestamp     *metadata.Metadata[metadata.TimestampType] // signed by the root's timestamp keys; nil if none
	namedSnapshot int64                                      // the snapshot version timestamp names, 0 if none
	snapshot      *metadata.Metadata[metadata.SnapshotType]  // that version, if the root's snapshot keys signed it
	snapshotData  []byte                                     // its bytes
	aheadSnapshot int64                                      // newest version above namedSnapshot the root's snapshot keys signed, 0 if none
	first         bool                                       // Init is signing the first timestamp
	problems      []error                                    // files ignored: they do not verify
}

func (r *Repo) load() (*state, error) {
	roots, err := r.loadRoots()
	if err != nil {
		return nil, err
	}
	st := &state{root: roots[len(roots)-1], roots: roots}
	if err := r.loadTargets(st); err != nil {
		return nil, err
	}
	r.loadOnline(st)
	return st, nil
}

// loadRoot returns the newest root, its chain verified (loadRoots).
func (r *Repo) loadRoot() (*metadata.Metadata[metadata.RootType], error) {
	roots, err := r.loadRoots()
	if err != nil {
		return nil, err
	}
	return roots[len(roots)-1], nil
}

// loadRoots walks the root chain from version 1 as a client does (go-tuf's
// trustedmetadata): each version must be signed by a threshold of the
// previous version's root keys and of its own. It returns every version.
func (r *Repo) loadRoots() ([]*metadata.Metadata[metadata.RootType], error) {
	vs, err := versions(r.dir, metadata.ROOT)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 || vs[0] != 1 {
		return nil, fmt.Errorf("%s has no metadata/1.root.json", r.dir)
	}
	var trusted *trustedmetadata.TrustedMetadata
	var roots []*metadata.Metadata[metadata.RootType]
	for i, v := range vs {
		if v != int64(i+1) {
			return nil, fmt.Errorf("root version %d is missing: clients walk every version", i+1)
		}
		data, err := r.readMetadata(versionedName(v, metadata.ROOT))
		if err != nil {
			return nil, err
		}
		if i == 0 {
			trusted, err = trustedmetadata.New(data)
		} else {
			_, err = trusted.UpdateRoot(data)
		}
		if err != nil {
			return nil, fmt.Errorf("failed to verify root version %d: %w", v, err)
		}
		roots = append(roots, trusted.Root)
	}
	return roots, nil
}

// loadTargets finds the newest targets version that the root's targets
// keys signed. A newer one that does not verify (copied half, or signed
// with a key the root no longer lists) is reported, not served, so that a
// bad file cannot stop the timestamp from being renewed.
func (r *Repo) loadTargets(st *state) error {
	vs, err := versions(r.dir, metadata.TARGETS)
	if err != nil {
		return err
	}
	for _, v := range slices.Backward(vs) {
		data, t, err := r.readTargets(st.root, v)
		if err == nil {
			st.targets, st.targetsData = t, data
			return nil
		}
		st.problems = append(st.problems, err)
	}
	return fmt.Errorf("no targets version is signed by the targets keys of root version %d: %w",
		st.root.Signed.Version, errors.Join(st.problems...))
}

func (r *Repo) readTargets(root *metadata.Metadata[metadata.RootType], v int64) ([]byte, *metadata.Metadata[metadata.TargetsType], error) {
	name := versionedName(v, metadata.TARGETS)
	data, err := r.readMetadata(name)
	if err != nil {
		return nil, nil, err
	}
	t, err := metadata.Targets().FromBytes(data)
	if err == nil && t.Signed.Version != v {
		err = fmt.Errorf("it holds version %d", t.Signed.Version)
	}
	if err == nil {
		err = root.VerifyDelegate(metadata.TARGETS, t)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, t, nil
}

// loadOnline reads the timestamp and the snapshot it names, keeping each
// only if it verifies under the newest root: these are the versions the
// next ones follow. A timestamp.json that is missing, unreadable or not
// signed by the root's timestamp keys (they were rotated, or someone
// without them wrote it) is reported and ignored; so is a snapshot that
// is not the one the timestamp names.
func (r *Repo) loadOnline(st *state) {
	ts, err := r.readTimestamp(st.root)
	if err != nil {
		st.problems = append(st.problems, fmt.Errorf("%s (the next timestamp and snapshot versions are the time of signing, past any version a client holds): %w", timestampFile, err))
		return
	}
	st.timestamp = ts
	meta := ts.Signed.Meta[metadata.SNAPSHOT+".json"]
	if meta == nil {
		return
	}
	st.namedSnapshot = meta.Version
	if st.snapshotData, st.snapshot, err = r.readSnapshot(st.root, meta); err != nil {
		st.problems = append(st.problems, fmt.Errorf("%s (a new snapshot is signed): %w", versionedName(meta.Version, metadata.SNAPSHOT), err))
	}
	st.aheadSnapshot = r.newestSnapshotAbove(st.root, meta.Version)
}

// newestSnapshotAbove returns the newest snapshot version above v that
// the root's snapshot keys signed, 0 if none. One exists when the
// timestamp is older than the snapshot clients hold (a timestamp put
// back, or a crash before the timestamp naming it was written): a new
// snapshot is then signed past it, where serving the named one would be a
// rollback. Files that do not verify raise nothing.
func (r *Repo) newestSnapshotAbove(root *metadata.Metadata[metadata.RootType], v int64) int64 {
	vs, err := versions(r.dir, metadata.SNAPSHOT)
	if err != nil {
		return 0
	}
	for _, w := range slices.Backward(vs) {
		if w <= v {
			break
		}
		data, err := r.readMetadata(versionedName(w, metadata.SNAPSHOT))
		if err != nil {
			continue
		}
		snap, err := metadata.Snapshot().FromBytes(data)
		if err == nil && snap.Signed.Version == w && root.VerifyDelegate(metadata.SNAPSHOT, snap) == nil {
			return w
		}
	}
	return 0
}

func (r *Repo) readTimestamp(root *metadata.Metadata[metadata.RootType]) (*metadata.Metadata[metadata.TimestampType], error) {
	data, err := r.readMetadata(timestampFile)
	if err != nil {
		return nil, err
	}
	ts, err := metadata.Timestamp().FromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("failed to parse: %w", err)
	}
	if err := root.VerifyDelegate(metadata.TIMESTAMP, ts); err != nil {
		return nil, fmt.Errorf("not signed by the timestamp keys of root version %d (as expected once after new online keys; otherwise written without the key): %w", root.Signed.Version, err)
	}
	return ts, nil
}

// readSnapshot reads the snapshot a verified timestamp describes: its
// length, hashes and version, and the root's snapshot keys.
func (r *Repo) readSnapshot(root *metadata.Metadata[metadata.RootType], meta *metadata.MetaFiles) ([]byte, *metadata.Metadata[metadata.SnapshotType], error) {
	if _, ok := parseVersion(strconv.FormatInt(meta.Version, 10)); !ok {
		return nil, nil, fmt.Errorf("the timestamp names snapshot version %d", meta.Version)
	}
	data, err := r.readMetadata(versionedName(meta.Version, metadata.SNAPSHOT))
	if err != nil {
		return nil, nil, err
	}
	if err := meta.VerifyLengthHashes(data); err != nil {
		return nil, nil, fmt.Errorf("not the snapshot the timestamp describes: %w", err)
	}
	snap, err := metadata.Snapshot().FromBytes(data)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to parse: %w", err)
	}
	if snap.Signed.Version != meta.Version {
		return nil, nil, fmt.Errorf("it holds version %d", snap.Signed.Version)
	}
	if err := root.VerifyDelegate(metadata.SNAPSHOT, snap); err != nil {
		return nil, nil, fmt.Errorf("not signed by the snapshot keys of root version %d: %w", root.Signed.Version, err)
	}
	return data, snap, nil
}

func (r *Repo) readMetadata(name string) ([]byte, error) {
	return readCapped(filepath.Join(r.dir, metadataDir, name), maxMetadata)
}

// A Status is what a repository serves: each role's version and expiry.
type Status struct {
	Versions map[string]int64
	Expires  map[string]time.Time
	Problems []error // files ignored because they do not verify (newer targets, online metadata)
}

// Status reads the repository's status, verifying every role as SignOnline
// does.
func (r *Repo) Status() (*Status, error) {
	st, err := r.load()
	if err != nil {
		return nil, err
	}
	return st.status(), nil
}

func (st *state) status() *Status {
	s := &Status{
		Versions: map[string]int64{metadata.ROOT: st.root.Signed.Version, metadata.TARGETS: st.targets.Signed.Version},
		Expires:  map[string]time.Time{metadata.ROOT: st.root.Signed.Expires, metadata.TARGETS: st.targets.Signed.Expires},
		Problems: st.problems,
	}
	if st.timestamp != nil {
		s.Versions[metadata.TIMESTAMP], s.Expires[metadata.TIMESTAMP] = st.timestamp.Signed.Version, st.timestamp.Signed.Expires
	}
	if st.snapshot != nil {
		s.Versions[metadata.SNAPSHOT], s.Expires[metadata.SNAPSHOT] = st.snapshot.Signed.Version, st.snapshot.Signed.Expires
	}
	return s
}
