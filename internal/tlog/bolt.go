package tlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/durable"
	"github.com/sumd-project/sumd/internal/newdirs"
)

// The bbolt layout. Every bucket is written only by the sequencer, in the
// same transaction as the signed tree head that covers it.
//
//	meta     format    "1"
//	         name      checksum database name
//	         vkey      verifier key the log was created with
//	         vkeys     verifier keys it signs with now, one per line
//	         head      latest signed tree head (a signed note)
//	         mirror    "1" in a mirror's store (absent otherwise)
//	         indexed   one more than the highest id an index entry names
//	                   (8 bytes, big-endian; see below)
//	records  id (8 bytes, big-endian)      -> record text (two go.sum lines)
//	index    "path@version"                -> id (8 bytes, big-endian)
//	tiles    level (1 byte) ‖ n (8 bytes)   -> hash tile data, 32 bytes per hash
//	aux      key                           -> auxiliary state (AuxStore)
//
// Only hash tiles are stored, not every stored hash: a tile of height 8 at
// level L holds the tree's hashes at level 8L, and x/mod's HashFromTile
// recomputes the levels in between. That is 32 bytes per record plus 1/256
// of that per level above, against about 64 for all stored hashes, and a
// tile request is one Get. Tiles only grow: the last tile of a level is
// rewritten wider as records arrive, so every narrower width a client ever
// saw is a prefix of the stored data and stays servable (PROTOCOL.md §1).
//
// The index is keyed by module version, so the highest id it names (which
// Open checks against a primary's signed head: BeyondHeadError) would take
// a scan of every entry, pages spread over the whole file by random
// inserts: 3.4–4.3 s of a start at a million records with a cold page
// cache, against 0.14–0.16 s reading "indexed", which commits keep in the
// transaction of their entries. Files written before it have none, and an
// older sumd writing to a newer file leaves it behind: a stored extent
// below the records' (every record a primary stores is indexed with it,
// in one transaction) is not trusted, and neither is a malformed one; then
// Extent scans, and opening a primary's log for writing stores the scan's
// answer once. The trade: an index entry beyond the last record, which
// sumd never writes (only an edit of the file could), is no longer found
// at open. In a mirror the value may exceed the true extent (an origin's
// duplicate versions re-point a key to an older id; records with no index
// entry): mirrors are not checked, and it only bounds a scan there.
var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	bucketIndex   = []byte("index")
	bucketTiles   = []byte("tiles")
	bucketAux     = []byte("aux")

	keyFormat  = []byte("format")
	keyName    = []byte("name")
	keyVKey    = []byte("vkey")  // the key the log was created with
	keyVKeys   = []byte("vkeys") // the keys it signs with now, one per line
	keyHead    = []byte("head")
	keyMirror  = []byte("mirror")
	keyIndexed = []byte("indexed")
)

// formatVersion is the layout above. OpenBolt refuses any other. The mirror
// key came later without a new version: a store without it is a primary's,
// as every store before it was.
const formatVersion = "1"

// mmapSize is the address space bbolt maps at open for a file of size
// bytes: twice the file, and at least 8 GiB (about 25 million records), on
// 64-bit systems that map files lazily. bbolt remaps the file whenever it
// outgrows its mapping, and to do so a commit first copies every page it
// touched onto the heap and waits for all read transactions to end, while
// new ones queue behind it: growing 330 bytes a record from a small
// mapping, that is a pause of readers, and a fifth of a bulk import's
// time; and an online backup holds a read transaction for as long as it
// writes (Snapshot), so a remap during one stops the server until the
// backup ends. Mapping twice the file puts the next remap after the file
// has doubled since it was opened. Address space costs nothing until pages
// are touched; Windows grows the file to the mapping, so it keeps bbolt's
// default there (0), as do 32-bit systems.
func mmapSize(size int64) int {
	if runtime.GOOS == "windows" || strconv.IntSize < 64 {
		return 0
	}
	return int(max(8<<30, 2*size))
}

// MaxAuxSize caps one auxiliary value.
const MaxAuxSize = 64 << 20

func idKey(id int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(id))
}

func tileKey(id TileID) []byte {
	return binary.BigEndian.AppendUint64([]byte{byte(id.L)}, uint64(id.N))
}

