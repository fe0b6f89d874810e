package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/storetest"
)

// The tests' key and records are storetest's, which its Writers check
// uses too.
var (
	testKey = storetest.NewKey
	record  = storetest.Record
)

// openLog opens a log on a store of its own on url (one sumd process).
func openLog(t testing.TB, url string, k *tlog.Key, opts Options) (*tlog.Log, *Store) {
	t.Helper()
	opts.Logger = quiet
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Verify: tlog.VerifyFull, Logger: quiet, RefreshInterval: time.Hour})
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, s
}

// reverify opens url afresh with full verification.
func reverify(t *testing.T, url string, k *tlog.Key) int64 {
	t.Helper()
	l, _ := openLog(t, url, k, Options{})
	defer l.Close()
	tree, _ := l.Tree(context.Background())
	return tree.N
}

// TestWriters runs three logs on one database, as three sumd processes:
// the store passes storetest's check of several writers.
func TestWriters(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	storetest.Writers(t, func(t *testing.T, k *tlog.Key) *tlog.Log {
		l, _ := openLog(t, url, k, Options{})
		return l
	})
}

// errLost is what a COMMIT whose answer never arrived returns.
var errLost = fmt.Errorf("lost connection: %w", io.ErrUnexpectedEOF)

// TestLostCommit loses the answer to COMMIT in each way it can end, and
// checks what the store tells the log: stored, not stored, or not stored
// because another process committed since, and that the log acts on it.
func TestLostCommit(t *testing.T) {
	ctx := context.Background()
	lookup := func(t *testing.T, l *tlog.Log, i int) int64 {
		t.Helper()
		r := record(i)
		id, err := l.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version})
		if err != nil {
			t.Fatalf("Lookup(%s): %v", r.Key(), err)
		}
		return id
	}
	t.Run("stored", func(t *testing.T) {
		url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
		l, s := openLog(t, url, k, Options{})
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			if err := commit(ctx, c, q); err != nil {
				return err
			}
			return errLost
		}
		if ids, err := l.Add(ctx, record(0), record(1)); err != nil || fmt.Sprint(ids) != "[0 1]" {
			t.Fatalf("Add whose commit was stored but unanswered = %v, %v; want [0 1]", ids, err)
		}
		if n := s.lost["stored"].Load(); n != 1 {
			t.Errorf("lost_commits_total{outcome=stored} = %d, want 1", n)
		}
		if n := reverify(t, url, k); n != 2 {
			t.Fatalf("stored tree %d, want 2", n)
		}
	})
	t.Run("rolled back", func(t *testing.T) {
		url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
		l, s := openLog(t, url, k, Options{})
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			c.Exec(ctx, "ROLLBACK")
			return errLost
		}
		_, err := l.Add(ctx, record(0))
		if !errors.Is(err, tlog.ErrNotPersisted) || errors.Is(err, tlog.ErrHeadMoved) {
			t.Fatalf("Add whose commit was rolled back = %v, want ErrNotPersisted", err)
		}
		s.finish = commit
		if ids, err := l.Add(ctx, record(1)); err != nil || ids[0] != 0 {
			t.Fatalf("the log after a commit that was not stored: %v, %v; want id 0", ids, err)
		}
	})
	t.Run("stored and extended", func(t *testing.T) {
		url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
		l, s := openLog(t, url, k, Options{})
		other, _ := openLog(t, url, k, Options{})
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			if err := commit(ctx, c, q); err != nil {
				return err
			}
			if _, err := other.Add(ctx, record(9)); err != nil { // on top of it
				return err
			}
			return errLost
		}
		if ids, err := l.Add(ctx, record(0), record(1)); err != nil || fmt.Sprint(ids) != "[0 1]" {
			t.Fatalf("Add whose commit was stored, extended and unanswered = %v, %v; want [0 1]", ids, err)
		}
		s.finish = commit
		if id := lookup(t, l, 9); id != 2 {
			t.Fatalf("the other writer's record is %d, want 2", id)
		}
	})
	t.Run("rolled back, another committed", func(t *testing.T) {
		url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
		l, s := openLog(t, url, k, Options{})
		other, _ := openLog(t, url, k, Options{})
		lost := 0
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			if lost++; lost > 1 {
				return commit(ctx, c, q)
			}
			c.Exec(ctx, "ROLLBACK")
			if _, err := other.Add(ctx, record(9)); err != nil {
				return err
			}
			return errLost
		}
		// ErrHeadMoved: the log adopts the other's head and commits again.
		if ids, err := l.Add(ctx, record(0)); err != nil || ids[0] != 1 {
			t.Fatalf("Add after a lost commit and another writer's = %v, %v; want id 1", ids, err)
		}
		if lost != 2 {
			t.Fatalf("%d commits, want the lost one and its retry", lost)
		}
		if n := reverify(t, url, k); n != 2 {
			t.Fatalf("stored tree %d, want 2", n)
		}
	})
	t.Run("terminated", func(t *testing.T) {
		// The server ends the backend between the writes and COMMIT, as
		// pg_terminate_backend (or a failover) does: a FATAL error or a
		// closed connection, resolved by re-reading the head.
		pg := pgtest.Shared(t)
		url, k := pg.NewDatabase(t), testKey(t)
		l, s := openLog(t, url, k, Options{})
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			if err := pg.Exec("postgres", "SELECT pg_terminate_backend($1)", c.PgConn().PID()); err != nil {
				return err
			}
			return commit(ctx, c, q)
		}
		_, err := l.Add(ctx, record(0))
		if !errors.Is(err, tlog.ErrNotPersisted) || !errors.Is(err, tlog.ErrUnavailable) {
			t.Fatalf("Add whose backend was terminated = %v, want ErrNotPersisted and ErrUnavailable", err)
		}
		s.finish = commit
		if ids, err := l.Add(ctx, record(1)); err != nil || ids[0] != 0 {
			t.Fatalf("the log after a terminated commit: %v, %v; want id 0", ids, err)
		}
	})
	t.Run("key change, another committed", func(t *testing.T) {
		// A batch without records cannot be told apart from the other
		// writer's: ambiguous, and the log stops.
		url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
		l, s := openLog(t, url, k, Options{})
		other, _ := openLog(t, url, k, Options{})
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			c.Exec(ctx, "ROLLBACK")
			if _, err := other.Add(ctx, record(9)); err != nil {
				return err
			}
			return errLost
		}
		if err := l.AddKey(ctx, testKey(t)); !errors.Is(err, tlog.ErrFatal) {
			t.Fatalf("AddKey whose commit was lost while another committed = %v, want ErrFatal", err)
		}
	})
	t.Run("out of reach", func(t *testing.T) {
		url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
		l, s := openLog(t, url, k, Options{ResolveTimeout: 300 * time.Millisecond})
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			go s.ctl.Close() // waits for the transaction's connection
			// Until Close has closed the pool, Acquire answers (or
			// waits, the pool full); once it has, Acquire fails: then
			// resolve cannot reach the database, however late the
			// goroutine ran.
			for {
				c, err := s.ctl.Acquire(ctx)
				if err != nil {
					break
				}
				c.Release()
			}
			return errLost
		}
		_, err := l.Add(ctx, record(0))
		if !errors.Is(err, tlog.ErrFatal) || !strings.Contains(err.Error(), "whether it was stored is unknown") {
			t.Fatalf("Add whose commit could not be resolved = %v, want ErrFatal: unknown", err)
		}
	})
}

