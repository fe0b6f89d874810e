package pgstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestDiscardNew: DiscardNew deletes a log still as created, and keeps
// one whose head moved, or that holds anything, or whose head is not the
// one given; a log created again afterwards opens.
func TestDiscardNew(t *testing.T) {
	ctx := context.Background()
	pg, k := pgtest.Shared(t), testKey(t)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, l *tlog.Log, s *Store)
		head   func(created []byte) []byte
		kept   bool
	}{
		{name: "as created"},
		{name: "a record added", kept: true, change: func(t *testing.T, l *tlog.Log, _ *Store) {
			if _, err := l.Add(ctx, record(1)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "an auxiliary value", kept: true, change: func(t *testing.T, _ *tlog.Log, s *Store) {
			if err := s.SetAux(ctx, "status", []byte("x")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "another head", kept: true, head: func(created []byte) []byte { return append(created[:len(created):len(created)], 'x') }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := pg.NewDatabase(t)
			l, s := openLog(t, url, k, Options{})
			head := l.Published().Signed
			if tc.change != nil {
				tc.change(t, l, s)
			}
			if tc.head != nil {
				head = tc.head(head)
			}
			d := openDB(t, url)
			err := d.DiscardNew(ctx, head)
			_, lerr := d.Load(ctx)
			switch {
			case tc.kept && !errors.Is(err, ErrNotDiscarded):
				t.Fatalf("DiscardNew = %v, want ErrNotDiscarded", err)
			case tc.kept && lerr != nil:
				t.Fatalf("Load after a refused DiscardNew: %v, want the log kept", lerr)
			case !tc.kept && err != nil:
				t.Fatalf("DiscardNew = %v", err)
			case !tc.kept && !errors.Is(lerr, tlog.ErrNoLog):
				t.Fatalf("Load after DiscardNew: %v, want ErrNoLog", lerr)
			}
			if tc.kept {
				return
			}
			if err := d.DiscardNew(ctx, head); err != nil {
				t.Errorf("DiscardNew of a log gone already = %v, want nil", err)
			}
			l.Close()
			if n := reverify(t, url, k); n != 0 {
				t.Errorf("the log created again has %d records, want 0", n)
			}
		})
	}
}

// TestDiscardNewCommitHasNoDeadline: DiscardNew's COMMIT waits for as long
// as it takes, as Commit's does (TestCommitHasNoStatementTimeout):
// cancelling its wait for a synchronous standby would leave the deletion
// on the primary alone, answered as done, and a failover would bring the
// new log back. Here a deferred trigger that runs at COMMIT for longer
// than Options.Timeout.
func TestDiscardNewCommitHasNoDeadline(t *testing.T) {
	ctx := context.Background()
	pg, k := pgtest.Shared(t), testKey(t)
	url := pg.NewDatabase(t)
	db := dbName(url)
	l, _ := openLog(t, url, k, Options{})
	head := l.Published().Signed
	for _, sql := range []string{
		`CREATE FUNCTION sumd_test_slow() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END'`,
		`CREATE CONSTRAINT TRIGGER slow AFTER DELETE ON sumd_log DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sumd_test_slow()`,
	} {
		if err := pg.Exec(db, sql); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Open(ctx, url, Options{Logger: quiet, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.DiscardNew(ctx, head); err != nil {
		t.Fatalf("DiscardNew whose COMMIT outlasts Options.Timeout = %v, want nil", err)
	}
	if _, err := d.Load(ctx); !errors.Is(err, tlog.ErrNoLog) {
		t.Fatalf("Load after DiscardNew: %v, want ErrNoLog", err)
	}
}
