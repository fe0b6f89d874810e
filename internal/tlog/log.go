// Package tlog is sumd's transparency log: go.sum records in a Merkle tree
// with Ed25519-signed tree heads, kept in a Store (one bbolt file by
// default).
//
// The Merkle maths, tile encoding and signed-note format are x/mod's
// (golang.org/x/mod/sumdb/tlog and note); this package adds durable storage,
// one-record-per-module-version enforcement and group commit.
//
// The invariants, which every change here must keep:
//
//  1. A record is acknowledged (Add returns its id) only after the store has
//     durably committed it, its hashes and a signed tree head covering it.
//  2. Each signed tree head is consistent with the one before: the tree only
//     grows, stored tiles only grow, and the sequencer proves consistency
//     before it signs (and before it adopts a head another writer stored).
//  3. One module@version has one record: the index is checked against the
//     head a batch extends, and the store commits the batch only if that
//     head is still the stored one.
//  4. Readers see only what is durable: the sequencer publishes a head (an
//     atomic pointer) after its commit returned, and every read is bounded
//     by the published tree, whatever the store already shows (but for
//     the older records a partial mirror learns: see Store, Reads).
//  5. A storage failure that leaves unknown whether a write was stored
//     stops the log for good (ErrFatal); reopening re-verifies and decides.
//
// One goroutine, the sequencer, owns all writes: it batches Add requests
// (group commit), stages them on top of the published tree, signs, commits
// through the Store and publishes. See docs/design/README.md.
//
// # Verifier-only logs (mirrors)
//
// A log opened with Options.VerifierKeys instead of Keys holds another
// log's data byte for byte and signs nothing: Add is refused, and Extend is
// its only write. A follower (internal/mirror) fetches the origin's signed
// head, the hash tiles that tlog.NewTiles(8, held, new) names, and any
// records it wants, and calls Extend, which verifies all of it against the
// origin's keys and the head held before storing anything:
//
//	held, _ := l.Tree(ctx)
//	ext := tlog.Extension{Head: head, Tiles: map[xtlog.Tile][]byte{}, Records: map[int64][]byte{}}
//	for _, t := range xtlog.NewTiles(8, held.N, newSize) { ext.Tiles[t] = fetch(t) }
//	err := l.Extend(ctx, ext) // *InconsistentError: fork or rollback; log it as SECURITY
//
// A mirror serves the same reads as any log; a record it does not hold is
// fs.ErrNotExist. A mirror far behind its origin reaches the origin's head
// in bounded, crash-safe steps with Stage (see staging.go): the parts of
// the extension are verified and stored ahead of the published head, and
// one last Extend publishes it.
//
// # Backups
//
// Snapshot copies a store that can (bbolt) while the log runs: started by
// the sequencer between commits, it holds exactly the published state.
// CheckStore verifies a copy in full without opening a log.
package tlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Options configure Open and OpenStore.
type Options struct {
	// Keys are the private keys of the log: every key the database lists
	// as a signing key (one, or two during a key rotation), and no other.
	// Their name is the checksum database name. A new database signs with
	// all of them.
	Keys []*Key
	// VerifierKeys, given instead of Keys, open a mirror verifier-only:
	// the verifier keys ("name+hash+key") of the log it copies. A head is
	// accepted if one of them signed it.
	VerifierKeys []string
	// LostKey is the verifier key of one of the log's keys whose private
	// key is lost: Open accepts Keys without it (but not without any
	// other), and the log signs nothing until RemoveKey(LostKey) retires
	// it. A lost key cannot sign the next head, and a head without its
	// signature is what retiring it means.
	LostKey string
	// Create allows creating the log if the store holds none (and Open the
	// database file if it does not exist). A log must never be re-created
	// under a name clients have used (they would reject its new history),
	// so callers set it only when starting a new log is what the operator
	// asked for.
	Create bool
	// MaxBatch caps the records per commit (default 1024): requests are
	// gathered into one commit up to it, and a request with more records
	// (up to MaxAddRecords) is committed alone.
	MaxBatch int
	// QueueSize caps the requests waiting for the sequencer (default 4096).
	// Add fails with ErrPushback when the queue is full.
	QueueSize int
	// LockTimeout is how long Open waits for another process to release the
	// database file (default 100ms).
	LockTimeout time.Duration
	// MinFree is the space Open's bbolt file keeps free on its file system
	// (BoltOptions.MinFree: 0 means DefaultMinFree, negative none).
	MinFree int64
	// Verify is the integrity check Open runs (default VerifyTail).
	Verify VerifyMode
	// Stop, if closed while Open verifies the stored tree (minutes for a
	// large one with VerifyFull), ends Open with ErrOpenStopped: a server
	// told to stop during its start serves nothing after it anyway.
	Stop <-chan struct{}
	// RefreshInterval is how often a log on a SharedStore reads the stored
	// head to adopt other writers' commits (default DefaultRefreshInterval).
	RefreshInterval time.Duration
	// MaxHeadAge is how long a log on a SharedStore may serve its published
	// head without confirming it against the store; past it, Signed fails
	// with *UnavailableError (default the larger of DefaultMaxHeadAge and
	// twice RefreshInterval).
	MaxHeadAge time.Duration
	// Logger receives commit and verification logs; nil means slog.Default.
	Logger *slog.Logger
	// Metrics, if non-nil, receives the log's metrics.
	Metrics *Metrics
}

