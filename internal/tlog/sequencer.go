package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// A ConflictError reports an attempt to record a module version again with
// different hashes. Nothing is changed.
type ConflictError struct {
	ID       int64        // id of the recorded version, or -1 if it came earlier in the same request
	Recorded gosum.Record // what the log holds
	Proposed gosum.Record // what was offered
}

func (e *ConflictError) Error() string {
	where := fmt.Sprintf("as record %d", e.ID)
	if e.ID < 0 {
		where = "earlier in the same request"
	}
	return fmt.Sprintf("%s is already recorded %s with different hashes:\n\trecorded: %s, go.mod %s\n\toffered:  %s, go.mod %s",
		e.Recorded.Key(), where, e.Recorded.Hash, e.Recorded.GoMod, e.Proposed.Hash, e.Proposed.GoMod)
}

// MaxAddRecords caps the records of one Add call. A call is one atomic
// request, committed in one store transaction (alone if it is larger than
// MaxBatch), so the cap bounds what one caller can make the sequencer
// stage and the store write at once: 65,536 records of at most 2 KiB
// (gosum.MaxRecordSize), typically 10 MB. Bulk imports split their input.
const MaxAddRecords = 1 << 16

// maxAttempts bounds how often the sequencer re-stages one batch after
// other writers of a shared store moved its head first.
const maxAttempts = 8

// A request is one Add call, or one control operation, waiting for the
// sequencer.
type request struct {
	recs   []gosum.Record
	keys   []string                        // recs[i].Key()
	texts  [][]byte                        // recs[i].Text()
	leaves []tlog.Hash                     // tlog.RecordHash(texts[i])
	ctrl   func(ctx context.Context) error // if set, a control operation run by the sequencer
	ids    []int64                         // set by the sequencer
	added  []bool                          // set by the sequencer: which of recs this request appended
	err    error                           // set by the sequencer
	done   chan struct{}                   // closed by the sequencer when ids or err is final
	state  atomic.Int32                    // a control operation's: queued, running or withdrawn
}

// The states of a control operation: the caller withdraws it if its
// context ends while it is queued, and the sequencer then skips it.
const (
	queued int32 = iota
	running
	withdrawn
)

// newRequest returns the request to add recs, with what the sequencer
// needs of each record computed by the caller: the one sequencer does
// only what must be done in order, and callers run in parallel.
func newRequest(recs []gosum.Record) *request {
	req := &request{recs: recs, done: make(chan struct{}),
		keys: make([]string, len(recs)), texts: make([][]byte, len(recs)), leaves: make([]tlog.Hash, len(recs))}
	for i, r := range recs {
		req.keys[i], req.texts[i] = r.Key(), r.Text()
		req.leaves[i] = tlog.RecordHash(req.texts[i])
	}
	return req
}

// Add records recs and returns their ids once they are durable and covered
// by a published signed tree head. Records already present with the same
// hashes keep their ids. The call is atomic: if any record conflicts with
// the log or with another in recs (a *ConflictError) or is malformed,
// nothing from this call is recorded.
//
// Add may return ctx.Err() while the records are still being committed;
// only a nil error acknowledges them. It returns ErrPushback, without
// waiting, when the sequencer's queue is full, and an error wrapping
// ErrFatal once the log has stopped.
func (l *Log) Add(ctx context.Context, recs ...gosum.Record) ([]int64, error) {
	ids, _, err := l.AddNew(ctx, recs...)
	return ids, err
}

// AddNew is Add that also reports which records this call appended:
// added[i] is true for the first occurrence in recs of each version the
// log did not hold, false for one it held or that another call appended
// first (two calls adding one version at once: one appends it, the other
// finds it), and for a repeat in recs. Ids compared with the tree size
// read before the call cannot tell: both such calls see ids past it.
func (l *Log) AddNew(ctx context.Context, recs ...gosum.Record) (ids []int64, added []bool, err error) {
	if l.keys.Load() == nil {
		return nil, nil, ErrVerifierOnly
	}
	if len(recs) > MaxAddRecords {
		return nil, nil, fmt.Errorf("refusing to add %d records in one call: the limit is %d (split the input)", len(recs), MaxAddRecords)
	}
	var c gosum.Checker
	for _, r := range recs {
		if err := c.Record(r); err != nil {
			return nil, nil, fmt.Errorf("refusing malformed record: %w", err)
		}
	}
	req := newRequest(recs)
	if err := l.enqueue(req); err != nil {
		return nil, nil, err
	}
	select {
	case <-req.done:
		return req.ids, req.added, req.err
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

func (l *Log) enqueue(req *request) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	if err := l.fatalErr(); err != nil {
		return err
	}
	select {
	case l.queue <- req:
		return nil
	default:
		l.metrics.pushback()
		return ErrPushback
	}
}

// control runs f in the sequencer, after the requests queued before it,
// and waits for it. If ctx ends while f waits in the queue, f never runs
// and control returns ctx.Err(); once f has started, control waits for it
// and returns what it returned. So a write made by f is either done when
// control returns, or never.
func (l *Log) control(ctx context.Context, f func(ctx context.Context) error) error {
	req := &request{ctrl: f, done: make(chan struct{})}
	if err := l.enqueue(req); err != nil {
		return err
	}
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(queued, withdrawn) {
			return ctx.Err()
		}
		<-req.done
		return req.err
	}
}