// TestDatabaseRestart stops the database under a log and starts it again:
// meanwhile reads and writes fail as unavailable (503) and nothing stops
// the log; afterwards the same log carries on, without reopening.
func TestDatabaseRestart(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	s, err := Open(ctx, url, Options{Logger: quiet, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet,
		RefreshInterval: 20 * time.Millisecond, MaxHeadAge: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	for i, mode := range []string{"fast", "immediate"} {
		if err := pg.Stop(mode); err != nil {
			t.Fatal(err)
		}
		// A version the store has not cached needs the database; one
		// it has is served (with the head, within MaxHeadAge).
		r := record(99)
		if _, err := l.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); !errors.Is(err, tlog.ErrUnavailable) {
			t.Errorf("Lookup with the database stopped (%s) = %v, want ErrUnavailable", mode, err)
		}
		r = record(0)
		if _, err := l.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); err != nil {
			t.Errorf("Lookup of a cached record with the database stopped (%s) = %v", mode, err)
		}
		if _, err := l.Add(ctx, record(1+i)); !errors.Is(err, tlog.ErrUnavailable) || errors.Is(err, tlog.ErrFatal) {
			t.Errorf("Add with the database stopped (%s) = %v, want ErrUnavailable, not fatal", mode, err)
		}
		time.Sleep(300 * time.Millisecond) // MaxHeadAge
		if _, err := l.Signed(ctx); !errors.Is(err, tlog.ErrUnavailable) {
			t.Errorf("Signed with the database stopped (%s) for longer than MaxHeadAge = %v, want ErrUnavailable", mode, err)
		}
		if err := pg.Restart(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			_, err := l.Signed(ctx)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Signed 30s after the database came back (%s): %v", mode, err)
			}
		}
		if ids, err := l.Add(ctx, record(1+i)); err != nil || ids[0] != int64(1+i) {
			t.Fatalf("Add after the database came back (%s): %v, %v", mode, ids, err)
		}
	}
	if err := l.Err(); err != nil {
		t.Fatalf("the log stopped: %v", err)
	}
}