// Errors callers branch on.
var (
	// ErrLocked means another process (usually a running sumd serve) holds
	// the database file.
	ErrLocked = errors.New("database is in use by another process")
	// ErrOpenStopped means Options.Stop ended Open while it verified the
	// stored tree: nothing was found wrong, and nothing was written.
	ErrOpenStopped = errors.New("the verification of the database was stopped before its end")
	// ErrPushback means the sequencer's queue is full: retry later.
	ErrPushback = errors.New("too many pending additions, try again later")
	// ErrClosed means the log has been closed.
	ErrClosed = errors.New("log is closed")
	// ErrFatal means the log stopped after a storage failure that left
	// unknown whether a write was stored. Every later write fails with it;
	// the process must exit, and reopening re-verifies the store.
	ErrFatal = errors.New("log stopped after a storage failure (restart to re-verify the database)")
	// ErrVerifierOnly means a write that needs a signing key was asked of
	// a log opened with verifier keys only.
	ErrVerifierOnly = errors.New("log is a verifier-only mirror and signs nothing")
)

// A Log is an open checksum database. Its methods are safe for concurrent
// use. It implements sumdb.ServerOps.
type Log struct {
	store      Store
	name       string
	keys       atomic.Pointer[keySet] // the signing keys; nil in a mirror. Replaced whole by the sequencer
	given      []*Key                 // Options.Keys, to re-pick from after another writer rotates keys
	lost       string                 // Options.LostKey
	origin     []note.Verifier        // a mirror's verifiers; nil in a primary
	originKeys []string               // their verifier keys
	// storedKeys are the verifier keys a mirror's store lists (Meta.VKeys),
	// read at open and replaced by the Extend that stores originKeys in
	// their place; touched only at open and in the sequencer.
	storedKeys []string
	created    bool // this open created the log (Created); set before the Log is returned
	log        *slog.Logger
	metrics    *Metrics

	maxBatch int
	queue    chan *request // to the sequencer
	done     chan struct{} // closed when the sequencer exits

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool

	pub       atomic.Pointer[Head] // the published head: durable, and the bound of every read
	errMu     sync.Mutex
	err       error         // why the log stopped: ErrFatal or ErrClosed
	stopped   chan struct{} // closed when err is set
	wedged    chan struct{} // closed when the store wedged (storeWedged)
	wedgeOnce sync.Once
	// damageLogged is when storeDamaged last logged a stack (UnixNano).
	damageLogged atomic.Int64
	closeOnce    sync.Once
	closeErr     error

	// authentic remembers the full hash tiles ReadTileData authenticated
	// against a published tree, and keeps the partial ones last
	// authenticated (authenticTile).
	authentic tileSet

	shared    *shared // nil unless the store is a SharedStore
	refreshes refreshes

	// Written by the sequencer only.
	commits atomic.Uint64 // store commits of tiles, records and index it made (for PrepareStage)

	// Owned by the sequencer goroutine after Open returns.
	edge       map[TileID][]byte // partial tiles of the published tree, cut to its width
	lastStages []stagedKeys      // what its last Stage commits indexed (maxPrepared)
}

