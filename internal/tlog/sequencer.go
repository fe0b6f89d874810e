package tlog

import (
	"context"
	"errors"
	"fmt"
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

// A request is one Add call, or one control operation, waiting for the
// sequencer.
type request struct {
	recs []gosum.Record
	ctrl func(ctx context.Context) error // if set, a control operation run by the sequencer
	ids  []int64                         // set by the sequencer
	err  error                           // set by the sequencer
	done chan struct{}                   // closed by the sequencer when ids or err is final
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
	for _, r := range recs {
		if err := r.Check(); err != nil {
			return nil, fmt.Errorf("refusing malformed record: %w", err)
		}
	}
	req := &request{recs: recs, done: make(chan struct{})}
	if err := l.enqueue(req); err != nil {
		return nil, err
	}
	select {
	case <-req.done:
		return req.ids, req.err
	case <-ctx.Done():
		return nil, ctx.Err()
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
// and waits for it.
func (l *Log) control(ctx context.Context, f func(ctx context.Context) error) error {
	req := &request{ctrl: f, done: make(chan struct{})}
	if err := l.enqueue(req); err != nil {
		return err
	}
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sequence is the single writer. It takes every request waiting in the
// queue, up to maxBatch records, and commits them in one transaction: while
// one commit waits for fsync, the next batch gathers (group commit).
func (l *Log) sequence() {
	defer close(l.done)
	for first := range l.queue {
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
				if !ok {
					break gather
				}
				if r.ctrl != nil {
					ctrl = r
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
	if r.err = l.fatalErr(); r.err == nil {
		r.err = r.ctrl(context.Background())
	}
	close(r.done)
}

// commit stages the batch's records on the published tree, signs, commits
// and publishes, then answers every request.
func (l *Log) commit(batch []*request) {
	start := time.Now()
	var added int64
	err := l.fatalErr()
	if err == nil {
		var b *Batch
		b, err = l.stage(context.Background(), batch)
		if err == nil && b != nil {
			if err = l.write(context.Background(), b); err == nil {
				added = int64(len(b.Records))
			}
		}
	}
	if err != nil {
		for _, r := range batch {
			r.ids, r.err = nil, err
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

// write commits b and publishes its head. It sorts the store's failures by
// the Store contract: not persisted (the requests fail, the log goes on;
// a moved head too, which only another writer could have done) or
// ambiguous (the log stops).
func (l *Log) write(ctx context.Context, b *Batch) error {
	err := l.store.Commit(ctx, b)
	switch {
	case err == nil:
		// Point of no return: the store says the batch is durable. Only
		// now may readers see its head and callers their ids.
		l.committed(b)
		return nil
	case errors.Is(err, ErrNotPersisted):
		return fmt.Errorf("failed to commit to the log (nothing was stored): %w", err)
	}
	return l.stop(fmt.Errorf("failed to commit to the log, and the store cannot tell whether it did: %w", err))
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
	if l.setErr(err) {
		l.log.Error("the log stopped: a write to its store failed, and whether it was stored is unknown; "+
			"restart sumd, which re-verifies the database", "err", cause, "tree_size", l.pub.Load().Tree.N)
		l.metrics.stopped()
	}
	return l.fatalErr()
}

// checkExtends proves that tree extends old before it is signed. Tiles only grow, so for the log's own batches this cannot fail
// unless the code or the disk is broken, which is exactly when it must stop
// the signature.
func checkExtends(old, tree tlog.Tree, r tlog.HashReader) error {
	if tree.N < old.N {
		return fmt.Errorf("tree %d is smaller than tree %d", tree.N, old.N)
	}
	if old.N == 0 {
		return nil
	}
	proof, err := tlog.ProveTree(tree.N, old.N, r)
	if err != nil {
		return err
	}
	return tlog.CheckTree(proof, tree.N, tree.Hash, old.N, old.Hash)
}

func emptyTree() tlog.Tree {
	h, _ := tlog.TreeHash(0, nil)
	return tlog.Tree{N: 0, Hash: h}
}
