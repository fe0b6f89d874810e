package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// pgQuery runs sql in database db of pg and scans its one row into dest.
func pgQuery(t *testing.T, pg *pgtest.Server, db, sql string, dest ...any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pg.URL(db))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.QueryRow(ctx, sql).Scan(dest...)
}

// TestUnreplicatedHead: a commit that PostgreSQL keeps on the primary only
// — its backend terminated while COMMIT waited for a synchronous standby
// that never answers, "committed locally, but might not have been
// replicated" — is visible to every reader, but another process does not
// adopt its head (a failover to the standby would lose it) until the
// database confirms it durable: here, once synchronous replication is
// switched off.
func TestUnreplicatedHead(t *testing.T) {
	pgtest.Shared(t) // skips without the server binaries
	// A server of its own: synchronous_standby_names is server-wide.
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() }) // after the logs' cleanups
	ctx := context.Background()
	url, k := pg.NewDatabase(t), testKey(t)
	db, _, _ := strings.Cut(strings.TrimPrefix(url, "postgres:///"), "?")
	a, _ := openLog(t, url, k, Options{})
	b, _ := openLog(t, url, k, Options{Timeout: 2 * time.Second})
	if _, err := a.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	standby := func(names string) { setStandby(t, pg, names) }
	// Before the logs close, which waits for a's commit: on failures too.
	t.Cleanup(func() { standby("") })
	standby("ghost")
	added := make(chan error, 1)
	go func() {
		ids, err := a.Add(ctx, record(1))
		if err == nil && ids[0] != 1 {
			err = errors.New("record 1 got another id")
		}
		added <- err
	}()
	var pid int32
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := pgQuery(t, pg, "postgres", `SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' LIMIT 1`, &pid)
		if err == nil {
			break
		}
		if !errors.Is(err, pgx.ErrNoRows) || time.Now().After(deadline) {
			var act string
			pgQuery(t, pg, "postgres", `SELECT string_agg(concat_ws(' ', pid, state, wait_event, query), E'\n') FROM pg_stat_activity`, &act)
			t.Fatalf("no COMMIT waiting for the standby: %v\n%s", err, act)
		}
	}
	if err := pg.Exec("postgres", "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	// The commit is on the primary, and visible.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var n int64
		if err := pgQuery(t, pg, db, `SELECT tree_size FROM sumd_log`, &n); err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored tree %d after the terminated commit, want 2", n)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	start := time.Now()
	err = b.Refresh(rctx)
	cancel()
	if err == nil {
		t.Fatal("b adopted a head the synchronous standby never received")
	}
	// Once the barrier has waited longer than the statement timeout, a
	// refresh fails at once: not by waiting for the barrier until its
	// context ends, which here would be after 30s, not a time that
	// decides the test.
	time.Sleep(time.Until(start.Add(2500 * time.Millisecond)))
	rctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	err = b.Refresh(rctx)
	cancel()
	if !errors.Is(err, tlog.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Refresh while the standby has been away longer than the statement timeout = %v, want ErrUnavailable at once, not at the end of its context", err)
	}
	r := record(1)
	if id, err := b.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); err == nil {
		t.Fatalf("b looked up the unreplicated record: id %d", id)
	}
	if tree, _ := b.Tree(ctx); tree.N != 1 {
		t.Fatalf("b publishes tree %d, want 1", tree.N)
	}
	// Without synchronous replication every commit is durable once
	// committed: b adopts the head, and a's lost commit resolves as stored.
	standby("")
	// The barrier, released, ends in its own time: until then a refresh
	// fails at once, as above.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := b.Refresh(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Refresh once the head is durable: %v", err)
		}
	}
	if tree, _ := b.Tree(ctx); tree.N != 2 {
		t.Fatalf("b publishes tree %d, want 2", tree.N)
	}
	select {
	case err := <-added:
		if err != nil {
			t.Fatalf("a's Add whose commit was kept on the primary: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a's Add did not end after synchronous replication was switched off")
	}
}

// waitSyncRep returns the pid of a backend of application app (any, if
// empty) whose COMMIT waits for a synchronous standby.
func waitSyncRep(t *testing.T, pg *pgtest.Server, app string) int32 {
	t.Helper()
	var pid int32
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := pgQuery(t, pg, "postgres", `SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'
			AND ('`+app+`' = '' OR application_name = '`+app+`') LIMIT 1`, &pid)
		if err == nil {
			return pid
		}
		if !errors.Is(err, pgx.ErrNoRows) || time.Now().After(deadline) {
			t.Fatalf("no COMMIT waiting for the standby: %v", err)
		}
	}
}

