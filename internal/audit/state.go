package audit

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/sumd-project/sumd/internal/durable"
)

// The state directory DIR holds one subdirectory per database, named after
// the database with "/" turned into "_" (as sumd keygen names key files):
//
//	DIR/<name>/latest    the newest signed tree head verified, verbatim, as
//	                     the go command keeps $GOPATH/pkg/sumdb/<name>/latest
//	DIR/<name>/audit.db  bbolt: bucket "meta" holds "head" (the signed head
//	                     the full audit was last checkpointed under),
//	                     "frontier" (the audited size and the right edge of
//	                     the tree at that size, see frontier.marshal) and
//	                     "vkeys" (every verifier key that verified a head
//	                     saved here, one per line: see rememberKeys);
//	                     bucket "keys" maps every module@version audited to
//	                     its record id (8 bytes, big-endian); one longer
//	                     than a bbolt key may be is keyed by its digest
//	                     (see storedKey).
//
// audit.db also serves as the directory's lock: bbolt holds an exclusive
// lock on it, so two runs on one state cannot interleave.
const (
	latestFile = "latest"
	auditFile  = "audit.db"
)

var (
	bucketMeta  = []byte("meta")
	bucketKeys  = []byte("keys")
	keyHead     = []byte("head")
	keyFrontier = []byte("frontier")
	keyVKeys    = []byte("vkeys")
)

// A state is the auditor's memory of one database. Without a state
// directory, a full audit still needs a set of the keys seen; it then lives
// in a temporary file that is removed on close.
type state struct {
	dir  string // DIR/<name>; empty for a temporary state
	db   *bbolt.DB
	temp string // the temporary directory to remove on close
}

// ErrStateInUse means another run holds the state directory.
var ErrStateInUse = errors.New("state directory is in use by another sumd verify")

// openState opens (creating it if needed) the state of database name
// under dir.
func openState(dir, name string) (*state, error) {
	sub := strings.ReplaceAll(name, "/", "_")
	if !filepath.IsLocal(sub) {
		return nil, fmt.Errorf("database name %q cannot name a state directory", name)
	}
	path := filepath.Join(dir, sub)
	if err := mkdirDurable(path); err != nil {
		return nil, fmt.Errorf("failed to create state directory: %w", err)
	}
	db, err := openBolt(filepath.Join(path, auditFile), false)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrStateInUse)
	}
	if err != nil {
		return nil, err
	}
	return &state{dir: path, db: db}, nil
}

// mkdirDurable creates path and any missing parents, syncing the parent
// of each directory created: saveLatest syncs the state directory alone
// (which makes audit.db's name durable too), and until its own name is, a
// crash could lose the whole state of a run that returned, and the next
// run audit afresh with no saved head to detect a fork against.
func mkdirDurable(path string) error {
	var missing []string // path and its missing parents, deepest first
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, fs.ErrNotExist) || p == filepath.Dir(p) {
			break
		}
		missing = append(missing, p)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	for _, p := range slices.Backward(missing) {
		if err := syncDir(filepath.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

// openTempState opens a throwaway key set for a run without a state
// directory. It need not survive a crash, so it is never synced.
func openTempState() (*state, error) {
	dir, err := os.MkdirTemp("", "sumd-verify-")
	if err != nil {
		return nil, fmt.Errorf("failed to create temporary key set: %w", err)
	}
	db, err := openBolt(filepath.Join(dir, auditFile), true)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &state{db: db, temp: dir}, nil
}

func openBolt(path string, nosync bool) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o644, &bbolt.Options{
		Timeout: 100 * time.Millisecond, NoSync: nosync, NoFreelistSync: true,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketKeys} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("failed to initialize %s: %w", path, err)
	}
	return db, nil
}

func (s *state) close() error {
	err := s.db.Close()
	if s.temp != "" {
		os.RemoveAll(s.temp)
	}
	return err
}

