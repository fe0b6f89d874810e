// Package tlog is sumd's transparency log: go.sum records in a Merkle tree
// kept in one bbolt file, with Ed25519-signed tree heads.
//
// The Merkle maths, tile encoding and signed-note format are x/mod's
// (golang.org/x/mod/sumdb/tlog and note); this package adds durable storage,
// one-record-per-module-version enforcement and group commit.
//
// The invariants, which every change here must keep:
//
//  1. A record is acknowledged (Add returns its id) only after the bbolt
//     transaction that holds it, its hashes and a signed tree head covering
//     it has been committed and synced to disk.
//  2. Each signed tree head is consistent with the one before: the tree only
//     grows, stored tiles only grow, and the sequencer proves consistency
//     before it signs.
//  3. One module@version has one record: the index is checked and written in
//     the same transaction as the append.
//
// One goroutine, the sequencer, owns all writes. Readers use bbolt read
// transactions and so always see a complete commit: records, tiles and the
// signed head that covers them.
package tlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/tlog"
)

// Options configure Open.
type Options struct {
	// Keys are the private keys of the log: every key the database lists
	// as a signing key (one, or two during a key rotation), and no other.
	// Their name is the checksum database name. A new database signs with
	// all of them.
	Keys []*Key
	// Create allows Open to create the database file if it does not exist.
	// A log must never be re-created under a name clients have used (they
	// would reject its new history), so callers set it only when starting
	// a new log is what the operator asked for.
	Create bool
	// MaxBatch caps the records per commit (default 1024). One request with
	// more records is committed alone, never split.
	MaxBatch int
	// QueueSize caps the requests waiting for the sequencer (default 4096).
	// Add fails with ErrPushback when the queue is full.
	QueueSize int
	// LockTimeout is how long Open waits for another process to release the
	// database file (default 100ms).
	LockTimeout time.Duration
	// Verify is the integrity check Open runs (default VerifyTail).
	Verify VerifyMode
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
	// ErrPushback means the sequencer's queue is full: retry later.
	ErrPushback = errors.New("too many pending additions, try again later")
	// ErrClosed means the log has been closed.
	ErrClosed = errors.New("log is closed")
)

// A Log is an open checksum database. Its methods are safe for concurrent
// use. It implements sumdb.ServerOps.
type Log struct {
	db      *bbolt.DB
	keys    atomic.Pointer[keySet] // replaced whole by the sequencer on rotation
	log     *slog.Logger
	metrics *Metrics

	maxBatch int
	queue    chan *request // to the sequencer
	done     chan struct{} // closed when the sequencer exits

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool

	// Owned by the sequencer goroutine after Open returns.
	tree tlog.Tree // the latest signed tree

	// beforeCommit, if set by a test, runs inside the write transaction
	// just before it commits; an error aborts the transaction.
	beforeCommit func() error
}

var _ sumdb.ServerOps = (*Log)(nil)

// Open opens the log in the bbolt file at path, creating it if allowed,
// verifies it against its signed tree head and starts the sequencer.
func Open(path string, opts Options) (*Log, error) {
	if len(opts.Keys) == 0 {
		return nil, errors.New("tlog: Open needs a signing key")
	}
	opts = opts.withDefaults()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !opts.Create {
		return nil, fmt.Errorf("database %s: %w (a new log is created only with Options.Create)", path, fs.ErrNotExist)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("failed to create database directory: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open database %s: %w", path, err)
	}
	l := &Log{
		db: db, log: opts.Logger, metrics: opts.Metrics,
		maxBatch: opts.MaxBatch,
		queue:    make(chan *request, opts.QueueSize),
		done:     make(chan struct{}),
	}
	if err := l.load(opts.Keys, opts.Verify); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	l.metrics.setTreeSize(l.tree.N)
	go l.sequence()
	return l, nil
}

func (o Options) withDefaults() Options {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 100 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Close stops accepting additions, commits those already queued, and closes
// the database.
func (l *Log) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	<-l.done
	return l.db.Close()
}

// Name is the checksum database name.
func (l *Log) Name() string { return l.keys.Load().name() }

