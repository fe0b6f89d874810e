package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestPostgresReportsDamage: PostgreSQL's own report of damage in its
// files, SQLSTATE XX001 (data_corrupted) or XX002 (index_corrupted), was a
// plain error (a 500, no advice); it is now a *CorruptError, an
// ErrCorrupt saying what to do. The damage is faked by functions that
// raise those codes: a view over the index for reads, a trigger on the
// records for a commit.
func TestPostgresReportsDamage(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	db := dbName(url)
	l, _ := openLog(t, url, k, Options{})
	if _, err := l.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`CREATE FUNCTION sumd_test_index_damaged(bytea) RETURNS boolean LANGUAGE plpgsql AS
			'BEGIN RAISE EXCEPTION ''index "sumd_index_pkey" contains unexpected zero page at block 7'' USING ERRCODE = ''index_corrupted''; END'`,
		`ALTER TABLE sumd_index RENAME TO sumd_index_real`,
		`CREATE VIEW sumd_index AS SELECT * FROM sumd_index_real WHERE sumd_test_index_damaged(key)`,
		`CREATE FUNCTION sumd_test_data_damaged() RETURNS trigger LANGUAGE plpgsql AS
			'BEGIN RAISE EXCEPTION ''invalid page in block 3 of relation base/16384/16390'' USING ERRCODE = ''data_corrupted''; END'`,
		`CREATE TRIGGER damaged BEFORE INSERT ON sumd_records FOR EACH ROW EXECUTE FUNCTION sumd_test_data_damaged()`,
	} {
		if err := pg.Exec(db, sql); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, err error, hint string) {
		t.Helper()
		var ce *CorruptError
		if !errors.Is(err, tlog.ErrCorrupt) || errors.Is(err, tlog.ErrUnavailable) || !errors.As(err, &ce) || !strings.Contains(ce.Hint(), hint) {
			t.Errorf("%s when PostgreSQL reports damage = %v, want a *CorruptError (ErrCorrupt) whose hint says %q", what, err, hint)
		}
	}
	// A store of its own, whose cache does not hold record 0's entry.
	_, err := openDB(t, url).Lookup(ctx, []string{record(0).Key()})
	check("Lookup", err, "REINDEX")
	r := record(1)
	// Add looks the version up first: make the index readable.
	if err := pg.Exec(db, `CREATE OR REPLACE FUNCTION sumd_test_index_damaged(bytea) RETURNS boolean LANGUAGE sql AS 'SELECT true'`); err != nil {
		t.Fatal(err)
	}
	_, err = l.Add(ctx, r)
	check("Add", err, "restore")
	if !errors.Is(err, tlog.ErrNotPersisted) {
		t.Errorf("Add refused by PostgreSQL = %v, want ErrNotPersisted", err)
	}
}
