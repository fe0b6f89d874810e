package tuf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// DefaultRootExpiry is how long a root version is valid unless configured
// otherwise: renewing it (sumd tuf rotate-root) is a ceremony with the
// offline root keys, once a year.
const DefaultRootExpiry = 365 * 24 * time.Hour

// maxRoleKeys bounds the keys of one role: beyond it a ceremony is
// unmanageable and root.json needlessly large.
const maxRoleKeys = 16

// ErrExists means Init was asked to create a repository over another.
var ErrExists = errors.New("already holds a TUF repository")

// InitOptions configure Init.
type InitOptions struct {
	// Database is published as the first targets.
	Database *Database
	// OfflineKeys is the directory the root and targets keys are written
	// to; move them offline afterwards. It must not be OnlineKeys.
	OfflineKeys string
	// OnlineKeys is the directory of the snapshot and timestamp keys;
	// empty means DIR/keys.
	OnlineKeys string
	// RootKeys and RootThreshold: root is signed by RootThreshold of
	// RootKeys keys (default 1 of 1). Likewise for targets.
	RootKeys, RootThreshold       int
	TargetsKeys, TargetsThreshold int
	// RootExpiry and TargetsExpiry default to DefaultRootExpiry and
	// DefaultTargetsExpiry.
	RootExpiry, TargetsExpiry time.Duration
	// Now is the time of signing; zero means time.Now().
	Now time.Time
}

func (o InitOptions) withDefaults(dir string) InitOptions {
	o.RootKeys, o.RootThreshold = max(o.RootKeys, 1), max(o.RootThreshold, 1)
	o.TargetsKeys, o.TargetsThreshold = max(o.TargetsKeys, 1), max(o.TargetsThreshold, 1)
	if o.RootExpiry <= 0 {
		o.RootExpiry = DefaultRootExpiry
	}
	if o.TargetsExpiry <= 0 {
		o.TargetsExpiry = DefaultTargetsExpiry
	}
	if o.OnlineKeys == "" {
		o.OnlineKeys = filepath.Join(dir, DefaultOnlineKeys)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}

// Init creates a TUF repository in dir (which may exist but must not hold
// one) publishing opts.Database: new keys for every role, written to their
// directories; root and targets version 1; the first snapshot and
// timestamp. A repository is created once: clients pin its root.
//
// A repository exists once metadata/1.root.json does; Init decides that
// under the repository's lock, so of concurrent Inits one creates it and
// the others find it (on unix only: elsewhere the lock does nothing, and
// concurrent Inits may remove each other's build; run one at a time). It builds metadata/ and targets/ in a temporary
// directory inside dir and renames them into place, metadata/ last: a
// crash leaves either no metadata/1.root.json (a later Init starts over)
// or the whole repository.
func Init(dir string, opts InitOptions) (*Repo, error) {
	opts = opts.withDefaults(dir)
	if err := opts.check(); err != nil {
		return nil, err
	}
	if err := mkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create repository: %w", err)
	}
	unlock, err := lock(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	switch _, err := os.Lstat(filepath.Join(dir, metadataDir, versionedName(1, metadata.ROOT))); {
	case err == nil:
		return nil, fmt.Errorf("%s: %w; clients pin its root, so it is never re-created", dir, ErrExists)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("failed to check %s: %w", dir, err)
	}
	// No root version 1: nothing was published, no client pinned
	// anything. What an Init that crashed left goes.
	if err := removeLeftovers(dir); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(dir, initTemp)
	if err != nil {
		return nil, fmt.Errorf("failed to create repository: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, d := range []string{metadataDir, targetsDir} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return nil, fmt.Errorf("failed to create repository: %w", err)
		}
	}
	build := &Repo{dir: tmp}
	if err := build.init(opts, func() error { return moveInto(tmp, dir) }); err != nil {
		return nil, err
	}
	// Past the point of no return: the repository exists and its keys
	// stay, whatever happens now.
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("created the TUF repository %s and kept its keys, but failed to make it durable: %w; check the disk, then check the repository with sumd tuf status (do not run init again: it refuses an existing repository)", dir, err)
	}
	return &Repo{dir: dir}, nil
}

// initTemp prefixes the temporary directory Init builds a repository in.
const initTemp = ".init-"

// moveInto renames the metadata and targets built in tmp into dir,
// metadata last: its 1.root.json is the point of no return, so moveInto
// fails only before it (the rename is atomic) and leaves syncing dir to
// the caller, past it.
func moveInto(tmp, dir string) error {
	for _, d := range []string{targetsDir, metadataDir} {
		if err := os.Rename(filepath.Join(tmp, d), filepath.Join(dir, d)); err != nil {
			return fmt.Errorf("failed to create repository: %w", err)
		}
	}
	return nil
}

// removeLeftovers removes what an Init that crashed left in dir, which
// holds no root version 1: its temporary directories, and metadata/ and
// targets/ as older versions of sumd left them (one that failed removed
// metadata/ and could crash half-way). An Init writes version 1 of each
// role (timestamp.json included), targets and temporary files only; a
// later version of any role means the repository was published (and has lost its
// 1.root.json), anything else that the directory is not one sumd made.
// Either way Init refuses to touch it.
func removeLeftovers(dir string) error {
	temps, err := filepath.Glob(filepath.Join(dir, initTemp+"*"))
	if err != nil {
		return err
	}
	for _, d := range []string{metadataDir, targetsDir} {
		err := filepath.WalkDir(filepath.Join(dir, d), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			return checkLeftover(dir, filepath.ToSlash(rel), e.IsDir())
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		temps = append(temps, filepath.Join(dir, d))
	}
	for _, path := range temps {
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("failed to remove what an interrupted init left: %w", err)
		}
	}
	return nil
}