// latest returns the saved head, or nil if there is none.
func (s *state) latest() ([]byte, error) {
	if s.dir == "" {
		return nil, nil
	}
	data, err := os.ReadFile(filepath.Join(s.dir, latestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read saved head: %w", err)
	}
	return data, nil
}

// saveLatest replaces the saved head by head, atomically and durably: a
// crash leaves the old head or the new one, never a torn file, so the
// next run can still detect a fork.
func (s *state) saveLatest(head []byte) error {
	if s.dir == "" {
		return nil
	}
	tmp, err := os.CreateTemp(s.dir, latestFile+".tmp*")
	if err != nil {
		return fmt.Errorf("failed to save head: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	err = tmp.Chmod(0o644)      // a signed head is public; CreateTemp makes 0600
	if err == nil {
		_, err = tmp.Write(head)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(s.dir, latestFile))
	}
	if err == nil {
		err = syncDir(s.dir) // until then, a crash may undo the rename
	}
	if err != nil {
		return fmt.Errorf("failed to save head: %w", err)
	}
	return nil
}

// rememberedKeys returns the verifier keys that verified the heads saved
// here before (see rememberKeys).
func (s *state) rememberedKeys() ([]string, error) {
	var vkeys []string
	err := s.db.View(func(tx *bbolt.Tx) error {
		vkeys = strings.Fields(string(tx.Bucket(bucketMeta).Get(keyVKeys)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read remembered keys: %w", err)
	}
	return vkeys, nil
}

// rememberKeys adds vkeys, the keys that verified a head about to be saved,
// to the remembered keys, durably, before the head is saved. A later run
// verifies the saved heads with the keys it is given and the remembered
// ones: after a key rotation the saved head may be signed by a key that is
// no longer given (or published), and it is still the head this auditor
// verified. Only saved heads are verified with remembered keys; what the
// server sends must verify with the keys given.
func (s *state) rememberKeys(vkeys []string) error {
	if s.dir == "" {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		known := strings.Fields(string(meta.Get(keyVKeys)))
		n := len(known)
		for _, v := range vkeys {
			if !slices.Contains(known, v) {
				known = append(known, v)
			}
		}
		if len(known) == n {
			return nil
		}
		return meta.Put(keyVKeys, []byte(strings.Join(known, "\n")+"\n"))
	})
	if err != nil {
		return fmt.Errorf("failed to remember verifier keys: %w", err)
	}
	return nil
}

// A checkpoint is how far the full audit has come: the records before
// frontier.size have been checked, under signed head head.
type checkpoint struct {
	head     []byte
	frontier *frontier
}

// checkpoint returns the last checkpoint, or nil if no full audit has
// checkpointed yet. The caller verifies the head.
func (s *state) checkpoint() (*checkpoint, error) {
	var cp *checkpoint
	err := s.db.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		head, fr := meta.Get(keyHead), meta.Get(keyFrontier)
		if head == nil || fr == nil {
			return nil
		}
		f, err := unmarshalFrontier(fr)
		if err != nil {
			return err
		}
		cp = &checkpoint{head: bytes.Clone(head), frontier: f}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read audit checkpoint: %w", err)
	}
	return cp, nil
}

// A seenKey is a module@version met at record id.
type seenKey struct {
	key string
	id  int64
}

// A duplicate is a module@version met at two record ids.
type duplicate struct {
	key         string
	first, then int64
}

// commit adds keys to the set of keys seen and, if cp is not nil and no
// key is a duplicate, records cp, in one transaction, and returns the keys already seen at another
// record id. A key seen at the same id is a record audited again (after a
// run stopped between checkpoints), not a duplicate, so commit is safe to
// repeat.
func (s *state) commit(keys []seenKey, cp *checkpoint) ([]duplicate, error) {
	// Sorted puts touch each B+tree page once; the id breaks ties so that
	// the first of a duplicate pair goes in first.
	slices.SortFunc(keys, func(a, b seenKey) int {
		return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.id, b.id))
	})
	var dups []duplicate
	err := s.db.Update(func(tx *bbolt.Tx) error {
		dups = dups[:0] // Update may not retry, but stay idempotent anyway
		b := tx.Bucket(bucketKeys)
		for _, k := range keys {
			key := storedKey(k.key)
			if v := b.Get(key); v != nil {
				if first := int64(binary.BigEndian.Uint64(v)); first != k.id {
					dups = append(dups, duplicate{k.key, first, k.id})
				}
				continue
			}
			if err := b.Put(key, binary.BigEndian.AppendUint64(nil, uint64(k.id))); err != nil {
				return err
			}
		}
		// A duplicate is a problem: the checkpoint must not pass it, so
		// that every later run finds it again.
		if cp == nil || s.dir == "" || len(dups) > 0 {
			return nil
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyHead, cp.head); err != nil {
			return err
		}
		return meta.Put(keyFrontier, cp.frontier.marshal())
	})
	if err != nil {
		return nil, fmt.Errorf("failed to record audited keys: %w", err)
	}
	return dups, nil
}

// storedKey is the key of module@version key in bucket "keys": key itself,
// or, if it is longer than bbolt.MaxKeySize, a zero byte and its SHA-256.
// The protocol does not limit a module path, and a hostile database's
// record could otherwise stop every full audit on bbolt's "key too large".
// No module path starts with a zero byte, and the keys stored before
// digests were used are all short enough to be stored as they are.
func storedKey(key string) []byte {
	if len(key) <= bbolt.MaxKeySize {
		return []byte(key)
	}
	sum := sha256.Sum256([]byte(key))
	return append([]byte{0}, sum[:]...)
}

// syncDir is durable.SyncDir; a variable, so that a test can see it
// called.
var syncDir = durable.SyncDir
