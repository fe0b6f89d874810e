package pgstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestControlNotBehindReads: with every connection reads use taken (a
// flood of lookups of missing keys, each a statement), the head's poll
// (Load, with the durability barrier a head it did not commit needs) and a
// commit still run: they have connections of their own, so a flood of
// anonymous reads cannot make a process's head stale (503 for everyone
// after -max-head-age) or stall its writes. The read connections are held
// until both have returned.
func TestControlNotBehindReads(t *testing.T) {
	ctx := context.Background()
	url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
	l, _ := openLog(t, url, k, Options{})
	if _, err := l.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	s := openDB(t, url) // another process: its first Load needs a barrier
	var held []*pgxpool.Conn
	release := func() {
		for _, c := range held {
			c.Release()
		}
		held = nil
	}
	t.Cleanup(release) // before Close, which waits for them
	for range s.pool.Config().MaxConns {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("Load with the read connections taken: %v", err)
	}
	b := &tlog.Batch{Prev: st.Head, Head: st.Head, Tree: tlog.HeadTree(st.Head)} // moves nothing
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("Commit with the read connections taken: %v", err)
	}
	if err := s.LockHead(ctx); err != nil {
		t.Fatalf("LockHead with the read connections taken: %v", err)
	}
	s.UnlockHead()
	release()
	// Both pools' sessions are set up alike (setSession, onNotice).
	var sessions [2]string
	for i, p := range []*pgxpool.Pool{s.pool, s.ctl} {
		if p.Config().ConnConfig.OnNotice == nil {
			t.Errorf("pool %d records no notices", i)
		}
		if err := p.QueryRow(ctx, `SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE source = 'session'`).Scan(&sessions[i]); err != nil {
			t.Fatal(err)
		}
	}
	if sessions[0] != sessions[1] || !strings.Contains(sessions[1], "synchronous_commit=on") || !strings.Contains(sessions[1], "tcp_user_timeout=") {
		t.Errorf("session parameters: reads %q, control %q; want the same, synchronous_commit and tcp_user_timeout set", sessions[0], sessions[1])
	}
	if _, err := s.Lookup(ctx, []string{"example.com/m@v1.0.0"}); err != nil {
		t.Fatalf("Lookup once the read connections are free: %v", err)
	}
}

// TestReadsWaitingCapped: with every read connection taken and as many
// reads waiting as MaxWaitingReads allows beside the connections, the next
// read fails at once with a *tlog.UnavailableError (503 with Retry-After)
// instead of waiting in line: a flood of lookups of missing versions does
// not pile up goroutines without bound. The database is not marked lost,
// and the reads waiting are served once connections are free.
func TestReadsWaitingCapped(t *testing.T) {
	ctx := context.Background()
	url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
	_, s := openLog(t, url, k, Options{MaxWaitingReads: 2})
	var held []*pgxpool.Conn
	release := func() {
		for _, c := range held {
			c.Release()
		}
		held = nil
	}
	t.Cleanup(release) // before Close, which waits for them
	for range s.pool.Config().MaxConns {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	n := int(s.pool.Config().MaxConns) + 2 // as many as may hold or wait for one
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := s.Lookup(ctx, []string{fmt.Sprintf("example.com/waiting%d@v1.0.0", i)})
			errs <- err
		}()
	}
	for s.reads.Load() < int64(n) {
		runtime.Gosched() // until every one waits
	}
	_, err := s.Lookup(ctx, []string{"example.com/refused@v1.0.0"})
	var ue *tlog.UnavailableError
	if !errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read beyond the reads waiting: %v (%v), want a *tlog.UnavailableError at once", err, errors.Unwrap(err))
	}
	select {
	case err := <-errs:
		t.Fatalf("a waiting read returned (%v) before the one refused", err)
	default:
	}
	if s.down.Load() {
		t.Error("a refused read marked the database lost")
	}
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("waiting read: %v", err)
		}
	}
	if _, err := s.Lookup(ctx, []string{"example.com/later@v1.0.0"}); err != nil {
		t.Fatalf("read once the connections are free: %v", err)
	}
}

// TestWriterNotBehindReads: with every read connection taken (a flood of
// anonymous lookups), a process's Add still runs, its lookup of the
// batch's keys, the record it finds and checks, and the edge tiles it
// appends to read on the log's own connections (tlog.IsOwnRead).
func TestWriterNotBehindReads(t *testing.T) {
	ctx := context.Background()
	url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
	a, _ := openLog(t, url, k, Options{})
	if _, err := a.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	b, s := openLog(t, url, k, Options{}) // another process: nothing cached, no edge tiles kept
	var held []*pgxpool.Conn
	t.Cleanup(func() { // before Close, which waits for them
		for _, c := range held {
			c.Release()
		}
	})
	for range s.pool.Config().MaxConns {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	ids, err := b.Add(ctx, record(0), record(1))
	if err != nil || len(ids) != 2 || ids[0] != 0 || ids[1] != 1 {
		t.Fatalf("Add with the read connections taken: %v, %v; want [0 1]", ids, err)
	}
}