// A BoltStore is a Store in one bbolt file, the layout above. Its file
// lock makes its Log the only writer, so its head never moves under it.
type BoltStore struct {
	db *bbolt.DB

	// wedged is the damage a read met in bbolt's beginTx (see safeRead),
	// and onDamage what the Log asked to be told of damage (notifyDamage).
	wedged   atomic.Pointer[DamagedError]
	onDamage atomic.Pointer[func(d *DamagedError, wedged bool)]

	// minFree is the space every write leaves free on the file's file
	// system (negative: no check), and free reads that space; a test
	// sets it to fake a full disk.
	minFree int64
	free    func(path string) (int64, bool)

	// made is what OpenBolt made for a file it created, for Open to
	// remove if it fails to open a log there (closeDiscarding); nil if the
	// file was there.
	made *madeFile

	// beforeCommit and afterCommit, if set by a test, run inside Commit's
	// transaction just before it commits, and after it committed: faults
	// that leave the batch not persisted, and persisted. afterCreate runs
	// after Create committed: a create that failed but persisted.
	beforeCommit, afterCommit func(*Batch) error
	afterCreate               func() error
}

var (
	_ Store    = (*BoltStore)(nil)
	_ AuxStore = (*BoltStore)(nil)
)

// BoltOptions configure OpenBolt.
type BoltOptions struct {
	// Create allows creating the file if it does not exist when OpenBolt
	// opens it; never again once a file it opened was moved away while it
	// waited for the lock (writableOpenFile).
	Create bool
	// LockTimeout is how long to wait for another process to release the
	// file (default 100ms); then OpenBolt fails with ErrLocked.
	LockTimeout time.Duration
	// ReadOnly opens the file for reading only, under a shared lock:
	// writes fail, and other read-only openers may share it. For reading
	// a backup or a copy without changing it.
	ReadOnly bool
	// MinFree is the space, in bytes, every write leaves free on the file
	// system holding the file: a write that would leave less is refused
	// with a *LowDiskError, having stored nothing. 0 means DefaultMinFree;
	// a negative value turns the check off.
	MinFree int64
}

// OpenBolt opens the bbolt store at path.
func OpenBolt(path string, opts BoltOptions) (*BoltStore, error) {
	_, err := os.Stat(path)
	missing := errors.Is(err, fs.ErrNotExist)
	if missing && !opts.Create {
		return nil, fmt.Errorf("database %s: %w", path, fs.ErrNotExist)
	}
	var made *madeFile
	if !opts.ReadOnly {
		if missing {
			made = &madeFile{path: path, dirs: newdirs.Missing(filepath.Dir(path))}
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("failed to create database directory: %w", err)
		}
	}
	timeout := opts.LockTimeout
	if timeout <= 0 {
		timeout = 100 * time.Millisecond
	}
	var size int64
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	bo := &bbolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly, InitialMmapSize: mmapSize(size)}
	if !opts.ReadOnly {
		// The process that publishes and signs reads the file from the
		// disk, not from pages a failed sync left cached (writableOpenFile).
		bo.OpenFile = writableOpenFile(timeout, opts.Create)
	}
	db, err := openBolt(path, bo)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrLocked)
	}
	if errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open database %s: %w", path, err)
	}
	minFree := opts.MinFree
	if minFree == 0 {
		minFree = DefaultMinFree
	}
	return &BoltStore{db: db, minFree: minFree, free: freeSpace, made: made}, nil
}

// A madeFile is a database file OpenBolt created, and the directories it
// made for it (newdirs.Missing).
type madeFile struct {
	path string
	dirs []string
	// logged is set once Create wrote a log into the file: this store's,
	// as no other process had one there first, and no other has read it
	// since, the file's lock being held from OpenBolt to closeDiscarding.
	logged bool
}

