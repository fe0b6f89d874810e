package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
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
	ctrl controlFunc   // if set, a control operation run in its own transaction
	ids  []int64       // set by the sequencer
	err  error         // set by the sequencer
	done chan struct{} // closed by the sequencer when ids or err is final
}

// Add records recs and returns their ids once they are durable and covered
// by a signed tree head. Records already present with the same hashes keep
// their ids. The call is atomic: if any record conflicts with the log or
// with another in recs (a *ConflictError) or is malformed, nothing from this
// call is recorded.
//
// Add may return ctx.Err() while the records are still being committed;
// only a nil error acknowledges them. It returns ErrPushback, without
// waiting, when the sequencer's queue is full.
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
	select {
	case l.queue <- req:
		return nil
	default:
		l.metrics.pushback()
		return ErrPushback
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

// A controlFunc changes the log's state in the sequencer's transaction tx.
// On success it returns a function the sequencer calls after the commit, to
// update in-memory state.
type controlFunc func(tx *bbolt.Tx) (applied func(), err error)

// control runs f in the sequencer and waits for its commit.
func (l *Log) control(ctx context.Context, f controlFunc) error {
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

func (l *Log) runControl(r *request) {
	var applied func()
	r.err = l.db.Update(func(tx *bbolt.Tx) error {
		var err error
		applied, err = r.ctrl(tx)
		return err
	})
	if r.err == nil {
		applied()
	}
	close(r.done)
}

// commit appends the batch's records in one transaction with a new signed
// tree head, then answers every request.
func (l *Log) commit(batch []*request) {
	start := time.Now()
	var tree tlog.Tree
	err := l.db.Update(func(tx *bbolt.Tx) error {
		var err error
		tree, err = l.appendBatch(tx, batch)
		if err == nil && l.beforeCommit != nil {
			err = l.beforeCommit()
		}
		return err
	})
	// Point of no return: Update has returned nil only after the commit and
	// its fsync. Only now may the records be acknowledged.
	if errors.Is(err, errNothingNew) {
		err, tree = nil, l.tree // every id is of a record already durable
	}
	if err != nil {
		l.log.Error("commit failed; nothing of the batch was stored", "requests", len(batch), "err", err)
		for _, r := range batch {
			r.ids, r.err = nil, fmt.Errorf("failed to commit to the log: %w", err)
		}
		tree = l.tree
	}
	added := tree.N - l.tree.N
	if added > 0 {
		l.log.Debug("committed", "tree_size", tree.N, "added", added, "requests", len(batch), "duration", time.Since(start))
		l.tree = tree
	}
	l.metrics.observeCommit(added, time.Since(start), err)
	for _, r := range batch {
		close(r.done)
	}
}

// errNothingNew rolls back a batch that adds no record (every one was
// already present, or refused): nothing to write, so no commit and no fsync.
var errNothingNew = errors.New("nothing new to commit")

// appendBatch stages the batch in tx and, if it added records, signs and
// stores the new tree head. It returns the new tree.
func (l *Log) appendBatch(tx *bbolt.Tx, batch []*request) (tlog.Tree, error) {
	b, err := openBuckets(tx)
	if err != nil {
		return tlog.Tree{}, err
	}
	a := &appender{b: b, hashes: &tileReader{tiles: b.tiles, dirty: map[string][]byte{}}, size: l.tree.N}
	for _, r := range batch {
		r.ids, r.err = a.add(r.recs)
		var conflict *ConflictError
		if r.err != nil && !errors.As(r.err, &conflict) {
			return tlog.Tree{}, r.err
		}
	}
	if a.size == l.tree.N {
		return l.tree, errNothingNew
	}
	if err := a.hashes.flush(); err != nil {
		return tlog.Tree{}, err
	}
	root, err := tlog.TreeHash(a.size, a.hashes)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("failed to compute tree hash: %w", err)
	}
	tree := tlog.Tree{N: a.size, Hash: root}
	if err := l.checkExtends(tree, a.hashes); err != nil {
		return tlog.Tree{}, err
	}
	head, err := l.keys.Load().signTree(tree)
	if err != nil {
		return tlog.Tree{}, err
	}
	return tree, b.meta.Put(keyHead, head)
}

// checkExtends proves that tree extends the last signed tree before it is
// signed. The tiles only grow, so this cannot fail unless the code or the
// disk is broken, which is exactly when it must stop the signature.
func (l *Log) checkExtends(tree tlog.Tree, r tlog.HashReader) error {
	old := l.tree
	if old.N == 0 {
		return nil
	}
	proof, err := tlog.ProveTree(tree.N, old.N, r)
	if err == nil {
		err = tlog.CheckTree(proof, tree.N, tree.Hash, old.N, old.Hash)
	}
	if err != nil {
		return fmt.Errorf("refusing to sign tree %d: not consistent with signed tree %d: %w", tree.N, old.N, err)
	}
	return nil
}

// An appender stages records in one write transaction.
type appender struct {
	b      buckets
	hashes *tileReader
	size   int64 // tree size including the records staged so far
}

// add stages one request's records: it checks all of them first, so that a
// conflict (a *ConflictError) leaves nothing of the request behind, then
// appends the new ones. Any other error is a storage failure that must fail
// the whole transaction.
func (a *appender) add(recs []gosum.Record) ([]int64, error) {
	ids := make([]int64, len(recs))
	isNew := make([]bool, len(recs))
	first := map[string]int{} // key -> index of its first occurrence in recs
	for i, r := range recs {
		if j, ok := first[r.Key()]; ok {
			if recs[j] != r {
				return nil, &ConflictError{ID: -1, Recorded: recs[j], Proposed: r}
			}
			continue
		}
		first[r.Key()] = i
		id, ok, err := a.existing(r)
		if err != nil {
			return nil, err
		}
		ids[i], isNew[i] = id, !ok
	}
	for i, r := range recs {
		if isNew[i] {
			id, err := a.append(r)
			if err != nil {
				return nil, err
			}
			ids[i] = id
		}
	}
	for i, r := range recs {
		ids[i] = ids[first[r.Key()]]
	}
	return ids, nil
}

// existing returns the id of r's module version if it is recorded with the
// same hashes, and a *ConflictError if it is recorded with others.
func (a *appender) existing(r gosum.Record) (int64, bool, error) {
	id, ok, err := a.b.lookup(r.Key())
	if err != nil || !ok {
		return 0, false, err
	}
	text, err := a.b.record(id)
	if err != nil {
		return 0, false, fmt.Errorf("index names missing record: %w", err)
	}
	if bytes.Equal(text, r.Text()) {
		return id, true, nil
	}
	recorded, err := gosum.Parse(text)
	if err != nil {
		return 0, false, fmt.Errorf("record %d is malformed: %w", id, err)
	}
	return 0, false, &ConflictError{ID: id, Recorded: recorded, Proposed: r}
}

// append stores r as the next record with its index entry and tile hashes.
func (a *appender) append(r gosum.Record) (int64, error) {
	id, text := a.size, r.Text()
	hashes, err := tlog.StoredHashes(id, text, a.hashes)
	if err != nil {
		return 0, fmt.Errorf("failed to compute hashes of record %d: %w", id, err)
	}
	// StoredHashes returns the hash at level l (index id>>l) for each level
	// completed by this record; tiles keep the levels divisible by 8.
	for level := 0; level < len(hashes); level += tileHeight {
		if err := a.hashes.appendHash(level/tileHeight, id>>level, hashes[level]); err != nil {
			return 0, err
		}
	}
	if err := a.b.records.Put(idKey(id), text); err != nil {
		return 0, fmt.Errorf("failed to store record %d: %w", id, err)
	}
	if err := a.b.index.Put([]byte(r.Key()), idKey(id)); err != nil {
		return 0, fmt.Errorf("failed to index record %d: %w", id, err)
	}
	a.size++
	return id, nil
}

func emptyTree() tlog.Tree {
	h, _ := tlog.TreeHash(0, nil)
	return tlog.Tree{N: 0, Hash: h}
}