// sequence is the single writer. It takes the requests waiting in the
// queue, up to maxBatch records, and commits them in one transaction: while
// one commit waits for fsync, the next batch gathers (group commit). A
// request that would take the batch past maxBatch waits for the next one,
// so only a request larger than maxBatch by itself makes a larger commit.
func (l *Log) sequence() {
	defer close(l.done)
	var held *request // the request that would have overfilled the last batch
	for {
		first := held
		held = nil
		if first == nil {
			var ok bool
			if first, ok = <-l.queue; !ok {
				return
			}
		}
		if first.ctrl != nil {
			l.runControl(first)
			continue
		}
		batch, n := []*request{first}, len(first.recs)
		var ctrl *request // a control request ends the gathering
	gather:
		for n < l.maxBatch {
			select {
			case r, ok := <-l.queue:
				switch {
				case !ok:
					break gather
				case r.ctrl != nil:
					ctrl = r
					break gather
				case n+len(r.recs) > l.maxBatch:
					held = r
					break gather
				}
				batch, n = append(batch, r), n+len(r.recs)
			default:
				break gather
			}
		}
		l.commit(batch)
		if ctrl != nil {
			l.runControl(ctrl)
		}
	}
}

func (l *Log) runControl(r *request) {
	if !r.state.CompareAndSwap(queued, running) {
		close(r.done) // withdrawn
		return
	}
	if r.err = l.fatalErr(); r.err == nil {
		r.err = r.ctrl(OwnRead(context.Background()))
	}
	close(r.done)
}

// commit stages the batch's records on the published tree, signs, commits
// and publishes, then answers every request. If another writer moved the
// stored head first, it adopts that head and stages the batch again.
func (l *Log) commit(batch []*request) {
	start := time.Now()
	var added int64
	ctx := OwnRead(context.Background()) // not behind the reads clients ask for (see Store)
	err := l.fatalErr()
	if err == nil {
		err = l.retry(func() error {
			b, err := l.stage(ctx, batch)
			if err != nil || b == nil {
				return err
			}
			if err := l.write(ctx, b); err != nil {
				return err
			}
			added = int64(len(b.Records))
			return nil
		})
	}
	if err != nil {
		l.noteDamage(err)
		for _, r := range batch {
			r.ids, r.added, r.err = nil, nil, err
		}
	}
	if added > 0 {
		l.log.Debug("committed", "tree_size", l.pub.Load().Tree.N, "added", added, "requests", len(batch), "duration", time.Since(start))
	}
	l.metrics.observeCommit(added, time.Since(start), err)
	for _, r := range batch {
		close(r.done)
	}
}

// retry runs step again while it answers errRetry, up to maxAttempts times.
// On a LockingStore, catchUpRetry took the head's lock for the next
// attempt; whatever step did with it, it is released at the end.
func (l *Log) retry(step func() error) error {
	defer l.unlockHead()
	for attempt := 1; ; attempt++ {
		err := step()
		switch {
		case !errors.Is(err, errRetry):
			return err
		case attempt == maxAttempts:
			return fmt.Errorf("other writers kept moving the log's head (%d attempts): %w", attempt, ErrPushback)
		}
	}
}

// errRetry is write's answer when another writer moved the stored head and
// the log has caught up with it: stage again.
var errRetry = errors.New("head moved; stage again")

// write commits b and publishes its head. It sorts the store's failures by
// the Store contract: not persisted (the requests fail, the log goes on),
// head moved (catch up, then errRetry), or ambiguous (the log stops).
func (l *Log) write(ctx context.Context, b *Batch) error {
	err := l.commitStore(ctx, b)
	if errors.Is(err, ErrHeadMoved) { // it wraps ErrNotPersisted: sorted first
		return l.catchUpRetry(ctx, "the store refused the commit as on a moved head")
	}
	if err := l.writeFailure(err, "commit to the log"); err != nil {
		return err
	}
	// Point of no return: the store says the batch is durable. Only now
	// may readers see its head and callers their ids.
	l.committed(b)
	// The store held b's head when the commit answered: not when it
	// began, which may be longer ago than MaxHeadAge (a wait for the
	// head's lock or a synchronous standby), failing the callers' answers,
	// which carry the head, with 503 although their records are stored.
	// (Another writer's commit on top of it needs the lock, a catch-up and
	// a COMMIT of its own: longer than this answer takes to arrive, but
	// for a lost answer that the store resolved as stored and extended,
	// whose extension the next poll adopts.)
	l.confirm(time.Now())
	return nil
}

