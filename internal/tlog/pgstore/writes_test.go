package pgstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// dbName returns the database a pgtest URL names.
func dbName(url string) string {
	db, _, _ := strings.Cut(strings.TrimPrefix(url, "postgres:///"), "?")
	return db
}

// TestHeadNotUpdated: an UPDATE of the head that changes no row (a
// trigger that skips it, or a row security policy) fails the commit, and
// stores none of it, instead of acknowledging records no head covers.
func TestHeadNotUpdated(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	db := dbName(url)
	l, _ := openLog(t, url, k, Options{})
	if _, err := l.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`CREATE FUNCTION sumd_test_skip() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'`,
		`CREATE TRIGGER skip BEFORE UPDATE ON sumd_log FOR EACH ROW EXECUTE FUNCTION sumd_test_skip()`,
	} {
		if err := pg.Exec(db, sql); err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.Add(ctx, record(1))
	if !errors.Is(err, tlog.ErrNotPersisted) || errors.Is(err, tlog.ErrFatal) || !strings.Contains(err.Error(), "changed 0 rows") {
		t.Fatalf("Add whose head update changed no row = %v, want ErrNotPersisted: changed 0 rows", err)
	}
	var records int
	if err := pgQuery(t, pg, db, `SELECT count(*) FROM sumd_records`, &records); err != nil || records != 1 {
		t.Fatalf("%d records stored (%v), want 1: the failed commit stored its record", records, err)
	}
	if err := pg.Exec(db, `DROP TRIGGER skip ON sumd_log`); err != nil {
		t.Fatal(err)
	}
	if ids, err := l.Add(ctx, record(1)); err != nil || ids[0] != 1 {
		t.Fatalf("Add without the trigger = %v, %v; want id 1", ids, err)
	}
	if n := reverify(t, url, k); n != 2 {
		t.Fatalf("stored tree %d, want 2", n)
	}
}

// TestRolledBackHeadWrites: with the head rolled back behind sumd's back, a
// process whose head is the restored one does not overwrite the records
// the database still holds beyond it (acknowledged once): its commit fails,
// storing nothing.
func TestRolledBackHeadWrites(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	db := dbName(url)
	a, _ := openLog(t, url, k, Options{})
	b, _ := openLog(t, url, k, Options{})
	if _, err := a.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	var head, root []byte
	var size int64
	if err := pgQuery(t, pg, db, `SELECT head, tree_size, root FROM sumd_log`, &head, &size, &root); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(ctx, record(1)); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(db, `UPDATE sumd_log SET head = $1, tree_size = $2, root = $3`, head, size, root); err != nil {
		t.Fatal(err)
	}
	_, err := b.Add(ctx, record(2))
	if !errors.Is(err, tlog.ErrNotPersisted) || errors.Is(err, tlog.ErrFatal) || !strings.Contains(err.Error(), "record 1 is stored with another text") {
		t.Fatalf("Add over a record beyond the rolled-back head = %v, want ErrNotPersisted: record 1 is stored with another text", err)
	}
	var text []byte
	if err := pgQuery(t, pg, db, `SELECT text FROM sumd_records WHERE id = 1`, &text); err != nil || !bytes.Equal(text, record(1).Text()) {
		t.Fatalf("record 1 is %q (%v), want the acknowledged %q", text, err, record(1).Text())
	}
}

