package tlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

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
	_, err := b.Add(ctx, record(0, 0))
	if !errors.Is(err, ErrFatal) || !strings.Contains(err.Error(), "whose private key was not given") {
		t.Fatalf("b.Add after a's rotation = %v, want ErrFatal: key not given", err)
	}
	// Not a storage failure, and restarting with the same keys would stop
	// again: the error says so and its hint names every key to pass.
	var hinted interface{ Hint() string }
	if strings.Contains(err.Error(), "storage failure") || !errors.As(err, &hinted) ||
		!strings.Contains(hinted.Hint(), a.VerifierKeys()[1]) || !strings.Contains(hinted.Hint(), "-key OLD,NEW") {
		t.Errorf("b.Add after a's rotation = %v (hint %v), want a key error whose hint names both keys", err, hinted)
	}
	if _, err := a.Add(ctx, record(0, 0)); err != nil {
		t.Fatal(err)
	}
}

// tileFaultStore fails every ReadTiles while fail is set, as a lost
// connection to a shared database would.
type tileFaultStore struct {
	*MemStore
	fail atomic.Bool
}

func (s *tileFaultStore) ReadTiles(ctx context.Context, tiles []TileID) ([][]byte, error) {
	if s.fail.Load() {
		return nil, errors.New("injected read failure")
	}
	return s.MemStore.ReadTiles(ctx, tiles)
}

// TestSecondWriterUnreadable: a catch-up that cannot read the tiles to
// prove another writer's head extends the published one fails, but does
// not stop the log (that is for a proven fork, TestSecondWriterFork); the
// next catch-up adopts the head.
func TestSecondWriterUnreadable(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	s := &tileFaultStore{MemStore: NewMemStore()}
	a, err := OpenStore(s, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := openMem(t, s.MemStore, k)
	defer b.Close()
	if _, err := a.Add(ctx, record(0, 0), record(1, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, record(2, 0)); err != nil {
		t.Fatal(err)
	}
	s.fail.Store(true)
	if err := a.Refresh(ctx); err == nil || errors.Is(err, ErrFatal) || !strings.Contains(err.Error(), "injected read failure") {
		t.Fatalf("Refresh with unreadable tiles = %v, want the read failure, not ErrFatal", err)
	}
	s.fail.Store(false)
	if err := a.Refresh(ctx); err != nil {
		t.Fatalf("Refresh after the failure = %v", err)
	}
	if tree, _ := a.Tree(ctx); tree.N != 3 {
		t.Fatalf("published tree %d after the catch-up, want b's 3", tree.N)
	}
	if _, err := a.Add(ctx, record(3, 0)); err != nil {
		t.Fatalf("Add after a failed catch-up = %v", err)
	}
}
