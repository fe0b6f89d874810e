package pgstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestSessionTimeouts: every connection ends a transaction left idle for
// twice the statement timeout, sends TCP keepalives and gives up on data
// the peer has not acknowledged (tcp_user_timeout), unless the URL sets
// its own.
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
			WHERE name IN ('idle_in_transaction_session_timeout', 'tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count', 'tcp_user_timeout')`)
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
		for _, name := range []string{"tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout"} {
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

// TestSessionDurability: every connection receives WARNINGs
// (client_min_messages = warning) and waits for the synchronous standbys
// (synchronous_commit = on), whatever the URL, the database or the role
// set: a hidden WARNING made a commit whose wait for the standby was
// cancelled look durable, and a weaker synchronous_commit made COMMIT not
// wait at all. A stronger remote_apply is kept.
func TestSessionDurability(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	if err := pg.Exec("postgres", `CREATE ROLE sumd_weak LOGIN`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec("postgres", `ALTER ROLE sumd_weak SET client_min_messages = error`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec("postgres", `ALTER ROLE sumd_weak SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		query string   // added to the URL
		db    []string // ALTER DATABASE … SET
		user  string   // the role, if not postgres
		sync  string   // the synchronous_commit the session has
	}{
		{name: "url", query: "&client_min_messages=error&synchronous_commit=off", sync: "on"},
		{name: "options", query: "&options=-c%20client_min_messages%3Derror%20-c%20synchronous_commit%3Dlocal", sync: "on"},
		{name: "database", db: []string{"client_min_messages = error", "synchronous_commit = remote_write"}, sync: "on"},
		{name: "role", user: "sumd_weak", sync: "on"},
		{name: "remote_apply", query: "&synchronous_commit=remote_apply", sync: "remote_apply"},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := pg.NewDatabase(t)
			db, _, _ := strings.Cut(strings.TrimPrefix(u, "postgres:///"), "?")
			for _, set := range c.db {
				if err := pg.Exec("postgres", "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET "+set); err != nil {
					t.Fatal(err)
				}
			}
			if c.user != "" {
				u = strings.Replace(u, "user=postgres", "user="+c.user, 1)
			}
			s := openDB(t, u+c.query)
			var msgs, sync string
			if err := s.pool.QueryRow(ctx, `SELECT current_setting('client_min_messages'), current_setting('synchronous_commit')`).Scan(&msgs, &sync); err != nil {
				t.Fatal(err)
			}
			if msgs != "warning" || sync != c.sync {
				t.Errorf("client_min_messages = %s, synchronous_commit = %s; want warning, %s", msgs, sync, c.sync)
			}
		})
	}
}

// TestWritersWhateverDefaults: writers take turns on the head's row lock
// whatever transaction defaults the database or the role set. Under
// default_transaction_isolation = repeatable read (or serializable), the
// SELECT … FOR UPDATE of a writer that waited for another's commit failed
// with a serialization failure instead of reading the new head, so that
// every write that met another process's failed (503), and a lock_timeout
// or statement_timeout shorter than the other's commit failed it outright.
func TestWritersWhateverDefaults(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	for _, set := range []string{
		"default_transaction_isolation = 'repeatable read'",
		"default_transaction_isolation = 'serializable'",
		"lock_timeout = '100ms'",
		"statement_timeout = '100ms'",
	} {
		t.Run(set, func(t *testing.T) {
			url, k := pg.NewDatabase(t), testKey(t)
			db, _, _ := strings.Cut(strings.TrimPrefix(url, "postgres:///"), "?")
			if err := pg.Exec("postgres", "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET "+set); err != nil {
				t.Fatal(err)
			}
			a, sa := openLog(t, url, k, Options{})
			b, _ := openLog(t, url, k, Options{})
			if err := sa.LockHead(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sa.UnlockHead)
			done := make(chan error, 1)
			go func() { _, err := b.Add(ctx, record(1)); done <- err }()
			waitLockWait(t, pg, url, done)
			// b waits longer than lock_timeout and statement_timeout
			// (100ms): the time matters only as a lower bound.
			select {
			case err := <-done:
				t.Fatalf("b.Add finished while a held the head's lock: %v", err)
			case <-time.After(500 * time.Millisecond):
			}
			if ids, err := a.Add(ctx, record(0)); err != nil || ids[0] != 0 {
				t.Fatalf("a.Add under its lock = %v, %v", ids, err)
			}
			if err := <-done; err != nil {
				t.Fatalf("b.Add after a's commit: %v", err)
			}
			if n := reverify(t, url, k); n != 2 {
				t.Fatalf("tree %d, want 2", n)
			}
		})
	}
}