// closeDiscarding closes s after an open of the log in it failed, and
// removes the file first if OpenBolt created it and it holds no log, or
// only the new log this store's Create wrote (a create whose commit failed
// but persisted, or an open that failed after it): a failed create (a full
// disk, a -min-free-disk above the free space) must not leave a file that
// the next run takes for a database, nor the directories made for it
// (each removed only while empty). The file is removed while its lock is
// held: a writer waiting for the lock finds the path gone once it has it,
// and fails instead of creating a log in a file no longer at the path
// (writableOpenFile). A file created meanwhile by another process's
// create, which then holds that process's log, is kept.
func (s *BoltStore) closeDiscarding() error {
	m := s.made
	if m == nil {
		return s.Close()
	}
	if _, err := s.Load(context.Background()); !m.logged && !errors.Is(err, ErrNoLog) {
		return s.Close()
	}
	rerr := os.Remove(m.path)
	err := s.Close()
	if rerr != nil {
		return errors.Join(err, fmt.Errorf("failed to remove the new database file holding no log: %w", rerr))
	}
	newdirs.Remove(m.dirs)
	return err
}

// Path is the file's path.
func (s *BoltStore) Path() string { return s.db.Path() }

// Size is the file's size in bytes.
func (s *BoltStore) Size() (int64, error) {
	var n int64
	err := s.viewTx(func(tx *bbolt.Tx) error { n = tx.Size(); return nil })
	return n, err
}

// Close closes the file. A wedged store (safeRead) answers its damage
// without closing the file: bbolt's Close would wait for ever for the
// locks the panic left held. The process should exit, which releases the
// file and its lock.
func (s *BoltStore) Close() error {
	if d := s.wedged.Load(); d != nil {
		return d
	}
	return s.db.Close()
}

// buckets are the log's buckets in one transaction.
type buckets struct {
	meta, records, index, tiles *bbolt.Bucket
}

func openBuckets(tx *bbolt.Tx) (buckets, error) {
	b := buckets{
		meta:    tx.Bucket(bucketMeta),
		records: tx.Bucket(bucketRecords),
		index:   tx.Bucket(bucketIndex),
		tiles:   tx.Bucket(bucketTiles),
	}
	if b.meta == nil {
		return b, ErrNoLog
	}
	if b.records == nil || b.index == nil || b.tiles == nil {
		return b, errMissingBucket
	}
	// Records are appended with increasing keys: fill pages completely.
	b.records.FillPercent = 1
	return b, nil
}

// errMissingBucket is a file with sumd's metadata but not all its buckets.
var errMissingBucket = errors.New("database is missing a bucket: not a sumd log, or damaged")

// viewBucket runs f on one bucket of the log in a read transaction.
// Opening only the bucket a read needs is a quarter of the bucket lookups
// of openBuckets, which the hot reads (lookups, tiles) feel.
func (s *BoltStore) viewBucket(name []byte, f func(*bbolt.Bucket) error) error {
	return s.viewTx(func(tx *bbolt.Tx) error {
		b := tx.Bucket(name)
		if b == nil {
			if tx.Bucket(bucketMeta) == nil {
				return ErrNoLog
			}
			return errMissingBucket
		}
		return f(b)
	})
}

func (s *BoltStore) view(f func(buckets) error) error {
	return s.viewTx(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		return f(b)
	})
}

// Load reads the metadata and head, refusing another format.
func (s *BoltStore) Load(ctx context.Context) (State, error) {
	var st State
	err := s.view(func(b buckets) error {
		if f := string(b.meta.Get(keyFormat)); f != formatVersion {
			return fmt.Errorf("database format %q is not supported by this sumd (want %q)", f, formatVersion)
		}
		st.Meta = Meta{
			Name:   string(b.meta.Get(keyName)),
			VKeys:  storedVKeys(b),
			Mirror: b.meta.Get(keyMirror) != nil,
		}
		if h := b.meta.Get(keyHead); len(h) > 0 {
			st.Head = bytes.Clone(h)
		}
		return nil
	})
	return st, err
}

// storedVKeys returns the verifier keys the log signs with. Databases
// written before key rotation have only vkey.
func storedVKeys(b buckets) []string {
	if v := b.meta.Get(keyVKeys); v != nil {
		return strings.Split(string(v), "\n")
	}
	return []string{string(b.meta.Get(keyVKey))}
}

// syncDir is durable.SyncDir; a variable, so that a test can see it
// called, or fail it.
var syncDir = durable.SyncDir