// TestSchema: a database without sumd's tables opens and stays untouched
// until a log is created; tables of a newer sumd are refused; concurrent
// creators make one log.
func TestSchema(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url := pg.NewDatabase(t)
	s := openDB(t, url)
	if _, err := s.Load(ctx); !errors.Is(err, tlog.ErrNoLog) {
		t.Fatalf("Load of an empty database = %v, want ErrNoLog", err)
	}
	var tables int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'sumd%'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("%d sumd tables (%v) after opening an empty database without creating a log", tables, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(ctx, url, Options{Logger: quiet})
			if err == nil {
				defer s.Close()
				err = s.Create(ctx, tlog.Meta{Name: "sum.example.com", VKeys: []string{"sum.example.com+00000000+AAAA"}}, []byte("head"))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, tlog.ErrLogExists):
			t.Fatalf("concurrent Create: %v", err)
		}
	}
	if created != 1 {
		t.Fatalf("%d of %d concurrent creators created the log, want 1", created, len(errs))
	}
	if err := pg.Exec(strings.TrimPrefix(strings.Split(url, "?")[0], "postgres:///"), `UPDATE sumd_schema SET version = 99`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, url, Options{Logger: quiet}); !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "upgrade sumd") {
		t.Fatalf("Open of a newer schema = %v, want ErrNewerSchema", err)
	}
}

