package pgstore

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sumd-project/sumd/internal/pgtest"
)

// TestReadPlans checks that the reads of several keys or ids probe the
// primary key and never scan a table, in the situation that made the
// obvious forms scan: statements prepared (as pgx prepares every
// statement) while the tables were small, whose generic plans PostgreSQL
// keeps using as the tables grow. A join with unnest($1) fails it: a hash
// join over a sequential scan of the table.
func TestReadPlans(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	s, err := Open(ctx, url, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.migrate(ctx, true); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	exec := func(stmts ...string) {
		t.Helper()
		for _, stmt := range stmts {
			if _, err := c.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	fill := func(from, to int) {
		t.Helper()
		exec(
			fmt.Sprintf(`INSERT INTO sumd_index SELECT convert_to('example.com/m' || i || '@v1.0.0', 'UTF8'), i FROM generate_series(%d, %d) i`, from, to),
			fmt.Sprintf(`INSERT INTO sumd_records SELECT i, convert_to('record ' || i, 'UTF8') FROM generate_series(%d, %d) i`, from, to),
			fmt.Sprintf(`INSERT INTO sumd_tiles SELECT 0, i, '\x00' FROM generate_series(%d, %d) i`, from, to))
	}
	exec(`ALTER TABLE sumd_index SET (autovacuum_enabled = off)`,
		`ALTER TABLE sumd_records SET (autovacuum_enabled = off)`,
		`ALTER TABLE sumd_tiles SET (autovacuum_enabled = off)`)
	fill(1, 1000)
	exec(`ANALYZE`, `SET plan_cache_mode = force_generic_plan`)

	var keys [][]byte
	var ids, ns []int64
	var levels []int16
	for i := range 130 {
		keys = append(keys, fmt.Appendf(nil, "example.com/m%d@v1.0.0", 1+i*701))
		ids, ns, levels = append(ids, int64(1+i*701)), append(ns, int64(1+i*701)), append(levels, 0)
	}
	reads := []struct {
		name, sql string
		args      []any
		rows      int
	}{
		{"lookup", lookupSQL, []any{keys}, len(keys)},
		{"read records", readRecordsSQL, []any{ids}, len(keys)},
		{"read tiles", readTilesSQL, []any{levels, ns}, len(keys)},
		// The releases of example.com/m1 (one), a seek per step.
		{"scan releases", scanReleasesSQL, []any{[]byte("example.com/m1@"), []byte("example.com/m1A"), 1000, len("example.com/m1@")}, 1},
	}
	// Prepared and run while the tables are small: the plans are cached.
	for i, r := range reads {
		if _, err := c.Prepare(ctx, fmt.Sprint("q", i), r.sql); err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		rows, err := c.Query(ctx, fmt.Sprint("q", i), r.args...)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		rows.Close()
	}
	fill(1001, 100000)
	for i, r := range reads {
		rows, err := c.Query(ctx, fmt.Sprint("q", i), r.args...)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		n := 0
		for rows.Next() {
			n++
		}
		if rows.Close(); rows.Err() != nil || n != r.rows {
			t.Fatalf("%s: %d rows, %v; want %d", r.name, n, rows.Err(), r.rows)
		}
		plan := explain(t, c, fmt.Sprint("q", i), len(r.args))
		if strings.Contains(plan, "Seq Scan on sumd_") || !strings.Contains(plan, "Index Scan") {
			t.Errorf("%s is planned with a scan of the table:\n%s", r.name, plan)
		}
	}
}

// explain returns the cached plan of the prepared statement name, which
// has n parameters (their values do not matter to a generic plan).
func explain(t *testing.T, c *pgx.Conn, name string, n int) string {
	t.Helper()
	rows, err := c.Query(context.Background(), "EXPLAIN EXECUTE "+name+"("+strings.Repeat("NULL, ", n-1)+"NULL)")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	if rows.Close(); rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	return b.String()
}