// Create creates the buckets, metadata and first head of a new log.
func (s *BoltStore) Create(ctx context.Context, meta Meta, head []byte) error {
	if len(meta.VKeys) == 0 {
		return fmt.Errorf("%w: a log needs a verifier key", ErrNotPersisted)
	}
	err := s.update(int64(len(head)), func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMeta) != nil {
			return ErrLogExists
		}
		if s.made != nil {
			s.made.logged = true // even if the commit fails: it may persist
		}
		for _, name := range [][]byte{bucketRecords, bucketIndex, bucketTiles} {
			if b := tx.Bucket(name); b != nil {
				if k, _ := b.Cursor().First(); k != nil {
					return fmt.Errorf("%w: %w", ErrNotPersisted, ErrLeftoverData)
				}
				if err := tx.DeleteBucket(name); err != nil {
					return fmt.Errorf("failed to replace empty bucket %s: %w", name, err)
				}
			}
		}
		for _, name := range [][]byte{bucketMeta, bucketRecords, bucketIndex, bucketTiles} {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("failed to create bucket %s: %w", name, err)
			}
		}
		kv := map[string][]byte{
			string(keyFormat):  []byte(formatVersion),
			string(keyName):    []byte(meta.Name),
			string(keyVKey):    []byte(meta.VKeys[0]),
			string(keyVKeys):   []byte(strings.Join(meta.VKeys, "\n")),
			string(keyIndexed): idKey(0),
		}
		if head != nil {
			kv[string(keyHead)] = head
		}
		if meta.Mirror {
			kv[string(keyMirror)] = []byte("1")
		}
		m := tx.Bucket(bucketMeta)
		for k, v := range kv {
			if err := m.Put([]byte(k), v); err != nil {
				return fmt.Errorf("failed to store %s: %w", k, err)
			}
		}
		return nil
	})
	if err == nil {
		err = s.syncName()
	}
	if err == nil && s.afterCreate != nil {
		return s.afterCreate()
	}
	return err
}

// syncName makes the names of the file and of the directories OpenBolt
// made for it durable, once Create stored a log in it: bbolt syncs the
// file's pages, never its directory, so a crash could lose a new file
// whole, and with it every record acknowledged from it. A failure leaves
// the log stored under a name that may not survive: not ErrNotPersisted,
// and Open then fails and removes the file (closeDiscarding).
func (s *BoltStore) syncName() error {
	dirs := []string{filepath.Dir(s.db.Path())}
	if s.made != nil {
		for _, d := range s.made.dirs {
			dirs = append(dirs, filepath.Dir(d))
		}
	}
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("the new log is stored, but its file's name may not survive a crash: %w", err)
		}
	}
	return nil
}

// Commit writes b in one bbolt transaction, after checking b.Prev.
func (s *BoltStore) Commit(ctx context.Context, b *Batch) error {
	err := s.update(batchBytes(b), func(tx *bbolt.Tx) error {
		bk, err := openBuckets(tx)
		if err != nil {
			return err
		}
		if !bytes.Equal(bk.meta.Get(keyHead), b.Prev) {
			return ErrHeadMoved
		}
		if err := bk.put(b); err != nil {
			return err
		}
		if s.beforeCommit != nil {
			return s.beforeCommit(b)
		}
		return nil
	})
	if err == nil && s.afterCommit != nil {
		return s.afterCommit(b)
	}
	return err
}

