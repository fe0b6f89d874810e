package mirror

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestBeforeStoreSavesPartialBeforeKill: a partial mirror's first round,
// killed mid-staging after steps were committed, had never saved its
// -modules (sumd mirror saved its options after Sync returned), so the
// next run, given only -mirror, followed it as a full mirror that said it
// was full and lacked the records the killed run skipped. BeforeStore runs
// once, before a round's first commit: what it saves survives the kill.
func TestBeforeStoreSavesPartialBeforeKill(t *testing.T) {
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
		opts.BeforeStore = func(ctx context.Context) error {
			calls++
			if m.Published().Tree.N != 0 {
				t.Error("BeforeStore ran after the mirror had stored a head")
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
		t.Errorf("BeforeStore ran %d times in a round of several commits, want once", calls)
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

// TestBeforeStoreNotCalledWithoutStore: a round that stores nothing (the
// mirror is current) does not run BeforeStore, and a BeforeStore that
// fails stops the round before it stores anything.
func TestBeforeStoreNotCalledWithoutStore(t *testing.T) {
	o := newOrigin(t, 300)
	m, _ := newMirror(t, o)
	hookErr := errors.New("no space for the configuration")
	f := newFollower(t, o, m, func(opts *Options) {
		opts.BeforeStore = func(context.Context) error { return hookErr }
	})
	if _, err := f.Sync(context.Background()); !errors.Is(err, hookErr) {
		t.Fatalf("Sync returned %v, want the BeforeStore error", err)
	}
	if n := m.Published().Tree.N; n != 0 {
		t.Fatalf("the mirror holds tree %d after BeforeStore failed, want 0", n)
	}
	f = newFollower(t, o, m, nil)
	if _, err := f.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := 0
	f = newFollower(t, o, m, func(opts *Options) {
		opts.BeforeStore = func(context.Context) error { calls++; return nil }
	})
	if _, err := f.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Errorf("a round that stored nothing ran BeforeStore %d times", calls)
	}
}