// TestWritesCheckStored: index entries and tiles a batch writes must agree
// with those stored (a tile may grow); records and index entries equal to
// the stored ones are written again without error.
func TestWritesCheckStored(t *testing.T) {
	ctx := context.Background()
	s := openDB(t, pgtest.Shared(t).NewDatabase(t))
	if err := s.Create(ctx, tlog.Meta{Name: "sum.example.com", VKeys: []string{"sum.example.com+00000000+AAAA"}}, []byte("h0")); err != nil {
		t.Fatal(err)
	}
	hashes := func(c ...byte) []byte {
		var d []byte
		for _, c := range c {
			d = append(d, bytes.Repeat([]byte{c}, 32)...)
		}
		return d
	}
	tile := func(data []byte) []tlog.Tile { return []tlog.Tile{{TileID: tlog.TileID{L: 0, N: 0}, Data: data}} }
	rec := func(id int64, key, text string) []tlog.StoredRecord {
		return []tlog.StoredRecord{{ID: id, Key: key, Text: []byte(text)}}
	}
	if err := s.Commit(ctx, &tlog.Batch{Prev: []byte("h0"), Head: []byte("h1"), Records: rec(0, "a@v1", "t0"), Tiles: tile(hashes('A'))}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		b    tlog.Batch
		err  string // "": stored
	}{
		{"key at another id", tlog.Batch{Records: rec(1, "a@v1", "t1")}, "the index maps a@v1 to record 0, not 1"},
		{"tile with other hashes", tlog.Batch{Tiles: tile(hashes('B', 'C'))}, "hash tile 0/0 is stored with other hashes"},
		{"the same record again", tlog.Batch{Records: rec(0, "a@v1", "t0")}, ""},
		{"tile grown", tlog.Batch{Tiles: tile(hashes('A', 'C'))}, ""},
	} {
		b := c.b
		b.Prev, b.Head = []byte("h1"), []byte("h1")
		err := s.Commit(ctx, &b)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (!errors.Is(err, tlog.ErrNotPersisted) || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %v, want ErrNotPersisted: %s", c.name, err, c.err)
		}
	}
	ids, err := s.Lookup(ctx, []string{"a@v1"})
	if err != nil || ids[0] != 0 {
		t.Fatalf("a@v1 indexed at %v (%v), want 0", ids, err)
	}
	s.tiles.Purge()
	tiles, err := s.ReadTiles(ctx, []tlog.TileID{{L: 0, N: 0}})
	if err != nil || !bytes.Equal(tiles[0], hashes('A', 'C')) {
		t.Fatalf("tile 0/0 = %x (%v), want the grown one", tiles[0], err)
	}
}

// TestWritesHaveDeadline: a batch's writes, sent with its COMMIT, which
// has no deadline, have Options.Timeout as every other statement does: a
// write blocked on a lock (an operator's LOCK TABLE, a REINDEX, VACUUM
// FULL) fails the batch, stored nothing, rather than hold the writer, the
// head's row lock and every caller until the lock is released.
func TestWritesHaveDeadline(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	l, _ := openLog(t, url, k, Options{Timeout: time.Second})
	if _, err := l.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) }) // before l.Close
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE sumd_records IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := l.Add(ctx, record(1)); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, tlog.ErrNotPersisted) || errors.Is(err, tlog.ErrFatal) {
			t.Fatalf("Add blocked on a lock = %v, want ErrNotPersisted, not fatal", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Add blocked on a lock did not return within a minute (its writes have no deadline)")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, err := l.Add(ctx, record(1)); err != nil || ids[0] != 1 {
		t.Fatalf("Add after the lock's release = %v, %v; want id 1", ids, err)
	}
	if n := reverify(t, url, k); n != 2 {
		t.Fatalf("stored tree %d, want 2", n)
	}
}

// TestCommitHasNoStatementTimeout: the statement timeout of a batch's
// writes (TestWritesHaveDeadline) is lifted for its COMMIT, which waits
// for as long as it takes (cancelling its wait for a synchronous standby
// would commit it on the primary alone): here a deferred trigger that
// runs at COMMIT for longer than Options.Timeout.
func TestCommitHasNoStatementTimeout(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	db := dbName(url)
	l, _ := openLog(t, url, k, Options{Timeout: 500 * time.Millisecond})
	if _, err := l.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`CREATE FUNCTION sumd_test_slow() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END'`,
		`CREATE CONSTRAINT TRIGGER slow AFTER UPDATE ON sumd_log DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sumd_test_slow()`,
	} {
		if err := pg.Exec(db, sql); err != nil {
			t.Fatal(err)
		}
	}
	if ids, err := l.Add(ctx, record(1)); err != nil || ids[0] != 1 {
		t.Fatalf("Add whose COMMIT outlasts Options.Timeout = %v, %v; want id 1", ids, err)
	}
	if err := pg.Exec(db, `DROP TRIGGER slow ON sumd_log`); err != nil {
		t.Fatal(err)
	}
	if n := reverify(t, url, k); n != 2 {
		t.Fatalf("stored tree %d, want 2", n)
	}
}