// put stages b's records, index entries, tiles, head and keys in a write
// transaction.
func (b buckets) put(batch *Batch) error {
	for _, r := range batch.Records {
		if err := b.records.Put(idKey(r.ID), r.Text); err != nil {
			return fmt.Errorf("failed to store record %d: %w", r.ID, err)
		}
	}
	// Index entries go in key order: bbolt splits nodes only at commit, so
	// keys put in random order into one node cost a memmove of the node
	// each, quadratic in a batch's size (a mirror's steps hold 262,144).
	keyed := slices.DeleteFunc(slices.Clone(batch.Records), func(r StoredRecord) bool { return r.Key == "" })
	slices.SortFunc(keyed, func(x, y StoredRecord) int { return strings.Compare(x.Key, y.Key) })
	for _, r := range keyed {
		if err := b.index.Put([]byte(r.Key), idKey(r.ID)); err != nil {
			return fmt.Errorf("failed to index record %d: %w", r.ID, err)
		}
	}
	if len(keyed) > 0 {
		n, err := b.indexed(0) // with the entries just put
		if err != nil {
			return err
		}
		for _, r := range keyed {
			n = max(n, r.ID+1)
		}
		if err := b.meta.Put(keyIndexed, idKey(n)); err != nil {
			return fmt.Errorf("failed to store the index's extent: %w", err)
		}
	}
	for _, t := range batch.Tiles {
		if err := b.tiles.Put(tileKey(t.TileID), t.Data); err != nil {
			return fmt.Errorf("failed to store tile %d/%d: %w", t.L, t.N, err)
		}
	}
	if batch.VKeys != nil {
		if err := b.meta.Put(keyVKeys, []byte(strings.Join(batch.VKeys, "\n"))); err != nil {
			return fmt.Errorf("failed to store signing keys: %w", err)
		}
	}
	if batch.Head == nil { // a mirror staging data before it holds a head
		return b.meta.Delete(keyHead)
	}
	if err := b.meta.Put(keyHead, batch.Head); err != nil {
		return fmt.Errorf("failed to store tree head: %w", err)
	}
	return nil
}

// indexed is one more than the highest id an index entry names: the
// stored extent if it is well formed and at least atLeast (the records'
// extent), else a scan of the index (a file written before the extent was
// kept, or written to by an older sumd since).
func (b buckets) indexed(atLeast int64) (int64, error) {
	if v := b.meta.Get(keyIndexed); len(v) == 8 {
		if n := int64(binary.BigEndian.Uint64(v)); n >= atLeast {
			return n, nil
		}
	}
	return b.scanIndexed()
}

// scanIndexed reads every index entry for the highest id.
func (b buckets) scanIndexed() (int64, error) {
	var n int64
	err := b.index.ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("index entry for %s is %d bytes, want 8", k, len(v))
		}
		n = max(n, int64(binary.BigEndian.Uint64(v))+1)
		return nil
	})
	return n, err
}

// storeIndexed stores the index's extent in a primary's log file that
// lacks a trustworthy one (see indexed): the scan, once, when the log is
// opened for writing, rather than at every open. Open calls it once the
// file passed its checks (format, head, nothing beyond the head), and
// only logs an ErrNotPersisted failure (the value can be computed again at
// any time); any other is a commit in doubt, which fails Open.
func (s *BoltStore) storeIndexed() error {
	if s.db.IsReadOnly() {
		return nil
	}
	stale := func(b buckets) bool {
		var records int64
		if k, _ := b.records.Cursor().Last(); len(k) == 8 {
			records = int64(binary.BigEndian.Uint64(k)) + 1
		}
		v := b.meta.Get(keyIndexed)
		return len(v) != 8 || int64(binary.BigEndian.Uint64(v)) < records
	}
	var isStale bool
	err := s.viewTx(func(tx *bbolt.Tx) error {
		if b, err := openBuckets(tx); err == nil { // not a sumd log (yet): nothing to do
			isStale = stale(b)
		}
		return nil
	})
	if err != nil || !isStale {
		return err
	}
	err = s.update(8, func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		if !stale(b) {
			return nil
		}
		n, err := b.scanIndexed()
		if err != nil {
			return err
		}
		return b.meta.Put(keyIndexed, idKey(n))
	})
	return err
}

// update runs f in a write transaction of about need bytes and sorts its
// failures by the Store contract. A write the file system has no room for
// is refused before it starts (roomFor). An error from f rolled the
// transaction back: nothing was stored. An error from bbolt's commit is
// ambiguous: the pages may be written, and the meta page too, visible to
// readers (PROTOCOL.md §6) but not synced.
func (s *BoltStore) update(need int64, f func(tx *bbolt.Tx) error) error {
	if d := s.wedged.Load(); d != nil {
		// bbolt's writer would wait for ever for the meta lock.
		return fmt.Errorf("%w: %w", ErrNotPersisted, d)
	}
	if err := s.roomFor(need); err != nil {
		return err
	}
	staged := false
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := f(tx); err != nil {
			return err
		}
		staged = true
		return nil
	})
	switch {
	case err != nil && !staged:
		if errors.Is(err, ErrNotPersisted) || errors.Is(err, ErrLogExists) || errors.Is(err, ErrNoLog) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrNotPersisted, err)
	case err != nil:
		return fmt.Errorf("failed to commit to %s: %w", s.db.Path(), err)
	}
	return nil
}