// VerifierKey is the verifier key of the log's first signing key: the one
// it was created with, or, after a rotation, its successor.
func (l *Log) VerifierKey() string { return (*l.keys.Load())[0].VerifierKey() }

// Signed returns the latest signed tree head.
func (l *Log) Signed(ctx context.Context) ([]byte, error) {
	var head []byte
	err := l.view(func(b buckets) error {
		head = append([]byte(nil), b.meta.Get(keyHead)...)
		return nil
	})
	return head, err
}

// Tree returns the latest signed tree, checked against its signature.
func (l *Log) Tree(ctx context.Context) (tlog.Tree, error) {
	head, err := l.Signed(ctx)
	if err != nil {
		return tlog.Tree{}, err
	}
	return l.keys.Load().openTree(head)
}

// Lookup returns the id of the record for m, or an error wrapping
// fs.ErrNotExist if there is none.
func (l *Log) Lookup(ctx context.Context, m module.Version) (int64, error) {
	var id int64
	err := l.view(func(b buckets) error {
		var ok bool
		var err error
		id, ok, err = b.lookup(m.Path + "@" + m.Version)
		if err == nil && !ok {
			err = fmt.Errorf("%s@%s: %w", m.Path, m.Version, fs.ErrNotExist)
		}
		return err
	})
	return id, err
}

// maxReadRecords caps one ReadRecords call: a data tile is 256 records.
const maxReadRecords = 1 << 16

// ReadRecords returns the texts of records id through id+n-1, or an error
// wrapping fs.ErrNotExist if any of them does not exist.
func (l *Log) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	if id < 0 || n < 0 || n > maxReadRecords {
		return nil, fmt.Errorf("records %d+%d: %w", id, n, fs.ErrNotExist)
	}
	out := make([][]byte, 0, n)
	err := l.view(func(b buckets) error {
		c := b.records.Cursor()
		k, v := c.Seek(idKey(id))
		for i := int64(0); i < n; i++ {
			if k == nil || string(k) != string(idKey(id+i)) {
				return fmt.Errorf("record %d: %w", id+i, fs.ErrNotExist)
			}
			out = append(out, append([]byte(nil), v...))
			k, v = c.Next()
		}
		return nil
	})
	return out, err
}

// ReadTileData returns the data of hash tile t, or an error wrapping
// fs.ErrNotExist if the tree has not reached t's width.
func (l *Log) ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error) {
	if t.H != tileHeight || t.L < 0 || t.L > 63 || t.W < 1 || t.W > 1<<tileHeight {
		return nil, fmt.Errorf("tile %s: %w", t.Path(), fs.ErrNotExist)
	}
	var data []byte
	err := l.view(func(b buckets) error {
		d := b.tiles.Get(tileKey(t.L, t.N))
		if len(d) < t.W*tlog.HashSize {
			return fmt.Errorf("tile %s: %w", t.Path(), fs.ErrNotExist)
		}
		data = append([]byte(nil), d[:t.W*tlog.HashSize]...)
		return nil
	})
	return data, err
}

// HashReader returns a reader of the stored hashes as of now. Each call of
// its ReadHashes runs in one read transaction.
func (l *Log) HashReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		var out []tlog.Hash
		err := l.view(func(b buckets) error {
			var err error
			out, err = (&tileReader{tiles: b.tiles}).ReadHashes(indexes)
			return err
		})
		return out, err
	})
}

func (l *Log) view(f func(buckets) error) error {
	return l.db.View(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		return f(b)
	})
}

// Stats is what the log reports about its size on disk.
type Stats struct {
	Records  int64 // records in the signed tree
	FileSize int64 // bytes of the bbolt file
}

// Stats returns the log's size.
func (l *Log) Stats() (Stats, error) {
	var s Stats
	err := l.db.View(func(tx *bbolt.Tx) error {
		s.FileSize = tx.Size()
		return nil
	})
	if err != nil {
		return s, err
	}
	t, err := l.Tree(context.Background())
	s.Records = t.N
	return s, err
}
