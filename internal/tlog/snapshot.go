package tlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// A SnapshotStore can copy itself, consistently, while the log runs: an
// online backup. Stores need not implement it (a shared SQL database is
// backed up with its own tools).
type SnapshotStore interface {
	// Snapshot starts a read of the whole store as it is now and returns
	// it. Writes may go on while the snapshot is written: it holds exactly
	// the state at the call. The Log calls it from its sequencer, between
	// commits, so that state is the published one (see Log.Snapshot).
	Snapshot(ctx context.Context) (Snapshot, error)
}

// A Snapshot is a consistent copy of a store being read.
type Snapshot interface {
	// WriteTo writes the copy: for bbolt, a database file that opens as
	// the store did at the snapshot.
	io.WriterTo
	// Size is the number of bytes WriteTo writes.
	Size() int64
	// Close ends the read. A snapshot must be closed.
	Close() error
}

// ErrNoSnapshot means the log's store cannot copy itself while in use.
var ErrNoSnapshot = errors.New("the log's store cannot write a snapshot of itself")

// Snapshot starts a consistent copy of the log's store: a backup taken
// while the log serves and appends. It is started by the sequencer between
// commits, so it holds exactly the published head and everything it
// covers: bbolt shows a commit to readers before its fsync returns, and a
// copy started then could hold a head a power loss would still undo, which
// no client may ever be shown. The caller writes it (its WriteTo) and
// closes it; writes go on meanwhile. A store that cannot copy itself
// answers an error wrapping ErrNoSnapshot, with the store's advice if it
// has some (interface{ BackupAdvice() string }).
func (l *Log) Snapshot(ctx context.Context) (Snapshot, error) {
	ss, ok := l.store.(SnapshotStore)
	if !ok {
		advice := "back its database up with the database's own tools (PostgreSQL: pg_dump or pg_basebackup)"
		if a, ok := l.store.(interface{ BackupAdvice() string }); ok {
			advice = a.BackupAdvice()
		}
		return nil, fmt.Errorf("%w: %s", ErrNoSnapshot, advice)
	}
	// A caller that gives up returns while the sequencer may still start
	// the read: whichever of the two comes second closes it, so no read
	// transaction is left open (bbolt could reuse no freed page while one
	// is).
	var (
		mu        sync.Mutex
		snap      Snapshot
		abandoned bool
	)
	err := l.control(ctx, func(context.Context) error {
		// A caller that gave up after the sequencer took its request
		// (too late to withdraw it) gets its context's error, not a read
		// it would have to close.
		if err := ctx.Err(); err != nil {
			return err
		}
		s, err := ss.Snapshot(ctx)
		mu.Lock()
		defer mu.Unlock()
		if abandoned && s != nil {
			s.Close()
			return err
		}
		snap = s
		return err
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		abandoned = true
		if snap != nil {
			snap.Close()
		}
		return nil, err
	}
	return snap, nil
}

// Snapshot starts a read transaction: bbolt's Tx.WriteTo copies the
// database as that transaction sees it while writers go on.
//
// The limit: a commit that needs a larger mapping of the file waits for
// every read transaction to end, this one included, and every new read
// waits behind it, so the server stops answering until the snapshot is
// closed. OpenBolt maps twice the file's size at open (mmapSize), so that
// comes only once the file has doubled since the server started; a server
// whose file grows that much between restarts should take its backups
// soon after one.
//
// Beginning the read meets the meta pages: damaged, they are a
// *DamagedError (safeRead), not a panic in the sequencer.
func (s *BoltStore) Snapshot(ctx context.Context) (Snapshot, error) {
	var tx *bbolt.Tx
	err := s.safeRead(func() (err error) {
		tx, err = s.db.Begin(false)
		return err
	})
	if errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("failed to start a read of %s: %w", s.db.Path(), err)
	}
	return boltSnapshot{tx}, nil
}

type boltSnapshot struct{ tx *bbolt.Tx }

func (b boltSnapshot) WriteTo(w io.Writer) (int64, error) { return b.tx.WriteTo(w) }
func (b boltSnapshot) Size() int64                        { return b.tx.Size() }
func (b boltSnapshot) Close() error                       { return b.tx.Rollback() }

var _ SnapshotStore = (*BoltStore)(nil)

// CheckStore verifies, without opening a log, the whole of a store that
// may hold a primary's log or a mirror: the head's signature by one of
// vkeys (the keys the store lists, if vkeys is empty) and every tile and
// record against it, as Open with VerifyFull does. It reads only. It is
// how a backup is checked before it is trusted.
func CheckStore(ctx context.Context, s Store, vkeys []string) (State, tlog.Tree, error) {
	st, err := s.Load(ctx)
	if err != nil {
		return st, tlog.Tree{}, err
	}
	if len(vkeys) == 0 {
		vkeys = st.Meta.VKeys
	}
	l := &Log{store: s}
	if err := l.parseKeys(Options{VerifierKeys: vkeys}); err != nil {
		return st, tlog.Tree{}, err
	}
	if l.name != st.Meta.Name {
		return st, tlog.Tree{}, fmt.Errorf("the store holds %q, but the verifier keys are for %q", st.Meta.Name, l.name)
	}
	if len(st.Head) == 0 && !st.Meta.Mirror {
		return st, tlog.Tree{}, fmt.Errorf("%w: the log has no signed head", ErrCorrupt)
	}
	tree, err := verifyStored(ctx, s, st, vkeys, false, VerifyFull)
	return st, tree, err
}
