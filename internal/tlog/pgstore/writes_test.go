package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"

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
