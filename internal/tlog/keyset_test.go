package tlog

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// verifiesWith reports whether head verifies with the verifier key vkey
// alone, as a go command configured with only that key checks it.
func verifiesWith(t *testing.T, head []byte, vkey string) bool {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = note.Open(head, note.VerifierList(v))
	var unverified *note.UnverifiedNoteError
	if err != nil && !errors.As(err, &unverified) {
		t.Fatalf("note.Open: %v", err)
	}
	return err == nil
}

// TestKeyRotation walks a rotation: while both keys sign, clients knowing
// either key verify every head; the tree never changes for it; Open
// insists on exactly the log's keys; after the old key is removed, only
// the new one verifies.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sumd.db")
	oldKey, newKey := testKey(t, "sum.example.com"), testKey(t, "sum.example.com")
	l := openTest(t, path, oldKey, VerifyTail)
	if _, err := l.Add(ctx, record(0, 0), record(1, 0)); err != nil {
		t.Fatal(err)
	}
	before, _ := l.Tree(ctx)

	if err := l.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	head, _ := l.Signed(ctx)
	if after, _ := l.Tree(ctx); after != before {
		t.Fatalf("rotation changed the tree: %v then %v", before, after)
	}
	if !verifiesWith(t, head, oldKey.VerifierKey()) || !verifiesWith(t, head, newKey.VerifierKey()) {
		t.Fatalf("re-signed head does not verify with both keys:\n%s", head)
	}
	if _, err := l.Add(ctx, record(2, 0)); err != nil {
		t.Fatal(err)
	}
	head, _ = l.Signed(ctx)
	if !verifiesWith(t, head, oldKey.VerifierKey()) || !verifiesWith(t, head, newKey.VerifierKey()) {
		t.Fatalf("head of a new record during the rotation does not verify with both keys:\n%s", head)
	}
	l.Close()

	// Open needs every key the log signs with, in any order.
	if _, err := Open(path, Options{Keys: []*Key{oldKey}, Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "whose private key was not given") {
		t.Fatalf("Open with only the old key during a rotation = %v", err)
	}
	l, err := Open(path, Options{Keys: []*Key{newKey, oldKey}, Verify: VerifyFull, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.VerifierKeys(); len(got) != 2 || got[0] != oldKey.VerifierKey() {
		t.Fatalf("VerifierKeys = %v, want the old key then the new", got)
	}

	if err := l.RemoveKey(ctx, oldKey.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	head, _ = l.Signed(ctx)
	if verifiesWith(t, head, oldKey.VerifierKey()) || !verifiesWith(t, head, newKey.VerifierKey()) {
		t.Fatalf("after retiring the old key, head should verify with the new key only:\n%s", head)
	}
	if l.VerifierKey() != newKey.VerifierKey() {
		t.Errorf("VerifierKey = %s, want the new key", l.VerifierKey())
	}
	l.Close()
	if _, err := Open(path, Options{Keys: []*Key{oldKey, newKey}, Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), oldKey.VerifierKey()+" is not one of the log's keys") {
		t.Fatalf("Open with a retired key = %v", err)
	}
	l = openTest(t, path, newKey, VerifyFull)
	defer l.Close()
	if tree, _ := l.Tree(ctx); tree.N != 3 {
		t.Fatalf("tree after rotation has %d records, want 3", tree.N)
	}
}

func TestKeyRotationRefuses(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	l := openTest(t, filepath.Join(t.TempDir(), "sumd.db"), k, VerifyTail)
	defer l.Close()
	head, _ := l.Signed(ctx)
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"other name", l.AddKey(ctx, testKey(t, "other.example.com")), `not this log "sum.example.com"`},
		{"same key", l.AddKey(ctx, k), "already signs with"},
		{"only key", l.RemoveKey(ctx, k.VerifierKey()), "only key"},
		{"unknown key", l.RemoveKey(ctx, testKey(t, "sum.example.com").VerifierKey()), "does not sign with"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, tc.err, tc.want)
		}
	}
	if after, _ := l.Signed(ctx); string(after) != string(head) {
		t.Errorf("a refused rotation changed the head")
	}
}

