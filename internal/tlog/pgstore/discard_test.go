package pgstore

import (
	"context"
	"errors"
	"testing"

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
