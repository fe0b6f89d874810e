package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sumd-project/sumd/internal/pgtest"
)

// TestOpenUpToDateTakesNoSchemaLock: opening a database whose tables are
// up to date takes no lock on sumd_schema's row, which every process's
// durability barrier takes too (FOR KEY SHARE): with another session
// holding it FOR UPDATE (as a migration does) the open completes, where it
// waited for it, and failed at its timeout.
func TestOpenUpToDateTakesNoSchemaLock(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	openLog(t, url, testKey(t), Options{}) // creates the tables
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT version FROM sumd_schema WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, url, Options{Logger: quiet, Timeout: time.Second})
	if err != nil {
		t.Fatalf("Open of an up-to-date database while another session holds the schema row: %v", err)
	}
	s.Close()
}

// TestRunningMeetsNewerSchema: a process running while a newer sumd
// migrates the tables (a rolling upgrade) stops reading and writing them:
// its head's read and its writes fail with ErrNewerSchema, storing
// nothing, where it went on writing tables it does not know.
func TestRunningMeetsNewerSchema(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	l, s := openLog(t, url, testKey(t), Options{})
	if _, err := l.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ctl.Exec(ctx, `UPDATE sumd_schema SET version = $1`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx); !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Load after a newer sumd migrated the tables = %v, want ErrNewerSchema", err)
	}
	if _, err := l.Add(ctx, record(1)); !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Add after a newer sumd migrated the tables = %v, want ErrNewerSchema", err)
	}
	var n int64
	if err := s.ctl.QueryRow(ctx, `SELECT count(*) FROM sumd_records`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d records stored (%v), want 1", n, err)
	}
}

// TestBarrierNeedsSchemaRow: a durability barrier that finds no
// sumd_schema row to lock writes no WAL before its commit record, so its
// COMMIT does not wait for the synchronous standbys and confirms
// nothing: a head another process committed is then not adopted, where
// it was taken as durable.
func TestBarrierNeedsSchemaRow(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	k := testKey(t)
	a, sa := openLog(t, url, k, Options{})
	_, sb := openLog(t, url, k, Options{})
	if _, err := sa.ctl.Exec(ctx, `DELETE FROM sumd_schema`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Load(ctx); err == nil || !strings.Contains(err.Error(), "sumd_schema") {
		t.Fatalf("Load of another's head with no sumd_schema row = %v, want it refused, naming sumd_schema", err)
	}
}

// TestSchemaVersionLost: sumd's tables without their schema version
// (sumd_schema's row deleted, or its table dropped, by hand) are refused
// at once, by Open and by a creation's migration, with an error naming
// sumd_schema and how to restore it, where Open took them for no tables
// and a creation retried recreating them and failed five times on
// "relation sumd_log already exists". Neither recreates sumd_schema: the
// tables may hold a log.
func TestSchemaVersionLost(t *testing.T) {
	ctx := context.Background()
	for _, lose := range []string{`DELETE FROM sumd_schema`, `DROP TABLE sumd_schema`} {
		url := pgtest.Shared(t).NewDatabase(t)
		s, err := Open(ctx, url, Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.migrate(ctx, true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ctl.Exec(ctx, lose); err != nil {
			t.Fatal(err)
		}
		err = s.migrate(ctx, true)
		if !errors.Is(err, ErrSchemaVersionLost) || !strings.Contains(err.Error(), "INSERT INTO sumd_schema") || strings.Contains(err.Error(), "already exists") {
			t.Errorf("after %s, a creation's migration = %v, want it refused, saying how to restore sumd_schema", lose, err)
		}
		s.Close()
		if s, err := Open(ctx, url, Options{Logger: quiet}); !errors.Is(err, ErrSchemaVersionLost) || !strings.Contains(err.Error(), "INSERT INTO sumd_schema") {
			t.Errorf("after %s, Open = %v, want it refused, saying how to restore sumd_schema", lose, err)
			if err == nil {
				s.Close()
			}
		}
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		var rows int
		if lose == `DROP TABLE sumd_schema` {
			err = c.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'sumd_schema'`).Scan(&rows)
		} else {
			err = c.QueryRow(ctx, `SELECT count(*) FROM sumd_schema`).Scan(&rows)
		}
		c.Close(ctx)
		if err != nil || rows != 0 {
			t.Errorf("after %s and the refusals: %d rows (%v), want sumd_schema left as it was", lose, rows, err)
		}
	}
}