// TestCancelledSyncWait: a query cancel of a COMMIT waiting for a
// synchronous standby (pg_cancel_backend, by an admin tool or a pooler)
// makes PostgreSQL answer COMMIT as usual, with a WARNING that the
// transaction "has already committed locally, but might not have been
// replicated to the standby". The store does not acknowledge such a commit
// until the database confirms it durable, and a Load whose barrier's wait
// is cancelled does not adopt the head.
func TestCancelledSyncWait(t *testing.T) {
	pgtest.Shared(t)
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	ctx := context.Background()
	url, k := pg.NewDatabase(t), testKey(t)
	a, _ := openLog(t, url, k, Options{})
	b, _ := openLog(t, url+"&application_name=b", k, Options{})
	if _, err := a.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	standby := func(names string) { setStandby(t, pg, names) }
	t.Cleanup(func() { standby("") })
	standby("ghost")
	added := make(chan error, 1)
	go func() { _, err := a.Add(ctx, record(1)); added <- err }()
	if err := pg.Exec("postgres", "SELECT pg_cancel_backend($1)", waitSyncRep(t, pg, "")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-added:
		t.Fatalf("Add of a commit whose wait for the standby was cancelled answered %v while the standby is away", err)
	case <-time.After(2 * time.Second):
	}
	if tree, _ := a.Tree(ctx); tree.N != 1 {
		t.Fatalf("a publishes tree %d while the standby is away, want 1", tree.N)
	}
	// Another process's barrier, cancelled in turn, confirms nothing.
	refreshed := make(chan error, 1)
	go func() { refreshed <- b.Refresh(ctx) }()
	if err := pg.Exec("postgres", "SELECT pg_cancel_backend($1)", waitSyncRep(t, pg, "b")); err != nil {
		t.Fatal(err)
	}
	if err := <-refreshed; err == nil {
		t.Fatal("b adopted a head after its durability barrier's wait was cancelled")
	}
	if tree, _ := b.Tree(ctx); tree.N != 1 {
		t.Fatalf("b publishes tree %d while the standby is away, want 1", tree.N)
	}
	standby("")
	select {
	case err := <-added:
		if err != nil {
			t.Fatalf("a's Add once the standby is not needed: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a's Add did not end after synchronous replication was switched off")
	}
	if tree, _ := a.Tree(ctx); tree.N != 2 {
		t.Fatalf("a publishes tree %d, want 2", tree.N)
	}
}

// TestWeakSessionSyncCancel: a database or URL that hides WARNINGs from
// sumd's sessions (client_min_messages = error) or lets COMMIT skip the
// wait for the synchronous standbys (synchronous_commit = off) does not
// make sumd acknowledge a commit the standby never received: the sessions
// override both, so COMMIT waits, and a cancel of that wait is seen.
func TestWeakSessionSyncCancel(t *testing.T) {
	pgtest.Shared(t)
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	ctx := context.Background()
	standby := func(names string) { setStandby(t, pg, names) }
	t.Cleanup(func() { standby("") })
	for _, c := range []struct {
		query string   // added to the URL
		db    []string // ALTER DATABASE … SET
	}{
		{query: "&client_min_messages=error"},
		{db: []string{"client_min_messages = error", "synchronous_commit = off"}},
	} {
		url, k := pg.NewDatabase(t), testKey(t)
		db, _, _ := strings.Cut(strings.TrimPrefix(url, "postgres:///"), "?")
		for _, set := range c.db {
			if err := pg.Exec("postgres", "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET "+set); err != nil {
				t.Fatal(err)
			}
		}
		a, _ := openLog(t, url+c.query, k, Options{})
		if _, err := a.Add(ctx, record(0)); err != nil {
			t.Fatal(err)
		}
		standby("ghost")
		added := make(chan error, 1)
		go func() { _, err := a.Add(ctx, record(1)); added <- err }()
		if err := pg.Exec("postgres", "SELECT pg_cancel_backend($1)", waitSyncRep(t, pg, "")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-added:
			t.Fatalf("%s%v: Add of a commit whose wait for the standby was cancelled answered %v while the standby is away", c.query, c.db, err)
		case <-time.After(2 * time.Second):
		}
		if tree, _ := a.Tree(ctx); tree.N != 1 {
			t.Fatalf("%s%v: publishes tree %d while the standby is away, want 1", c.query, c.db, tree.N)
		}
		standby("")
		select {
		case err := <-added:
			if err != nil {
				t.Fatalf("%s%v: Add once the standby is not needed: %v", c.query, c.db, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s%v: Add did not end after synchronous replication was switched off", c.query, c.db)
		}
	}
}

// TestCreateWaitsForStandby: Create's COMMITs (the tables', the log's)
// have no deadline, as Commit's: one expiring made pgx cancel the wait for
// the synchronous standby, and the log, committed on the primary alone,
// was created and published. A cancel by someone else is seen too: Create
// returns only once the database confirms the log durable.
func TestCreateWaitsForStandby(t *testing.T) {
	pgtest.Shared(t)
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	ctx := context.Background()
	standby := func(names string) { setStandby(t, pg, names) }
	t.Cleanup(func() { standby("") })
	s, err := Open(ctx, pg.NewDatabase(t), Options{Logger: quiet, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	standby("ghost")
	created := make(chan error, 1)
	go func() {
		created <- s.Create(ctx, tlog.Meta{Name: "x", VKeys: []string{"x+1+AQ"}}, nil)
	}()
	select {
	case err := <-created:
		t.Fatalf("Create answered %v while the synchronous standby is away", err)
	case <-time.After(4 * time.Second): // four times its statement timeout
	}
	waitSyncRep(t, pg, "")
	if err := pg.Exec("postgres", "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-created:
		t.Fatalf("Create whose wait for the standby was cancelled answered %v while the standby is away", err)
	case <-time.After(2 * time.Second):
	}
	standby("")
	select {
	case err := <-created:
		if err != nil {
			t.Fatalf("Create once the standby is not needed: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Create did not end after synchronous replication was switched off")
	}
}

// TestSetAuxWaitsForStandby: SetAux's COMMIT has no deadline, as Commit's:
// one expiring made pgx cancel the wait for the synchronous standby, and
// the value, read back from the primary, was acknowledged durable.
func TestSetAuxWaitsForStandby(t *testing.T) {
	pgtest.Shared(t)
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	ctx := context.Background()
	url, k := pg.NewDatabase(t), testKey(t)
	_, s := openLog(t, url, k, Options{Timeout: time.Second})
	standby := func(names string) { setStandby(t, pg, names) }
	t.Cleanup(func() { standby("") })
	standby("ghost")
	stored := make(chan error, 1)
	go func() { stored <- s.SetAux(ctx, "k", []byte("v")) }()
	select {
	case err := <-stored:
		t.Fatalf("SetAux answered %v while the synchronous standby is away", err)
	case <-time.After(4 * time.Second): // four times its statement timeout
	}
	standby("")
	select {
	case err := <-stored:
		if err != nil {
			t.Fatalf("SetAux once the standby is not needed: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("SetAux did not end after synchronous replication was switched off")
	}
}

// setStandby sets synchronous_standby_names to names ("ghost": a standby
// that never comes, so commits wait; "": none) and waits until commits do
// as it says: the server's processes read it each on its own time (the
// checkpointer decides whether commits wait), so a probe commit is made
// until it waits for the standby (then is cancelled) or, for "", does not
// and nothing waits any more.
func setStandby(t *testing.T, pg *pgtest.Server, names string) {
	t.Helper()
	if err := pg.Exec("postgres", "ALTER SYSTEM SET synchronous_standby_names = '"+names+"'"); err != nil {
		t.Error(err)
		return
	}
	if err := pg.Exec("postgres", "SELECT pg_reload_conf()"); err != nil {
		t.Error(err)
		return
	}
	want := names != ""
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		waits, err := commitWaits(t, pg)
		if err == nil && waits == want && !want {
			var n int
			err = pgQuery(t, pg, "postgres", `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`, &n)
			waits = n > 0
		}
		if err != nil {
			t.Error(err)
			return
		}
		if waits == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("commits still wait=%v for a standby 30s after synchronous_standby_names = '%s'", waits, names)
			return
		}
	}
}

// commitWaits makes a probe commit (one that writes WAL: only those wait)
// and reports whether it waited for a synchronous standby, in
// which case it is cancelled (it committed locally) before the answer.
func commitWaits(t *testing.T, pg *pgtest.Server) (bool, error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		done <- pg.Exec("postgres", "CREATE TABLE IF NOT EXISTS sumd_standby_probe (); INSERT INTO sumd_standby_probe DEFAULT VALUES")
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-done:
			return false, err
		default:
		}
		var pid int32
		err := pgQuery(t, pg, "postgres", `SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'
			AND query LIKE '%sumd_standby_probe%' AND pid <> pg_backend_pid() LIMIT 1`, &pid)
		if err == nil {
			if err := pg.Exec("postgres", "SELECT pg_cancel_backend($1)", pid); err != nil {
				return false, err
			}
			return true, <-done
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return false, err
		}
		if time.Now().After(deadline) {
			return false, errors.New("a probe commit neither ended nor waited for the standby within 30s")
		}
	}
}