var _ sumdb.ServerOps = (*Log)(nil)

// A Head is a signed tree head the log has published: durable, and the
// bound of every read until the next. It must not be modified.
type Head struct {
	Tree   tlog.Tree
	Signed []byte    // the signed note; nil only in a mirror with no head yet
	Time   time.Time // when this process published it; zero for the head Open found
	next   chan struct{}
}

// Next returns a channel that is closed when a newer head is published.
// Watchers (status, notifying mirrors) select on it and on Log.Done.
func (h *Head) Next() <-chan struct{} { return h.next }

// Open opens the log in the bbolt file at path, creating it if allowed,
// verifies it against its signed tree head and starts the sequencer.
func Open(path string, opts Options) (*Log, error) {
	if err := opts.check(); err != nil {
		return nil, err // before OpenBolt, which may create the file
	}
	s, err := OpenBolt(path, BoltOptions{Create: opts.Create, LockTimeout: opts.LockTimeout, MinFree: opts.MinFree})
	if err != nil {
		return nil, err
	}
	return openBoltLog(s, path, opts)
}

// openBoltLog opens the log in s, which OpenBolt opened at path, and closes
// s if that fails, discarding the file if OpenBolt made it (closeDiscarding).
func openBoltLog(s *BoltStore, path string, opts Options) (*Log, error) {
	l, err := OpenStore(s, opts)
	if err != nil {
		if cerr := s.closeDiscarding(); cerr != nil {
			err = fmt.Errorf("%w (and %w)", err, cerr)
		}
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	return l, nil
}

// OpenStore opens the log held in s, creating it if allowed, verifies it
// against its signed tree head and starts the sequencer. The log owns s
// from then on and closes it on Close; if OpenStore fails, the caller
// still owns s.
func OpenStore(s Store, opts Options) (*Log, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	l := &Log{
		store: s, given: opts.Keys, lost: opts.LostKey, log: opts.Logger, metrics: opts.Metrics,
		maxBatch: opts.MaxBatch,
		queue:    make(chan *request, opts.QueueSize),
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
		wedged:   make(chan struct{}),
		edge:     map[TileID][]byte{},
	}
	l.setupShared(opts)
	if err := l.open(context.Background(), opts); err != nil {
		return nil, err
	}
	if w, ok := s.(interface {
		notifyDamage(func(d *DamagedError, wedged bool))
	}); ok {
		w.notifyDamage(l.storeDamaged)
	}
	l.metrics.setTreeSize(l.pub.Load().Tree.N)
	go l.sequence()
	if l.shared != nil {
		l.shared.wg.Go(l.poll)
	}
	return l, nil
}

func (o Options) check() error {
	if (len(o.Keys) == 0) == (len(o.VerifierKeys) == 0) {
		return errors.New("tlog: open a log with its signing keys, or a mirror with verifier keys only")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Close stops accepting additions, commits those already queued, and closes
// the store. After the store wedged it does not wait for the sequencer,
// which may wait in the store for ever.
func (l *Log) Close() error {
	l.stopRefresh()
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-l.wedged:
	}
	l.setErr(ErrClosed)
	l.closeOnce.Do(func() { l.closeErr = l.store.Close() })
	return l.closeErr
}

// Done returns a channel that is closed when the log stops taking writes:
// after a fatal storage failure, or Close. A server watches it to exit.
func (l *Log) Done() <-chan struct{} { return l.stopped }

// Err returns nil while the log runs. Once Done is closed it returns why:
// an error wrapping ErrFatal and its cause, or ErrClosed.
func (l *Log) Err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// setErr records why the log stopped, if it is the first reason, and
// reports whether it was.
func (l *Log) setErr(err error) bool {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.err != nil {
		return false
	}
	l.err = err
	close(l.stopped)
	return true
}

// storeDamaged is told of each read that found the store's file damaged
// (BoltStore.notifyDamage): it logs the recovered panic's stack, so that
// damage blamed on the file can be told from a bug in sumd, and counts it.
// If the read wedged the store (a panic in bbolt's beginTx, leaving
// bbolt's locks held, so that every later transaction fails at once, and
// one in flight, the sequencer's commit too, may wait for ever), it stops
// the log.
//
// The stack is logged at most once a minute: each client reading the same
// damaged page meets it anew, and its request's own log line says so.
func (l *Log) storeDamaged(d *DamagedError, wedged bool) {
	now := time.Now().UnixNano()
	if last := l.damageLogged.Load(); last == 0 || now-last >= int64(time.Minute) {
		if l.damageLogged.CompareAndSwap(last, now) {
			l.log.Error("a read of the database met a damaged page and was refused; restore the database from a backup or a mirror", "err", d, "stack", d.Stack())
		}
	}
	l.metrics.damagedRead()
	if wedged {
		l.stop(d)
		l.wedgeOnce.Do(func() { close(l.wedged) })
	}
}

// fatalErr returns the error that stopped the log, if a fatal one did.
func (l *Log) fatalErr() error {
	if err := l.Err(); errors.Is(err, ErrFatal) {
		return err
	}
	return nil
}

// Name is the checksum database name.
func (l *Log) Name() string { return l.name }

// Created reports whether the open that returned l created the log (it
// was asked to, and the store held none): false for a log that existed,
// also when another process created it first.
func (l *Log) Created() bool { return l.created }

// VerifierKey is the verifier key of the log's first signing key: the one
// it was created with, or, after a rotation, its successor. A mirror's is
// the first verifier key it was opened with.
func (l *Log) VerifierKey() string { return l.VerifierKeys()[0] }

// Published returns the published head. It never blocks.
func (l *Log) Published() *Head { return l.pub.Load() }

// Signed returns the published signed tree head. On a SharedStore it fails
// with *UnavailableError if the head has not been confirmed against the
// store for Options.MaxHeadAge.
//
// The bytes are the head's own, not a copy (every lookup answer reads
// them): the caller must not modify them. Appending to them copies.
func (l *Log) Signed(ctx context.Context) ([]byte, error) {
	h := l.pub.Load()
	if h.Signed == nil {
		return nil, noHeadError(l.name)
	}
	if err := l.fresh(); err != nil {
		return nil, err
	}
	return h.Signed[:len(h.Signed):len(h.Signed)], nil
}

// A noHeadError is Signed's answer in a mirror that holds no signed head
// yet. It is an fs.ErrNotExist (a 404 at /latest), whose own text ("file
// does not exist") would only mislead whoever reads /healthz.
type noHeadError string

func (e noHeadError) Error() string {
	return "the mirror of " + string(e) + " holds no signed head yet: it has not followed its origin, or imported a bundle, since it was created"
}
func (e noHeadError) Is(target error) bool { return target == fs.ErrNotExist }

// Tree returns the published tree (size 0 in a mirror with no head yet).
func (l *Log) Tree(ctx context.Context) (tlog.Tree, error) {
	return l.pub.Load().Tree, nil
}

// Lookup returns the id of the record for m, or an error wrapping
// fs.ErrNotExist if the published tree has none. It reads the record too
// and fails with a *WrongIndexError if it is another version's (a
// damaged or edited index entry); the record itself is checked against
// its leaf only when read (ReadRecords).
func (l *Log) Lookup(ctx context.Context, m module.Version) (int64, error) {
	key := m.Path + "@" + m.Version
	var ids []int64
	var texts [][]byte // the record, if read with the index entry
	var err error
	finder, found := l.store.(RecordFinder)
	if found {
		ids, texts, err = finder.FindRecords(ctx, []string{key})
	} else {
		ids, err = l.store.Lookup(ctx, []string{key})
	}
	if err != nil {
		return 0, l.noteDamage(fmt.Errorf("failed to look up %s: %w", key, err))
	}
	if ids[0] < 0 {
		return 0, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	h, err := l.cover(ctx, ids[0]+1)
	if err != nil {
		return 0, fmt.Errorf("failed to look up %s: %w", key, err)
	}
	if ids[0] >= h.Tree.N {
		return 0, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	// An entry naming another version's record (a damaged or edited
	// index) fails here, where the store's cache can drop it: a caller
	// that finds it later cannot, and a repaired row would not be read
	// again. A record a sparse mirror lacks is its reader's to report.
	if !found {
		if texts, err = l.store.ReadRecords(ctx, ids); err != nil {
			return 0, fmt.Errorf("failed to look up %s: %w", key, err)
		}
	}
	if texts[0] != nil {
		if err := l.checkKeys(ids, []string{key}, texts); err != nil {
			return 0, fmt.Errorf("failed to look up %s: %w", key, err)
		}
	}
	return ids[0], nil
}

// maxReadRecords caps one ReadRecords call: a data tile is 256 records.
const maxReadRecords = 1 << 16

// ReadRecords returns the texts of records id through id+n-1, or an error
// wrapping fs.ErrNotExist if any of them is beyond the published tree or
// not held (by a partial mirror).
func (l *Log) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	// id+n must not wrap: a range ending past MaxInt64 would pass the
	// bound below and have the store read ids that wrap negative.
	if id < 0 || n < 0 || n > maxReadRecords || id > math.MaxInt64-n {
		return nil, fmt.Errorf("records %d+%d: %w", id, n, fs.ErrNotExist)
	}
	h, err := l.cover(ctx, id+n)
	if err != nil {
		return nil, fmt.Errorf("failed to read records %d+%d: %w", id, n, err)
	}
	if id > h.Tree.N-n {
		return nil, fmt.Errorf("records %d+%d: %w", id, n, fs.ErrNotExist)
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = id + int64(i)
	}
	return l.readRecords(ctx, h, ids, fmt.Sprintf("records %d+%d", id, n))
}

// ReadRecordsByID is ReadRecords of scattered ids (the status page's
// versions of a module, newest first): it returns the texts of the records
// with the given ids, in order, or an error wrapping fs.ErrNotExist if any
// of them is beyond the published tree or not held. The records are read
// in one store read, and their leaf hashes in at most one more, not one
// (or two) per record: a database answers each read over the network.
func (l *Log) ReadRecordsByID(ctx context.Context, ids []int64) ([][]byte, error) {
	if len(ids) > maxReadRecords {
		return nil, fmt.Errorf("%d records: more than %d: %w", len(ids), maxReadRecords, fs.ErrNotExist)
	}
	var top int64 // the tree size that covers them all
	for _, id := range ids {
		if id < 0 || id == math.MaxInt64 {
			return nil, fmt.Errorf("record %d: %w", id, fs.ErrNotExist)
		}
		top = max(top, id+1)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	h, err := l.cover(ctx, top)
	if err != nil {
		return nil, fmt.Errorf("failed to read %d records: %w", len(ids), err)
	}
	if top > h.Tree.N {
		return nil, fmt.Errorf("record %d: %w", top-1, fs.ErrNotExist)
	}
	return l.readRecords(ctx, h, append([]int64(nil), ids...), fmt.Sprintf("%d records", len(ids)))
}

// readRecords reads the records of ids, all within h's tree, and checks
// each against its leaf hash in it. What names them in errors.
func (l *Log) readRecords(ctx context.Context, h *Head, ids []int64, what string) ([][]byte, error) {
	// Bytes read back from the database are checked against the tree
	// before they are served: with their leaf hashes read in the same
	// transaction if the store can (a lookup's record then costs one read
	// and 32 bytes of its tile, not a copy of the whole tile), else with
	// the level-0 tiles of the published tree, read together.
	var texts [][]byte
	var leaves []tlog.Hash
	var err error
	lr, withLeaves := l.store.(LeafReader)
	if withLeaves {
		texts, leaves, err = lr.ReadRecordLeaves(ctx, ids)
	} else {
		texts, err = l.store.ReadRecords(ctx, ids)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", what, err)
	}
	for i, text := range texts {
		if text == nil {
			return nil, fmt.Errorf("record %d: %w", ids[i], fs.ErrNotExist)
		}
	}
	if withLeaves {
		err = l.checkLeafHashes(ids, texts, leaves)
	} else {
		err = l.checkLeavesRead(ctx, h.Tree.N, ids, texts)
	}
	if err != nil {
		return nil, l.noteDamage(fmt.Errorf("failed to read %s: %w", what, l.blameTile(ctx, h.Tree, err)))
	}
	return texts, nil
}

// checkLeavesRead is checkLeaves with the level-0 tiles of the tree of
// size n that hold the leaves of ids, read from the store in one read.
func (l *Log) checkLeavesRead(ctx context.Context, n int64, ids []int64, texts [][]byte) error {
	var tiles []TileID
	at := map[TileID]int{} // the place of each tile in tiles
	for _, id := range ids {
		t := TileID{0, id >> tileHeight}
		if _, ok := at[t]; !ok {
			at[t] = len(tiles)
			tiles = append(tiles, t)
		}
	}
	data, err := readTiles(ctx, l.store, tiles, n)
	if err != nil {
		return err
	}
	return l.checkLeaves(ids, texts, func(t TileID) ([]byte, error) { return data[at[t]], nil })
}

// ReadTileData returns the data of hash tile t, or an error wrapping
// fs.ErrNotExist if the published tree has not reached t's width. The tile
// is authenticated against the published tree first (authenticTile): one
// that does not hash to it is a *CorruptTileError, never served. The data
// may be shared with other callers (a partial tile of the right edge is
// kept once authenticated) and must not be modified.
func (l *Log) ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error) {
	id := TileID{t.L, t.N}
	if t.H != tileHeight || t.W < 1 || t.W > 1<<tileHeight {
		return nil, fmt.Errorf("tile %s: %w", t.Path(), fs.ErrNotExist)
	}
	h, err := l.cover(ctx, treeReaching(id, t.W))
	if err != nil {
		return nil, fmt.Errorf("failed to read tile %s: %w", t.Path(), err)
	}
	if t.W > tileWidth(id, h.Tree.N) {
		return nil, fmt.Errorf("tile %s: %w", t.Path(), fs.ErrNotExist)
	}
	data, err := l.authenticTile(ctx, h.Tree, id, t.W)
	if err != nil {
		return nil, fmt.Errorf("failed to read tile %s: %w", t.Path(), err)
	}
	return data, nil
}

// HashReader returns a reader of the hashes of the published tree: each
// ReadHashes call reads within the tree published when it starts, and
// fails for a hash beyond it.
func (l *Log) HashReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		n := l.pub.Load().Tree.N
		for _, x := range indexes {
			level, i := tlog.SplitStoredHashIndex(x)
			if level >= 63 || i < 0 || i >= n>>level {
				return nil, fmt.Errorf("hash %d is beyond the published tree of size %d: %w", x, n, fs.ErrNotExist)
			}
		}
		hashes, err := storeTiles(context.Background(), l.store, n).ReadHashes(indexes)
		return hashes, l.noteDamage(err)
	})
}

// publish makes tree and its signed head what readers see, and wakes the
// watchers of the previous head. Only the sequencer (and open) call it.
func (l *Log) publish(tree tlog.Tree, head []byte, at time.Time) {
	h := &Head{Tree: tree, Signed: head, Time: at, next: make(chan struct{})}
	if old := l.pub.Swap(h); old != nil {
		close(old.next)
	}
	l.metrics.setTreeSize(tree.N)
}