// checkLeftover says whether rel, a path below dir, is one an interrupted
// Init can leave.
func checkLeftover(dir, rel string, isDir bool) error {
	f, layout := ParsePath(rel)
	switch {
	case isDir && (rel == metadataDir || rel == targetsDir || rel == targetsDir+"/sumdb"),
		!isDir && strings.HasPrefix(path.Base(rel), ".tmp-"),
		!isDir && layout && (!f.Metadata || strings.HasPrefix(path.Base(rel), "1.")),
		!isDir && rel == metadataDir+"/"+timestampFile && firstTimestamp(filepath.Join(dir, filepath.FromSlash(rel))):
		return nil
	case !isDir && layout:
		return fmt.Errorf("%s holds %s but no %s/%s: %w, which lost its first root; restore %s/%s from a backup (clients pin the chain, so it is never re-created)",
			dir, rel, metadataDir, versionedName(1, metadata.ROOT), ErrExists, metadataDir, versionedName(1, metadata.ROOT))
	}
	return fmt.Errorf("%s holds %s, which is not a file of a TUF repository: remove it or choose another directory", dir, rel)
}

// firstTimestamp says whether the timestamp.json at path is version 1,
// the only one an Init writes: sumd serve re-signs it daily, so a later
// one was published.
func firstTimestamp(path string) bool {
	data, err := readCapped(path, maxMetadata)
	if err != nil {
		return false
	}
	var ts struct {
		Signed struct{ Version int64 }
	}
	return json.Unmarshal(data, &ts) == nil && ts.Signed.Version == 1
}

func (o InitOptions) check() error {
	var errs []error
	if o.Database == nil {
		return errors.New("no database to publish")
	}
	errs = append(errs, o.Database.check())
	for _, r := range []struct {
		role         string
		n, threshold int
	}{{metadata.ROOT, o.RootKeys, o.RootThreshold}, {metadata.TARGETS, o.TargetsKeys, o.TargetsThreshold}} {
		if r.n > maxRoleKeys || r.threshold > r.n {
			errs = append(errs, fmt.Errorf("%s: threshold %d of %d keys: want 1 ≤ threshold ≤ keys ≤ %d", r.role, r.threshold, r.n, maxRoleKeys))
		}
	}
	if SameDir(o.OfflineKeys, o.OnlineKeys) {
		errs = append(errs, fmt.Errorf("the offline keys (root, targets) would be written to %s, the online keys' directory, which stays where the server signs: "+
			"give them a directory of their own, to move offline", o.OfflineKeys))
	}
	return errors.Join(errs...)
}

// SameDir reports whether a and b name one directory: the same path, or
// the same directory if both exist. sumd tuf rotate-root uses it to keep
// new offline keys out of the online keys' directory, as Init does.
func SameDir(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	ab, err2 := filepath.Abs(b)
	if err1 == nil && err2 == nil && aa == ab {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// init generates the keys, writes version 1 of every role and calls
// publish to move them into place. If it fails, it removes the key files
// it wrote: they sign nothing published, and left beside the keys of a
// later Init they would only confuse. publish must therefore fail only
// before the repository is in place; whatever may fail after belongs to
// the caller.
func (r *Repo) init(o InitOptions, publish func() error) (err error) {
	var written []string
	defer func() {
		if err != nil {
			for _, path := range written {
				os.Remove(path)
			}
		}
	}()
	root := metadata.Root(expiry(o.Now, o.RootExpiry))
	roleKeys := map[string][]*Key{}
	for _, rk := range []struct {
		role string
		n    int
		dir  string
	}{
		{metadata.ROOT, o.RootKeys, o.OfflineKeys}, {metadata.TARGETS, o.TargetsKeys, o.OfflineKeys},
		{metadata.SNAPSHOT, 1, o.OnlineKeys}, {metadata.TIMESTAMP, 1, o.OnlineKeys},
	} {
		keys, err := newRoleKeys(root, rk.role, rk.n, rk.dir, &written)
		if err != nil {
			return err
		}
		roleKeys[rk.role] = keys
	}
	root.Signed.Roles[metadata.ROOT].Threshold = o.RootThreshold
	root.Signed.Roles[metadata.TARGETS].Threshold = o.TargetsThreshold
	data, err := signAndEncode(root, roleKeys[metadata.ROOT])
	if err == nil {
		err = root.VerifyDelegate(metadata.ROOT, root)
	}
	if err != nil {
		return fmt.Errorf("failed to sign root: %w", err)
	}
	if err := r.writeVersion(metadata.ROOT, 1, data); err != nil {
		return err
	}
	if err := r.writeTargets(root, o.Database, 1, roleKeys[metadata.TARGETS], expiry(o.Now, o.TargetsExpiry)); err != nil {
		return err
	}
	st, err := r.load()
	if err != nil {
		return err
	}
	st.first = true
	if _, err = r.signOnline(st, []string{o.OnlineKeys}, o.Now); err != nil {
		return err
	}
	return publish()
}

// newRoleKeys generates n keys for role, writes them to dir, adding their
// paths to written, and adds them to root.
func newRoleKeys(root *metadata.Metadata[metadata.RootType], role string, n int, dir string, written *[]string) ([]*Key, error) {
	var keys []*Key
	for range n {
		k, err := GenerateKey()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, KeyFileName(role, k))
		if err := k.WriteFile(path); err != nil {
			return nil, err
		}
		*written = append(*written, path)
		if err := root.Signed.AddKey(k.public, role); err != nil {
			return nil, fmt.Errorf("failed to add %s key: %w", role, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