// TestConcurrentKeyRotations starts several rotations while the sequencer
// is busy: each must apply to the key set current when it runs, so none is
// lost, and the head ends signed by every key.
func TestConcurrentKeyRotations(t *testing.T) {
	ctx := context.Background()
	s, k := NewMemStore(), testKey(t, "sum.example.com")
	l := openMem(t, s, k)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.SetHooks(MemHooks{BeforeCommit: func(*Batch) error {
		once.Do(func() { close(entered); <-release })
		return nil
	}})
	go l.Add(ctx, record(0, 0))
	<-entered // the sequencer is busy: every rotation below waits in the queue
	keys := []*Key{k}
	for range 4 {
		keys = append(keys, testKey(t, "sum.example.com"))
	}
	var wg sync.WaitGroup
	for i, nk := range keys[1:] {
		wg.Go(func() {
			if err := l.AddKey(ctx, nk); err != nil {
				t.Error(err)
			}
		})
		for len(l.queue) != i+1 {
			runtime.Gosched()
		}
	}
	close(release)
	wg.Wait()
	if got := l.VerifierKeys(); len(got) != len(keys) {
		t.Fatalf("the log signs with %d keys after %d rotations, want %d: %v", len(got), len(keys)-1, len(keys), got)
	}
	head, _ := l.Signed(ctx)
	for _, k := range keys {
		if !verifiesWith(t, head, k.VerifierKey()) {
			t.Fatalf("head not signed by %s", k.VerifierKey())
		}
	}
	l.Close()
	l, err := OpenStore(s, Options{Keys: keys, Verify: VerifyFull, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("reopen with all keys: %v", err)
	}
	l.Close()
}

// TestRetireLostKey loses the private half of the key rotated in: Open
// with Options.LostKey accepts the remaining keys, signs nothing until
// RemoveKey retires the lost one, and then the head verifies with the
// remaining key alone, as clients pinned to it expect. LostKey never
// excuses another missing key, nor opens a log of one lost key for
// signing.
func TestRetireLostKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sumd.db")
	oldKey, lost := testKey(t, "sum.example.com"), testKey(t, "sum.example.com")
	l := openTest(t, path, oldKey, VerifyTail)
	if _, err := l.Add(ctx, record(0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := l.AddKey(ctx, lost); err != nil {
		t.Fatal(err)
	}
	before, _ := l.Signed(ctx)
	l.Close()

	// Another missing key is still refused.
	if _, err := Open(path, Options{Keys: []*Key{oldKey}, LostKey: testKey(t, "sum.example.com").VerifierKey(), Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "whose private key was not given") {
		t.Fatalf("Open lacking the new key, LostKey another key = %v", err)
	}
	if _, err := Open(path, Options{Keys: []*Key{lost}, LostKey: lost.VerifierKey(), Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "whose private key was not given") {
		t.Fatalf("Open lacking the old key, LostKey the new = %v", err)
	}

	l, err := Open(path, Options{Keys: []*Key{oldKey}, LostKey: lost.VerifierKey(), Verify: VerifyFull, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open without the lost key: %v", err)
	}
	if _, err := l.Add(ctx, record(1, 0)); err == nil || !strings.Contains(err.Error(), "private key is lost") {
		t.Errorf("Add before retiring the lost key = %v, want a refusal", err)
	}
	if head, _ := l.Signed(ctx); string(head) != string(before) {
		t.Fatalf("a refused Add changed the head")
	}
	if err := l.RemoveKey(ctx, lost.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	head, _ := l.Signed(ctx)
	if !verifiesWith(t, head, oldKey.VerifierKey()) || verifiesWith(t, head, lost.VerifierKey()) {
		t.Fatalf("after retiring the lost key, head should verify with the old key only:\n%s", head)
	}
	if _, err := l.Add(ctx, record(1, 0)); err != nil {
		t.Fatalf("Add after retiring the lost key: %v", err)
	}
	l.Close()

	// The change is stored: the remaining key alone opens the log.
	l = openTest(t, path, oldKey, VerifyFull)
	if tree, _ := l.Tree(ctx); tree.N != 2 {
		t.Fatalf("tree after the retirement has %d records, want 2", tree.N)
	}
	// The last key is never retired, lost or not.
	if err := l.RemoveKey(ctx, oldKey.VerifierKey()); err == nil || !strings.Contains(err.Error(), "only key") {
		t.Fatalf("RemoveKey of the only key = %v", err)
	}
	l.Close()
	l, err = Open(path, Options{Keys: []*Key{lost}, LostKey: oldKey.VerifierKey(), Logger: quietLogger()})
	if err == nil {
		l.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "is not one of the log's keys") {
		t.Fatalf("Open with a retired key, LostKey the only key = %v", err)
	}
}

// TestRetiredKeyNotAddedBack: a key a rotation retired (perhaps because it
// leaked) is recorded in the log's store, and AddKey refuses it after a
// restart, where the key set alone no longer names it.
func TestRetiredKeyNotAddedBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sumd.db")
	oldKey, newKey := testKey(t, "sum.example.com"), testKey(t, "sum.example.com")
	l := openTest(t, path, oldKey, VerifyTail)
	if err := l.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	if err := l.RemoveKey(ctx, oldKey.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	l.Close()

	l = openTest(t, path, newKey, VerifyFull)
	defer l.Close()
	head, _ := l.Signed(ctx)
	err := l.AddKey(ctx, oldKey)
	if err == nil || !strings.Contains(err.Error(), oldKey.VerifierKey()+" was retired") {
		t.Fatalf("AddKey of the retired key = %v, want a refusal saying it was retired", err)
	}
	if after, _ := l.Signed(ctx); string(after) != string(head) {
		t.Errorf("a refused AddKey changed the head")
	}
	if got := l.VerifierKeys(); len(got) != 1 || got[0] != newKey.VerifierKey() {
		t.Errorf("VerifierKeys after the refusal = %v", got)
	}
	// A fresh key is still added.
	if err := l.AddKey(ctx, testKey(t, "sum.example.com")); err != nil {
		t.Errorf("AddKey of a fresh key after a retirement: %v", err)
	}
}