// Lookup reads the index.
func (s *BoltStore) Lookup(ctx context.Context, keys []string) ([]int64, error) {
	ids := make([]int64, len(keys))
	err := s.viewBucket(bucketIndex, func(index *bbolt.Bucket) error {
		for i, k := range keys {
			var err error
			if ids[i], err = indexEntry(index, k); err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}

// indexEntry reads key's entry in the index: its record's id, or -1.
func indexEntry(index *bbolt.Bucket, key string) (int64, error) {
	v := index.Get([]byte(key))
	switch len(v) {
	case 0:
		return -1, nil
	case 8:
		return int64(binary.BigEndian.Uint64(v)), nil
	}
	return 0, corruptData("index entry for %s is %d bytes, want 8", key, len(v))
}

// FindRecords implements RecordFinder.
func (s *BoltStore) FindRecords(ctx context.Context, keys []string) ([]int64, [][]byte, error) {
	ids := make([]int64, len(keys))
	texts := make([][]byte, len(keys))
	err := s.viewTx(func(tx *bbolt.Tx) error {
		index, records := tx.Bucket(bucketIndex), tx.Bucket(bucketRecords)
		if index == nil || records == nil {
			if tx.Bucket(bucketMeta) == nil {
				return ErrNoLog
			}
			return errMissingBucket
		}
		for i, k := range keys {
			var err error
			if ids[i], err = indexEntry(index, k); err != nil {
				return err
			}
			if ids[i] >= 0 {
				texts[i] = bytes.Clone(records.Get(idKey(ids[i])))
			}
		}
		return nil
	})
	return ids, texts, err
}

// ScanIndex walks the index from a key.
func (s *BoltStore) ScanIndex(ctx context.Context, from string, limit int) ([]IndexEntry, error) {
	var out []IndexEntry
	err := s.view(func(b buckets) error {
		c := b.index.Cursor()
		for k, v := c.Seek([]byte(from)); k != nil && len(out) < limit; k, v = c.Next() {
			e, err := decodeIndexEntry(k, v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// decodeIndexEntry decodes the index entry k ("path@version") holding id v.
func decodeIndexEntry(k, v []byte) (IndexEntry, error) {
	path, version, ok := bytes.Cut(k, []byte("@"))
	if !ok || len(v) != 8 {
		return IndexEntry{}, corruptData("malformed index entry %q", k)
	}
	return IndexEntry{Path: string(path), Version: string(version), ID: int64(binary.BigEndian.Uint64(v))}, nil
}

// ScanIndexBack walks the index backwards from a key.
func (s *BoltStore) ScanIndexBack(ctx context.Context, before string, limit int) ([]IndexEntry, error) {
	var out []IndexEntry
	err := s.view(func(b buckets) error {
		c := b.index.Cursor()
		k, v := c.Seek([]byte(before))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev() // Seek found the first key not less than before
		}
		for ; k != nil && len(out) < limit; k, v = c.Prev() {
			e, err := decodeIndexEntry(k, v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// ScanReleases seeks the first key of each release of a module.
func (s *BoltStore) ScanReleases(ctx context.Context, path, from string, limit int) ([]IndexEntry, error) {
	prefix := []byte(path + "@")
	var out []IndexEntry
	err := s.view(func(b buckets) error {
		c := b.index.Cursor()
		k, v := c.Seek([]byte(max(from, path+"@")))
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, v = c.Seek([]byte(releaseEnd(string(k)))) {
			e, err := decodeIndexEntry(k, v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// ReadRecords reads records, walking a cursor along runs of ascending ids.
func (s *BoltStore) ReadRecords(ctx context.Context, ids []int64) ([][]byte, error) {
	out := make([][]byte, len(ids))
	err := s.viewBucket(bucketRecords, func(records *bbolt.Bucket) error {
		walkRecords(records, ids, func(i int, v []byte) { out[i] = bytes.Clone(v) })
		return nil
	})
	return out, err
}

// walkRecords calls f with each of ids's records that records holds, by
// its place in ids, stepping the cursor through runs of consecutive ids
// rather than seeking each. v is bbolt's: valid only in the transaction.
func walkRecords(records *bbolt.Bucket, ids []int64, f func(i int, v []byte)) {
	c := records.Cursor()
	found := false // the cursor is at ids[i-1]
	for i, id := range ids {
		want := idKey(id)
		var k, v []byte
		if found && ids[i-1]+1 == id {
			k, v = c.Next()
		} else {
			k, v = c.Seek(want)
		}
		if found = bytes.Equal(k, want); found {
			f(i, v)
		}
	}
}

// ReadRecordLeaves implements LeafReader: ReadRecords, and each found
// record's leaf hash copied from its level-0 tile in the same read
// transaction.
func (s *BoltStore) ReadRecordLeaves(ctx context.Context, ids []int64) ([][]byte, []tlog.Hash, error) {
	texts := make([][]byte, len(ids))
	leaves := make([]tlog.Hash, len(ids))
	err := s.viewTx(func(tx *bbolt.Tx) error {
		records, tiles := tx.Bucket(bucketRecords), tx.Bucket(bucketTiles)
		if records == nil || tiles == nil {
			if tx.Bucket(bucketMeta) == nil {
				return ErrNoLog
			}
			return errMissingBucket
		}
		var tile []byte
		tileN := int64(-1)
		walkRecords(records, ids, func(i int, v []byte) {
			texts[i] = bytes.Clone(v)
			id := ids[i]
			if n := id >> tileHeight; n != tileN {
				tile, tileN = tiles.Get(tileKey(TileID{0, n})), n
			}
			if off := int(id&(1<<tileHeight-1)) * tlog.HashSize; off+tlog.HashSize <= len(tile) {
				copy(leaves[i][:], tile[off:])
			}
		})
		return nil
	})
	return texts, leaves, err
}

// ReadTiles reads tiles.
func (s *BoltStore) ReadTiles(ctx context.Context, tiles []TileID) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	err := s.viewBucket(bucketTiles, func(b *bbolt.Bucket) error {
		for i, t := range tiles {
			out[i] = bytes.Clone(b.Get(tileKey(t)))
		}
		return nil
	})
	return out, err
}

// Extent reads, in one transaction, the head, the last record's id, the
// last tile of each level (cursor seeks) and the highest id in the index
// (its stored extent; a scan in a file written before it was kept).
func (s *BoltStore) Extent(ctx context.Context) (Extent, error) {
	var e Extent
	err := s.view(func(b buckets) error {
		if h := b.meta.Get(keyHead); len(h) > 0 {
			e.Head = bytes.Clone(h)
		}
		if k, _ := b.records.Cursor().Last(); k != nil {
			if len(k) != 8 {
				return fmt.Errorf("malformed record key %x", k)
			}
			e.Records = int64(binary.BigEndian.Uint64(k)) + 1
		}
		var err error
		if e.Indexed, err = b.indexed(e.Records); err != nil {
			return err
		}
		// From the last key down, one level at a time: the last key of
		// the level below is just before the first key of this one.
		c := b.tiles.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if len(k) != 9 {
				return fmt.Errorf("malformed tile key %x", k)
			}
			id := TileID{int(k[0]), int64(binary.BigEndian.Uint64(k[1:]))}
			e.Tiles = append(e.Tiles, TileExtent{id, len(v) / tlog.HashSize})
			c.Seek(k[:1])
		}
		slices.Reverse(e.Tiles)
		return nil
	})
	return e, err
}

// Aux reads an auxiliary value.
func (s *BoltStore) Aux(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.viewTx(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketAux); b != nil {
			v = bytes.Clone(b.Get([]byte(key)))
		}
		return nil
	})
	if len(v) == 0 {
		v = nil
	}
	return v, err
}

// SetAux stores an auxiliary value in a transaction of its own.
func (s *BoltStore) SetAux(ctx context.Context, key string, value []byte) error {
	return s.update(int64(len(key)+len(value)), func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAux)
		if err != nil {
			return fmt.Errorf("failed to create auxiliary bucket: %w", err)
		}
		if err := b.Put([]byte(key), value); err != nil {
			return fmt.Errorf("failed to store %q: %w", key, err)
		}
		return nil
	})
}
