package mirror

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestAfterFirstStoreSavesPartialBeforeKill: a partial mirror's first
// round, killed mid-staging after steps were committed, had never saved its
// -modules (sumd mirror saved its options after Sync returned), so the
// next run, given only -mirror, followed it as a full mirror that said it
// was full and lacked the records the killed run skipped. AfterFirstStore
// runs once, right after a round's first commit: what it saves survives
// the kill.
func TestAfterFirstStoreSavesPartialBeforeKill(t *testing.T) {
	o := newOrigin(t, 5000)
	m, _ := newMirror(t, o)
	mods := []string{"golang.org/x/*"}
	sel, err := ParseSelection(mods)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	f := newFollower(t, o, m, func(opts *Options) {
		opts.Select = sel
		opts.AfterFirstStore = func(ctx context.Context) error {
			calls++
			if st, err := m.Staged(ctx); err != nil || st == nil {
				t.Errorf("AfterFirstStore ran before the round's first commit (staging %v, %v)", st, err)
			}
			return WriteConfig(ctx, m, &Config{URL: o.srv.URL, VerifierKeys: m.VerifierKeys(), Modules: mods})
		}
	})
	f.SetProgress(func(done, total int64) {
		if done > 1500 {
			cancel() // the kill, mid-staging
		}
	})
	if _, err := f.Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("the killed round returned %v, want it interrupted", err)
	}
	if st, err := m.Staged(context.Background()); err != nil || st == nil {
		t.Fatalf("the killed round left no staging (%v): the test proves nothing", err)
	}
	if calls != 1 {
		t.Errorf("AfterFirstStore ran %d times in a round of several commits, want once", calls)
	}
	c, err := ReadConfig(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	if c == nil || !slices.Equal(c.Modules, mods) {
		t.Fatalf("after the killed round the mirror remembers %+v, want modules %q", c, mods)
	}
	// The next run, as sumd mirror -mirror makes it: from the database.
	sel2, err := ParseSelection(c.Modules)
	if err != nil {
		t.Fatal(err)
	}
	f2 := newFollower(t, o, m, func(opts *Options) { opts.Select = sel2 })
	if _, err := f2.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f2.Status().Partial {
		t.Error("the resumed partial mirror says it is full")
	}
}

// TestAfterFirstStoreNotCalledWithoutStore: an AfterFirstStore that fails
// fails the round, which keeps what it stored, and a round that stores
// nothing (the mirror is current) does not run it.
func TestAfterFirstStoreNotCalledWithoutStore(t *testing.T) {
	o := newOrigin(t, 300)
	m, _ := newMirror(t, o)
	hookErr := errors.New("no space for the configuration")
	f := newFollower(t, o, m, func(opts *Options) {
		opts.AfterFirstStore = func(context.Context) error {
			if n := m.Published().Tree.N; n != 300 {
				t.Errorf("AfterFirstStore ran with the mirror holding tree %d, want the round's commit of 300 stored", n)
			}
			return hookErr
		}
	})
	if _, err := f.Sync(context.Background()); !errors.Is(err, hookErr) {
		t.Fatalf("Sync returned %v, want the AfterFirstStore error", err)
	}
	f = newFollower(t, o, m, nil)
	if _, err := f.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := 0
	f = newFollower(t, o, m, func(opts *Options) {
		opts.AfterFirstStore = func(context.Context) error { calls++; return nil }
	})
	if _, err := f.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Errorf("a round that stored nothing ran AfterFirstStore %d times", calls)
	}
}

// TestAfterFirstStoreNotRunByRefusedStore: a round whose store is refused
// stores nothing, yet ran the hook, which ran before the commit, when
// nothing from the origin was verified: sumd mirror saved a wrong -origin
// (a partial mirror's looked-up records, refused by the held tree; a
// tampered hash or data tile, refused by the signed head), and every later
// run and sumd serve -mirror then followed it. It runs only after a store.
func TestAfterFirstStoreNotRunByRefusedStore(t *testing.T) {
	tamperedLookups := func(t *testing.T) (*origin, *itlog.Log, *Selection) {
		o := newOrigin(t, 300)
		m, _ := newMirror(t, o)
		sel, err := ParseSelection([]string{"golang.org/x/*"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newFollower(t, o, m, func(opts *Options) { opts.Select = sel }).Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		gs := filepath.Join(t.TempDir(), "go.sum")
		if err := os.WriteFile(gs, []byte(testRecord(5, 1).Text()), 0o644); err != nil {
			t.Fatal(err)
		}
		if sel, err = ParseSelection([]string{"golang.org/x/*", gs}); err != nil {
			t.Fatal(err)
		}
		// The (wrong) origin answers the lookup with another hash.
		o.serve(o.tamper(func(p string) bool { return strings.HasPrefix(p, "/lookup/") }, func(b []byte) []byte {
			return bytes.Replace(b, []byte(" h1:"), []byte(" h1:x"), 1)
		}))
		return o, m, sel
	}
	tamperedTiles := func(n int, kind string) func(*testing.T) (*origin, *itlog.Log, *Selection) {
		return func(t *testing.T) (*origin, *itlog.Log, *Selection) {
			o := newOrigin(t, n)
			m, _ := newMirror(t, o)
			o.serve(o.tamper(isTile(kind), func(b []byte) []byte {
				if kind == "data" {
					return bytes.Replace(b, []byte("v1.1.0 h1:"), []byte("v1.2.0 h1:"), 1)
				}
				b[len(b)-1] ^= 1
				return b
			}))
			return o, m, nil
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(*testing.T) (*origin, *itlog.Log, *Selection)
	}{
		{"looked-up records of a partial mirror", tamperedLookups},
		{"data tile of the last step", tamperedTiles(300, "data")},
		{"hash tile of a staging", tamperedTiles(5000, "0")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, m, sel := tc.setup(t)
			before := m.Published().Tree
			calls := 0
			f := newFollower(t, o, m, func(opts *Options) {
				opts.Select = sel
				opts.AfterFirstStore = func(context.Context) error { calls++; return nil }
			})
			res, err := f.Sync(context.Background())
			if err == nil || !IsSecurity(err) {
				t.Fatalf("Sync returned %v, want the store refused", err)
			}
			if st, _ := m.Staged(context.Background()); m.Published().Tree != before || st != nil || res.Commits != 0 {
				t.Fatalf("the refused round stored something (tree %d, staging %v, %d commits): the test proves nothing", m.Published().Tree.N, st, res.Commits)
			}
			if calls != 0 {
				t.Errorf("a round whose store was refused, storing nothing, ran the hook %d times (sumd mirror saves its options there)", calls)
			}
		})
	}
}