// TestLostStagingCommit loses the answer to a batch that does not move
// the head (a mirror's staging, a copy's chunk): the head cannot tell
// whether it was stored, so the batch's own rows do, and a batch not
// known stored fills no cache.
func TestLostStagingCommit(t *testing.T) {
	ctx := context.Background()
	full := bytes.Repeat([]byte{7}, tileBytes)
	batch := func() *tlog.Batch {
		return &tlog.Batch{
			Records: []tlog.StoredRecord{{ID: 5, Key: "k@v1", Text: []byte("five")}},
			Tiles:   []tlog.Tile{{TileID: tlog.TileID{L: 1, N: 0}, Data: full}},
		}
	}
	open := func(t *testing.T) *Store {
		s := openDB(t, pgtest.Shared(t).NewDatabase(t))
		if err := s.Create(ctx, tlog.Meta{Name: "x", VKeys: []string{"x+1+AAAA"}, Mirror: true}, nil); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("rolled back", func(t *testing.T) {
		s := open(t)
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			c.Exec(ctx, "ROLLBACK")
			return errLost
		}
		if err := s.Commit(ctx, batch()); !errors.Is(err, tlog.ErrNotPersisted) {
			t.Fatalf("lost staging commit, rolled back = %v, want ErrNotPersisted", err)
		}
		if s.tiles.Len() != 0 {
			t.Fatal("cached a tile of a batch that was not stored")
		}
		if got, err := s.ReadTiles(ctx, []tlog.TileID{{L: 1, N: 0}}); err != nil || got[0] != nil {
			t.Fatalf("ReadTiles = %d bytes, %v; want none", len(got[0]), err)
		}
	})
	t.Run("stored", func(t *testing.T) {
		s := open(t)
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			if err := commit(ctx, c, q); err != nil {
				return err
			}
			return errLost
		}
		if err := s.Commit(ctx, batch()); err != nil {
			t.Fatalf("lost staging commit, stored = %v, want nil", err)
		}
		if s.tiles.Len() != 0 {
			t.Fatal("cached a staged tile beyond the batch's head: a dropped staging's tile would be served for the next one")
		}
		if got, err := s.ReadRecords(ctx, []int64{5}); err != nil || string(got[0]) != "five" {
			t.Fatalf("ReadRecords = %q, %v", got, err)
		}
	})
	t.Run("partly there before", func(t *testing.T) {
		// The records were stored by an earlier attempt, the tile not: a
		// rolled-back batch is still not stored.
		s := open(t)
		b := batch()
		b.Tiles = nil
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			c.Exec(ctx, "ROLLBACK")
			return errLost
		}
		if err := s.Commit(ctx, batch()); !errors.Is(err, tlog.ErrNotPersisted) {
			t.Fatalf("lost staging commit, rolled back over its records = %v, want ErrNotPersisted", err)
		}
	})
	t.Run("nothing to store", func(t *testing.T) {
		// A copy's last commit of a head the store already holds: done
		// either way, not ambiguous.
		s := open(t)
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			c.Exec(ctx, "ROLLBACK")
			return errLost
		}
		if err := s.Commit(ctx, &tlog.Batch{}); err != nil {
			t.Fatalf("lost commit of an empty batch = %v, want nil", err)
		}
	})
	t.Run("narrower tile since", func(t *testing.T) {
		// The batch's tile was stored, then a commit of a smaller tree's
		// head replaced it with a narrower one: that says nothing of the
		// batch, which is not "not stored".
		s := open(t)
		s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
			if err := commit(ctx, c, q); err != nil {
				return err
			}
			if _, err := s.pool.Exec(ctx, `UPDATE sumd_tiles SET data = $1 WHERE level = 1 AND n = 0`, full[:tileBytes/2]); err != nil {
				return err
			}
			return errLost
		}
		if err := s.Commit(ctx, batch()); err == nil || errors.Is(err, tlog.ErrNotPersisted) {
			t.Fatalf("lost staging commit whose tile narrowed since = %v, want ambiguous", err)
		}
	})
}

// TestLostCommitOwnLock: a COMMIT that failed on the client's side, never
// sent, leaves the batch's transaction open on a healthy connection; its
// resolution must not wait on that transaction's own row lock (until the
// server ends it as idle).
func TestLostCommitOwnLock(t *testing.T) {
	ctx := context.Background()
	url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
	l, s := openLog(t, url, k, Options{Timeout: 5 * time.Second})
	s.finish = func(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error { return errLost }
	start := time.Now()
	if _, err := l.Add(ctx, record(0)); !errors.Is(err, tlog.ErrNotPersisted) {
		t.Fatalf("Add whose COMMIT was never sent = %v, want ErrNotPersisted", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("resolving a COMMIT that was never sent took %v: it waited on its own transaction", d)
	}
}

// TestRetiredKeyShared: the record of a retired key (tlog.AuxRetiredKeys)
// is in the database, where another process on it finds it: its AddKey of
// the retired key is refused.
func TestRetiredKeyShared(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	oldKey, newKey := testKey(t), testKey(t)
	l, _ := openLog(t, url, oldKey, Options{})
	if err := l.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	if err := l.RemoveKey(ctx, oldKey.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	other, _ := openLog(t, url, newKey, Options{})
	if err := other.AddKey(ctx, oldKey); err == nil || !strings.Contains(err.Error(), "was retired") {
		t.Fatalf("AddKey of the retired key by another process = %v, want a refusal saying it was retired", err)
	}
}
