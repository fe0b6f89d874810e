package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// A SharedStore is a Store that other processes write too: a database
// server that several sumd processes use at once (PostgreSQL). A Log on a
// shared store keeps its published head current with theirs:
//
//   - it polls the store's head every Options.RefreshInterval and adopts a
//     newer one (after verifying its signatures and its consistency with the
//     published head, as when a commit loses the compare-and-swap);
//   - a read that needs more than the published tree — a record id the
//     index names beyond it, a tile or records of a larger tree that a
//     client learned from another process — adopts the stored head first;
//   - Signed (the head every answer carries) fails with an
//     *UnavailableError once the published head has not been confirmed
//     against the store for Options.MaxHeadAge: a head that was current a
//     moment ago is what any cache serves, an older one is not.
//
// Beyond Store's contract, Load may be called at any time, concurrently with
// Commit, and returns only committed, durable state.
type SharedStore interface {
	Store
	// Shared reports whether other processes may commit to the store.
	Shared() bool
}

// A LockingStore is a SharedStore whose writer can take the lock of
// Commit's compare-and-swap ahead of the commit. Without it, a writer that
// lost the compare-and-swap catches up and stages again while the winner,
// whose head is current, stages its next batch at once and wins again: under
// steady writes from several processes the losers starve. With it, the
// Log takes the lock first after a loss, catches up and stages under it, and
// its next Commit cannot lose; the database's lock queue makes the writers
// take turns.
type LockingStore interface {
	SharedStore
	// LockHead begins a write: it takes the lock Commit takes (SELECT …
	// FOR UPDATE on the head), waiting for other writers' commits, and
	// holds it until the next Commit, which uses it, or UnlockHead. Reads,
	// Load included, work as usual meanwhile and see the committed state.
	// A Log calls it only from its sequencer, before a Commit or
	// UnlockHead; it may call it again while it holds the lock (a staging
	// catching up twice in one retry), which must then do nothing.
	LockHead(ctx context.Context) error
	// UnlockHead releases a lock LockHead took and Commit did not use; it
	// does nothing if there is none.
	UnlockHead()
}

// lockHead takes the head's lock, if the store has one.
func (l *Log) lockHead(ctx context.Context) error {
	if s, ok := l.store.(LockingStore); ok && l.shared != nil {
		return s.LockHead(ctx)
	}
	return nil
}

// unlockHead releases the head's lock, if the store has one and holds it.
func (l *Log) unlockHead() {
	if s, ok := l.store.(LockingStore); ok && l.shared != nil {
		s.UnlockHead()
	}
}

// Defaults of the Options for shared stores.
const (
	DefaultRefreshInterval = time.Second
	DefaultMaxHeadAge      = 5 * time.Second
)

// ErrUnavailable marks a failure to reach a shared store: the database is
// down, unreachable or too busy, nothing is known to be wrong with the
// log, and the same call may succeed later. Errors wrapping it are *UnavailableError.
var ErrUnavailable = errors.New("storage unavailable")

// An UnavailableError is a failure to reach a shared store, or a store
// too busy to take the call now (pgstore's reads waiting). Its text is
// fixed and safe to show to anonymous clients (the cause, which may name
// hosts and paths, is in Err); HTTPStatus makes internal/server answer 503
// with Retry-After. It matches ErrUnavailable.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string {
	return "the checksum database's storage is unavailable; try again shortly"
}
func (e *UnavailableError) Unwrap() error        { return e.Err }
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// HTTPStatus is 503 Service Unavailable.
func (e *UnavailableError) HTTPStatus() int { return http.StatusServiceUnavailable }