// TestReadOnlyDefault: a role (or database) whose sessions default to
// read-only transactions (default_transaction_read_only = on, set for its
// other users, say) does not stop sumd, which overrides it as it does the
// other defaults it relies on. Its writes failed as a standby's after a
// failover do (25006): 503s for ever, logged as the database lost.
func TestReadOnlyDefault(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	db, _, _ := strings.Cut(strings.TrimPrefix(url, "postgres:///"), "?")
	role := pgx.Identifier{"ro_" + db[:min(len(db), 60)]}.Sanitize()
	for _, sql := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"ALTER ROLE " + role + " SET default_transaction_read_only = on",
		"ALTER DATABASE " + pgx.Identifier{db}.Sanitize() + " OWNER TO " + role,
	} {
		if err := pg.Exec("postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	url = strings.Replace(url, "user=postgres", "user=ro_"+db[:min(len(db), 60)], 1)
	l, _ := openLog(t, url, k, Options{})
	if _, err := l.Add(ctx, record(0)); err != nil {
		t.Fatalf("Add as a role whose transactions default to read-only: %v", err)
	}
	if n := reverify(t, url, k); n != 1 {
		t.Fatalf("tree %d, want 1", n)
	}
	// pgx's target_session_attrs=read-write asks SHOW transaction_read_only
	// before sumd's session setting: it turns the role away on a primary
	// (docs/ha.md). primary asks pg_is_in_recovery() and takes it.
	if n := reverify(t, url+"&target_session_attrs=primary", k); n != 1 {
		t.Fatalf("tree %d with target_session_attrs=primary, want 1", n)
	}
	if s, err := Open(ctx, url+"&target_session_attrs=read-write", Options{Logger: quiet}); err == nil {
		s.Close()
		t.Error("pgx took a role whose transactions default to read-only with target_session_attrs=read-write: docs/ha.md says it turns it away")
	}
}

// TestReadOnlyDatabase: a database that refuses writes as read-only
// (SQLSTATE 25006: a hot standby the URL leads to; here a trigger
// answering as one) was logged as a lost database. Writes still get 503
// (after a failover it comes and goes), but the log says plainly that the
// database is read-only and to point the URL at the primary, and so does
// the error's cause, which sumd's commands print.
func TestReadOnlyDatabase(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	db, _, _ := strings.Cut(strings.TrimPrefix(url, "postgres:///"), "?")
	var logs bytes.Buffer
	s, err := Open(ctx, url, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet, RefreshInterval: time.Hour})
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	defer l.Close()
	for _, sql := range []string{
		`CREATE FUNCTION standby() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			RAISE EXCEPTION 'cannot execute INSERT in a read-only transaction' USING ERRCODE = '25006'; END $$`,
		"CREATE TRIGGER standby BEFORE INSERT ON sumd_records EXECUTE FUNCTION standby()",
	} {
		if err := pg.Exec(db, sql); err != nil {
			t.Fatal(err)
		}
	}
	_, err = l.Add(ctx, record(0))
	var ue *tlog.UnavailableError
	if !errors.As(err, &ue) || ue.Err == nil || !strings.Contains(ue.Err.Error(), "point the URL at the primary") {
		t.Errorf("Add to a read-only database = %v, want unavailable, the cause saying to point the URL at the primary", err)
	}
	got := logs.String()
	if strings.Contains(got, "lost the PostgreSQL database") || !strings.Contains(got, "read-only") || !strings.Contains(got, "target_session_attrs=primary") {
		t.Errorf("log:\n%s\nwant it to say the database is read-only and how to reach the primary, not that it was lost", got)
	}
}
