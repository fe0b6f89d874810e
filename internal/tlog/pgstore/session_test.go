package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestSessionTimeouts: every connection ends a transaction left idle for
// twice the statement timeout and sends TCP keepalives, unless the URL
// sets its own.
func TestSessionTimeouts(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	for _, c := range []struct {
		query string // added to the URL
		idle  string // the idle timeout the session has
	}{
		{"", "1500"},
		{"&idle_in_transaction_session_timeout=7000", "7000"},
	} {
		s, err := Open(ctx, url+c.query, Options{Logger: quiet, Timeout: 750 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		rows, err := s.pool.Query(ctx, `SELECT name, setting, source FROM pg_settings
			WHERE name IN ('idle_in_transaction_session_timeout', 'tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count')`)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]string{}
		var name, setting, source string
		for rows.Next() {
			if err := rows.Scan(&name, &setting, &source); err != nil {
				t.Fatal(err)
			}
			got[name] = [2]string{setting, source}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if v := got["idle_in_transaction_session_timeout"]; v[0] != c.idle {
			t.Errorf("URL %q: idle_in_transaction_session_timeout = %s (%s), want %s", c.query, v[0], v[1], c.idle)
		}
		// The test server is on a unix socket, where the keepalive
		// settings read as 0: that they were set shows in the source.
		for _, name := range []string{"tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count"} {
			if v := got[name]; v[1] != "session" {
				t.Errorf("URL %q: %s = %s from %s, want set by the session", c.query, name, v[0], v[1])
			}
		}
	}
}

// TestIdleLockEnded: a process that took the head's row lock and went
// silent (as one that lost the network does) blocks the others' writes
// only until the server ends its idle transaction; its own commit on the
// lost lock then resolves as not stored (here: another writer's head), and
// the log carries on.
func TestIdleLockEnded(t *testing.T) {
	ctx := context.Background()
	url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
	a, sa := openLog(t, url, k, Options{Timeout: 500 * time.Millisecond}) // idle transactions end after 1s
	b, _ := openLog(t, url, k, Options{Timeout: 5 * time.Second})
	if err := sa.LockHead(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sa.UnlockHead) // if the test fails: a's store cannot close while it holds the lock
	start := time.Now()
	bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ids, err := b.Add(bctx, record(1)); err != nil || ids[0] != 0 {
		t.Fatalf("b.Add while a holds the head's lock idle = %v, %v; want id 0 once the server ends a's transaction", ids, err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("b.Add took %v, want about a's idle timeout (1s)", d)
	}
	if ids, err := a.Add(ctx, record(0)); err != nil || ids[0] != 1 {
		t.Fatalf("a.Add on the lock the server took back = %v, %v; want id 1", ids, err)
	}
	if n := sa.lost["not_stored"].Load(); n != 1 {
		t.Errorf("lost_commits_total{outcome=not_stored} = %d, want 1", n)
	}
	if err := a.Err(); errors.Is(err, tlog.ErrFatal) {
		t.Fatalf("a stopped: %v", err)
	}
}