// commitStore commits b to the store and counts the commit, whatever its
// outcome, for PrepareStage.
func (l *Log) commitStore(ctx context.Context, b *Batch) error {
	defer l.commits.Add(1)
	return l.store.Commit(ctx, b)
}

// committed updates the sequencer's state after b was committed.
func (l *Log) committed(b *Batch) {
	for _, t := range b.Tiles {
		if len(t.Data) < tileBytes {
			l.edge[t.TileID] = t.Data
		} else {
			delete(l.edge, t.TileID)
		}
	}
	l.publish(b.Tree, b.Head, time.Now())
}

// stop stops the log for good after an ambiguous storage failure: the
// store may or may not hold the last write, so neither the published head
// nor anything staged on it can be trusted to extend what is stored. It
// returns the error every pending and later write fails with.
func (l *Log) stop(cause error) error {
	err := fmt.Errorf("%w: %w", ErrFatal, cause)
	msg := "the log stopped: it cannot tell, or cannot trust, what its store holds (err says which); restart sumd, which re-verifies the database"
	if missing := (*MissingKeyError)(nil); errors.As(cause, &missing) {
		err = &keysChangedError{missing}
		msg = "the log stopped: another process changed the keys it signs with, and this one lacks a private key; restart every process with all of them"
	}
	if damaged := (*DamagedError)(nil); errors.As(cause, &damaged) {
		msg = "the log stopped: its database is damaged (err says how); restart sumd, which re-verifies it, and if it refuses the database restore it from a backup or a mirror"
	}
	if fork := (*ForkError)(nil); errors.As(cause, &fork) {
		err = &rolledBackError{err}
		msg = "the log stopped: its store no longer holds a tree that extends the published one (rolled back or replaced behind its back); do not restart sumd on it"
	}
	if l.setErr(err) {
		l.log.Error(msg, "err", cause, "tree_size", l.pub.Load().Tree.N)
		l.metrics.stopped()
	}
	return l.fatalErr()
}

// catchUpRetry catches up with the head another writer committed and asks
// to stage again: why says what showed that one did, in case none had.
func (l *Log) catchUpRetry(ctx context.Context, why string) error {
	if err := l.lockHead(ctx); err != nil {
		return fmt.Errorf("failed to lock the log's head: %w", err)
	}
	moved, err := l.catchUp(ctx)
	switch {
	case err != nil:
		return err
	case !moved:
		return fmt.Errorf("%s, but it holds the published head: the store is inconsistent", why)
	}
	return errRetry
}

// catchUp adopts the head another writer of a shared store committed, and
// reports whether there was one. The head must verify with the log's keys
// and extend the published tree, or the log stops: signing on top of a
// history it cannot prove would fork it.
func (l *Log) catchUp(ctx context.Context) (bool, error) {
	start := time.Now()
	st, err := l.store.Load(ctx)
	if err != nil {
		return false, fmt.Errorf("failed to re-read the log's head: %w", err)
	}
	if err := l.checkLost(st); err != nil {
		return false, err
	}
	cur := l.pub.Load()
	if bytes.Equal(st.Head, cur.Signed) {
		l.confirm(start)
		return false, nil
	}
	tree, ks, err := l.openStoredHead(st)
	if err != nil {
		return false, l.stop(fmt.Errorf("store holds a head this log cannot verify: %w", err))
	}
	if err := ProveExtends(tree, cur.Tree, storeTiles(ctx, l.store, tree.N)); err != nil {
		if err := l.catchUpDamage(ctx, tree, cur.Tree.N, err); err != nil {
			return false, err
		}
		l.rememberLost(ctx, cur)
		return false, l.stop(fmt.Errorf("store holds tree %d, which does not extend the published tree %d: %w", tree.N, cur.Tree.N, err))
	}
	if ks != nil {
		l.keys.Store(&ks)
	}
	clear(l.edge)
	l.publish(tree, st.Head, time.Now())
	l.confirm(start)
	l.log.Info("adopted the head another writer committed", "tree_size", tree.N, "was", cur.Tree.N)
	return true, nil
}

// catchUpDamage returns, for err, catchUp's failure to prove that tree,
// the store's head, extends the published tree of size n, what it is if
// not a fork: a failure to read, or damage, the store's tiles lacking or
// not hashing to its head (they were read as they are). Then the log goes
// on with its published head, and catches up once the store reads again
// or the tiles are repaired: its writes are refused meanwhile, the head
// having moved. It returns nil for a fork, which stops the log.
func (l *Log) catchUpDamage(ctx context.Context, tree tlog.Tree, n int64, err error) error {
	var re *readError
	var fork *ForkError
	switch {
	case errors.As(err, &re):
		return err
	case errors.Is(err, ErrCorrupt): // a tile cut short
		return l.noteDamage(err)
	case errors.As(err, &fork) && fork.Proof != nil:
		return l.proofDamage(ctx, tree, n)
	}
	return nil
}

func emptyTree() tlog.Tree {
	h, _ := tlog.TreeHash(0, nil)
	return tlog.Tree{N: 0, Hash: h}
}