// shared is a Log's state for a shared store.
type shared struct {
	interval time.Duration
	maxAge   time.Duration

	mu        sync.Mutex
	confirmed time.Time // the published head was the stored one at this time

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// refreshes coalesces Refresh calls.
type refreshes struct {
	mu      sync.Mutex
	pending *refreshCall // queued, not yet started: joined by new callers
	started time.Time    // when the last catch-up began (cover)
	last    *refreshCall // the last catch-up begun, joined by cover's callers that arrived before it began
}

// A refreshCall is one catch-up run by the sequencer for every caller that
// joined it before it started.
type refreshCall struct {
	done    chan struct{}
	err     error
	started time.Time // when the sequencer began it (under refreshes.mu)
}

// setupShared prepares polling if the log's store is shared.
func (l *Log) setupShared(opts Options) {
	s, ok := l.store.(SharedStore)
	if !ok || !s.Shared() {
		return
	}
	r := &shared{interval: opts.RefreshInterval, maxAge: opts.MaxHeadAge, stop: make(chan struct{})}
	if r.interval <= 0 {
		r.interval = DefaultRefreshInterval
	}
	if r.maxAge <= 0 {
		r.maxAge = max(DefaultMaxHeadAge, 2*r.interval)
	}
	l.shared = r
}

// stopRefresh stops polling, before the store closes.
func (l *Log) stopRefresh() {
	if r := l.shared; r != nil {
		r.stopOnce.Do(func() { close(r.stop) })
		r.wg.Wait()
	}
}

// confirm records that the published head was the stored one at t.
func (l *Log) confirm(t time.Time) {
	if r := l.shared; r != nil {
		r.mu.Lock()
		if t.After(r.confirmed) {
			r.confirmed = t
		}
		r.mu.Unlock()
	}
}

// fresh fails if the log is on a shared store and its published head has
// not been confirmed as the stored one for longer than MaxHeadAge.
func (l *Log) fresh() error {
	r := l.shared
	if r == nil {
		return nil
	}
	r.mu.Lock()
	age := time.Since(r.confirmed)
	r.mu.Unlock()
	if age > r.maxAge {
		return &UnavailableError{fmt.Errorf("the published head was last confirmed against the store %v ago (limit %v)", age.Round(time.Millisecond), r.maxAge)}
	}
	return nil
}

// poll confirms or refreshes the published head every interval until the
// log closes. Reading the head is one cheap query; only a changed head goes
// through the sequencer.
//
// A failure makes the log answer 503 once MaxHeadAge has passed. An
// unreachable database is the store's to report (ErrUnavailable), once per
// outage; any other failure (a role that lost a privilege, a head that
// does not verify) is logged here as a warning, once while it lasts, so
// that the 503s say why.
func (l *Log) poll() {
	r := l.shared
	t := time.NewTicker(r.interval)
	defer t.Stop()
	var reported string // the failure last logged, "" since a poll succeeded
	failed := func(msg string, err error) {
		switch {
		case err == nil:
			reported = ""
		case errors.Is(err, ErrUnavailable) || errors.Is(err, ErrClosed) || errors.Is(err, ErrFatal) || err.Error() == reported:
			// Reported by the store, or by the log as it stopped, or already.
			l.log.Debug(msg, "err", err)
		default:
			reported = err.Error()
			l.log.Warn(msg+"; answering 503 once the published head is older than -max-head-age", "err", err)
		}
	}
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(r.maxAge, r.interval))
		start := time.Now()
		st, err := l.store.Load(ctx)
		if err == nil {
			err = l.checkLost(st)
		}
		switch {
		case err != nil:
			failed("failed to read the stored head", err)
		case bytes.Equal(st.Head, l.pub.Load().Signed):
			l.confirm(start)
			failed("", nil)
		default:
			failed("failed to adopt the stored head", l.Refresh(ctx))
		}
		cancel()
	}
}

// Refresh adopts the head other writers of a shared store committed since
// this log last wrote or refreshed, so that its reads cover their records.
// It fails with ErrFatal if that head does not extend the published one.
// Concurrent calls share one catch-up, as long as it has not started: every
// caller gets one that read the store after it called.
func (l *Log) Refresh(ctx context.Context) error {
	call, err := l.refreshCall()
	if err != nil {
		return err
	}
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refreshCall returns the queued catch-up, queueing one if there is none.
func (l *Log) refreshCall() (*refreshCall, error) {
	rs := &l.refreshes
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.pending != nil {
		return rs.pending, nil
	}
	call := &refreshCall{done: make(chan struct{})}
	unqueue := func() {
		rs.mu.Lock()
		if rs.pending == call {
			rs.pending = nil // callers from now on need a catch-up that starts after them
		}
		rs.mu.Unlock()
	}
	req := &request{done: make(chan struct{}), ctrl: func(ctx context.Context) error {
		unqueue()
		rs.mu.Lock()
		rs.started = time.Now()
		call.started, rs.last = rs.started, call
		rs.mu.Unlock()
		_, err := l.catchUp(ctx)
		return err
	}}
	if err := l.enqueue(req); err != nil {
		return nil, err
	}
	rs.pending = call
	go func() {
		<-req.done
		unqueue() // if the sequencer answered without running it (a stopped log)
		call.err = req.err
		close(call.done)
	}()
	return call, nil
}

// cover returns the published head, first adopting the stored one if the
// published tree is smaller than n and other writers share the store: a
// client may have learned a larger tree from another process.
func (l *Log) cover(ctx context.Context, n int64) (*Head, error) {
	h := l.pub.Load()
	if h.Tree.N >= n || l.shared == nil {
		return h, nil
	}
	arrived := time.Now()
	if err := l.waitToCover(ctx); err != nil {
		return nil, err
	}
	if h = l.pub.Load(); h.Tree.N >= n {
		return h, nil // adopted meanwhile
	}
	// Callers that waited together wake together: a catch-up begun since
	// this one arrived read the store late enough for it, so it joins
	// that one rather than queueing another (Refresh joins only one not
	// yet begun).
	rs := &l.refreshes
	rs.mu.Lock()
	call := rs.last
	rs.mu.Unlock()
	if call != nil && !call.started.Before(arrived) {
		select {
		case <-call.done:
			if call.err != nil {
				return nil, call.err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	} else if err := l.Refresh(ctx); err != nil {
		return nil, err
	}
	return l.pub.Load(), nil
}

// coverWait is how long after the stored head was last read (confirmed,
// or a catch-up began) cover reads it again.
const coverWait = 250 * time.Millisecond

// waitToCover waits until coverWait has passed since the stored head was
// last read. Anyone may ask for a tree beyond the published one (a tile
// path names it), and every such request read the stored head. Now a
// larger tree that a client learned from another process is adopted at
// most coverWait late, and the callers waiting meanwhile share one
// catch-up (Refresh): a stream of requests beyond every tree reads the
// stored head a few times per second at most.
func (l *Log) waitToCover(ctx context.Context) error {
	r, rs := l.shared, &l.refreshes
	r.mu.Lock()
	last := r.confirmed
	r.mu.Unlock()
	rs.mu.Lock()
	if rs.started.After(last) {
		last = rs.started
	}
	rs.mu.Unlock()
	wait := time.Until(last.Add(coverWait))
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
