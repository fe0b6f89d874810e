package tlog

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"
)

// TestCommitFailure injects a failure after a batch is staged and signed
// but before it commits ("failed and not persisted"): the callers get the
// error, nothing of the batch is visible, and the next batch is appended
// after the last good head and consistent with it.
func TestCommitFailure(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sumd.db")
	k := testKey(t, "sum.example.com")
	l := openTest(t, path, k, VerifyTail)
	if _, err := l.Add(ctx, record(0, 0), record(1, 0)); err != nil {
		t.Fatal(err)
	}
	good, _ := l.Tree(ctx)
	headBefore, _ := l.Signed(ctx)

	var fail atomic.Bool
	fail.Store(true)
	injected := errors.New("injected disk failure")
	l.store.(*BoltStore).beforeCommit = func(*Batch) error {
		if fail.Load() {
			return injected
		}
		return nil
	}
	if _, err := l.Add(ctx, record(2, 0)); !errors.Is(err, injected) {
		t.Fatalf("Add during failure = %v, want the injected error", err)
	}
	if head, _ := l.Signed(ctx); string(head) != string(headBefore) {
		t.Fatalf("signed head changed by a failed commit")
	}
	if _, err := l.Lookup(ctx, module.Version{Path: record(2, 0).Path, Version: "v1.0.0"}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("record of a failed commit is visible: %v", err)
	}

	// Recovery: a different record now takes id 2, and the tree extends the
	// last good head, in memory and after reopening.
	fail.Store(false)
	ids, err := l.Add(ctx, record(3, 0))
	if err != nil || ids[0] != 2 {
		t.Fatalf("Add after failure = %v, %v; want id 2", ids, err)
	}
	l.Close()
	l = openTest(t, path, k, VerifyFull)
	defer l.Close()
	tree, _ := l.Tree(ctx)
	p, err := tlog.ProveTree(tree.N, good.N, l.HashReader())
	if err == nil {
		err = tlog.CheckTree(p, tree.N, tree.Hash, good.N, good.Hash)
	}
	if tree.N != 3 || err != nil {
		t.Fatalf("after recovery: tree %d, consistency with good head: %v", tree.N, err)
	}
}

// TestCanceledButPersisted covers "failed but persisted": the caller gave
// up (its context ended) while its records were committed. Adding them
// again returns the ids they got, and nothing is recorded twice.
func TestCanceledButPersisted(t *testing.T) {
	l := openTest(t, filepath.Join(t.TempDir(), "sumd.db"), testKey(t, "sum.example.com"), VerifyTail)
	defer l.Close()
	release := make(chan struct{})
	l.store.(*BoltStore).beforeCommit = func(*Batch) error { <-release; return nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := l.Add(ctx, record(0, 0))
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Add with canceled context = %v, want context.Canceled", err)
	}
	close(release) // the commit goes through after the caller left
	ids, err := l.Add(context.Background(), record(0, 0))
	if err != nil || ids[0] != 0 {
		t.Fatalf("retry after cancel = %v, %v; want the original id 0", ids, err)
	}
	if tree, _ := l.Tree(context.Background()); tree.N != 1 {
		t.Fatalf("tree has %d records after a retried add, want 1", tree.N)
	}
}
