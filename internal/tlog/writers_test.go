package tlog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
)

// TestSecondWriter runs two logs on one store, as two sumd processes on one
// database: each adopts the other's head when its commit loses the
// compare-and-swap, records a module version once whichever writer saw it
// first, and reports a conflict with the other's record.
func TestSecondWriter(t *testing.T) {
	ctx := context.Background()
	s, k := NewMemStore(), testKey(t, "sum.example.com")
	a, b := openMem(t, s, k), openMem(t, s, k)
	defer a.Close()
	defer b.Close()
	if ids, err := a.Add(ctx, record(0, 0), record(1, 0)); err != nil || fmt.Sprint(ids) != "[0 1]" {
		t.Fatalf("a.Add = %v, %v", ids, err)
	}
	// b's head is stale: its commit loses, it adopts a's head, re-stages.
	if ids, err := b.Add(ctx, record(2, 0)); err != nil || ids[0] != 2 {
		t.Fatalf("b.Add on a stale head = %v, %v; want id 2", ids, err)
	}
	// a finds b's record in the store beyond its head: adopts, then dedups.
	if ids, err := a.Add(ctx, record(2, 0)); err != nil || ids[0] != 2 {
		t.Fatalf("a.Add of b's record = %v, %v; want b's id 2", ids, err)
	}
	if ids, err := b.Add(ctx, record(3, 0)); err != nil || ids[0] != 3 {
		t.Fatalf("b.Add = %v, %v", ids, err)
	}
	evil := record(3, 0)
	evil.Hash = fakeHash("evil")
	var conflict *ConflictError
	if _, err := a.Add(ctx, evil); !errors.As(err, &conflict) || conflict.ID != 3 {
		t.Fatalf("a.Add of other hashes for b's record = %v, want a conflict with record 3", err)
	}
	// a reader of a that never writes sees b's records after Refresh.
	if ids, err := b.Add(ctx, record(4, 0)); err != nil || ids[0] != 4 {
		t.Fatalf("b.Add = %v, %v", ids, err)
	}
	r := record(4, 0)
	if _, err := a.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); err == nil {
		t.Fatal("a sees b's record before refreshing")
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if id, err := a.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); err != nil || id != 4 {
		t.Fatalf("a.Lookup after Refresh = %d, %v", id, err)
	}
	if s.Commits() != 4 {
		t.Errorf("%d commits for 5 records in 4 batches", s.Commits())
	}
}

// TestSecondWriterRace adds overlapping records through two logs on one
// store from several callers each: every module version gets one id, both
// logs agree, and the store verifies.
func TestSecondWriterRace(t *testing.T) {
	ctx := context.Background()
	s, k := NewMemStore(), testKey(t, "sum.example.com")
	logs := []*Log{openMem(t, s, k), openMem(t, s, k)}
	var mu sync.Mutex
	ids := map[string]int64{}
	var wg sync.WaitGroup
	for w := range 8 {
		l := logs[w%2]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range 40 {
				r := record(rng.IntN(100), 0)
				got, err := l.Add(ctx, r)
				// Without a LockingStore a writer can lose the
				// compare-and-swap maxAttempts times in a row and
				// push back; callers retry then (an HTTP client gets
				// 503 and Retry-After), and so does this one.
				for tries := 0; errors.Is(err, ErrPushback) && tries < 100; tries++ {
					time.Sleep(time.Millisecond)
					got, err = l.Add(ctx, r)
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if id, ok := ids[r.Key()]; ok && id != got[0] {
					t.Errorf("%s got ids %d and %d", r.Key(), id, got[0])
				}
				ids[r.Key()] = got[0]
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, l := range logs {
		if err := l.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if tree, _ := l.Tree(ctx); tree.N != int64(len(ids)) {
			t.Fatalf("tree %d for %d distinct records", tree.N, len(ids))
		}
		l.Close()
	}
	l := openMem(t, s, k) // VerifyFull: one index entry per record
	l.Close()
}

// TestSecondWriterFork replaces the store's history with another one, as a
// misconfigured second writer (or a restored old backup) would: the log
// refuses to sign on top of it and stops.
func TestSecondWriterFork(t *testing.T) {
	ctx := context.Background()
	s, k := NewMemStore(), testKey(t, "sum.example.com")
	l := openMem(t, s, k)
	defer l.Close()
	if _, err := l.Add(ctx, record(0, 0), record(1, 0)); err != nil {
		t.Fatal(err)
	}
	other := NewMemStore()
	o := openMem(t, other, k)
	if _, err := o.Add(ctx, record(7, 0), record(8, 0), record(9, 0)); err != nil {
		t.Fatal(err)
	}
	o.Close()
	forked := other.Clone()
	s.mu.Lock()
	s.head, s.records, s.index, s.tiles = forked.head, forked.records, forked.index, forked.tiles
	s.mu.Unlock()

	_, err := l.Add(ctx, record(2, 0))
	if !errors.Is(err, ErrFatal) || !strings.Contains(err.Error(), "does not extend the published tree 2") {
		t.Fatalf("Add on a forked store = %v, want ErrFatal: does not extend", err)
	}
	if tree, _ := l.Tree(ctx); tree.N != 2 {
		t.Fatalf("published tree %d after refusing the fork, want 2", tree.N)
	}
}

// TestSecondWriterRotates: a writer that lacks a key another writer added
// cannot sign the log's heads any more, and stops.
func TestSecondWriterRotates(t *testing.T) {
	ctx := context.Background()
	s, k := NewMemStore(), testKey(t, "sum.example.com")
	a, b := openMem(t, s, k), openMem(t, s, k)
	defer a.Close()
	defer b.Close()
	if err := a.AddKey(ctx, testKey(t, "sum.example.com")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, record(0, 0)); !errors.Is(err, ErrFatal) || !strings.Contains(err.Error(), "whose private key was not given") {
		t.Fatalf("b.Add after a's rotation = %v, want ErrFatal: key not given", err)
	}
	if _, err := a.Add(ctx, record(0, 0)); err != nil {
		t.Fatal(err)
	}
}
