package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

func openMem(t testing.TB, s *MemStore, keys ...*Key) *Log {
	t.Helper()
	l, err := OpenStore(s, Options{Keys: keys, Create: true, Verify: VerifyFull, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// headTree parses the tree of a signed head without checking signatures.
// text shares head's memory, the log's published head: append to a copy.
func headTree(t testing.TB, head []byte) tlog.Tree {
	text, _, _ := bytes.Cut(head, []byte("\n\n"))
	tree, err := tlog.ParseTree(append(text[:len(text):len(text)], '\n'))
	if err != nil {
		t.Fatalf("malformed head %q: %v", head, err)
	}
	return tree
}

// A watcher reads Signed in a loop, as clients of /latest do, and keeps
// every distinct head it saw.
type watcher struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	trees []tlog.Tree
}

func watch(t testing.TB, l *Log) *watcher {
	w := &watcher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			head, err := l.Signed(context.Background())
			if err != nil {
				continue
			}
			tree := headTree(t, head)
			w.mu.Lock()
			if len(w.trees) == 0 || w.trees[len(w.trees)-1] != tree {
				w.trees = append(w.trees, tree)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watcher) seen() []tlog.Tree {
	close(w.stop)
	<-w.done
	return w.trees
}

// checkContains checks that l's tree extends every tree in seen.
func checkContains(t testing.TB, l *Log, seen []tlog.Tree) {
	t.Helper()
	tree, _ := l.Tree(context.Background())
	for _, old := range seen {
		if err := ProveExtends(tree, old, l.HashReader()); err != nil {
			t.Fatalf("tree %d does not extend observed tree %d: %v", tree.N, old.N, err)
		}
	}
}

// TestReadsWithinPublished holds a commit after the store applied it but
// before it returned — bbolt's window between showing a commit and its
// fsync returning — and checks that no read shows the batch until then,
// and every read does after. On a MemStore, and on a BoltStore, which is a
// RecordFinder and a LeafReader: Lookup and ReadRecords read through
// FindRecords and ReadRecordLeaves there.
func TestReadsWithinPublished(t *testing.T) {
	t.Run("mem", func(t *testing.T) {
		s := NewMemStore()
		l := openMem(t, s, testKey(t, "sum.example.com"))
		defer l.Close()
		testReadsWithinPublished(t, l, func(f func(*Batch) error) { s.SetHooks(MemHooks{AfterCommit: f}) })
	})
	t.Run("bolt", func(t *testing.T) {
		l := openTest(t, filepath.Join(t.TempDir(), "sumd.db"), testKey(t, "sum.example.com"), VerifyFull)
		defer l.Close()
		testReadsWithinPublished(t, l, func(f func(*Batch) error) { l.store.(*BoltStore).afterCommit = f })
	})
}

// testReadsWithinPublished runs TestReadsWithinPublished on a new log
// whose store runs the hook afterCommit sets once a commit is applied,
// before Commit returns.
func testReadsWithinPublished(t *testing.T, l *Log, afterCommit func(func(*Batch) error)) {
	ctx := context.Background()
	if opened := l.Published(); !opened.Time.IsZero() || opened.Tree.N != 0 {
		t.Fatalf("Open published tree %d at %v, want the empty tree with no time", opened.Tree.N, opened.Time)
	}
	var before []gosum.Record
	for i := range 300 {
		before = append(before, record(i, 0))
	}
	if _, err := l.Add(ctx, before...); err != nil {
		t.Fatal(err)
	}
	old := l.Published()
	applied, release := make(chan struct{}), make(chan struct{})
	afterCommit(func(*Batch) error { close(applied); <-release; return nil })
	added := make(chan error, 1)
	r := record(1000, 0)
	go func() { _, err := l.Add(ctx, r); added <- err }()
	<-applied

	if st, _ := l.store.Load(ctx); headTree(t, st.Head).N != 301 {
		t.Fatal("the store does not show the new head: the test proves nothing")
	}
	if head, _ := l.Signed(ctx); !bytes.Equal(head, old.Signed) {
		t.Errorf("Signed shows a head whose commit has not returned")
	}
	if tree, _ := l.Tree(ctx); tree != old.Tree {
		t.Errorf("Tree shows %v before its commit returned", tree)
	}
	if _, err := l.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lookup of the record in flight: %v, want fs.ErrNotExist", err)
	}
	if _, err := l.ReadRecords(ctx, 300, 1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadRecords of the record in flight: %v, want fs.ErrNotExist", err)
	}
	wider := tlog.Tile{H: 8, L: 0, N: 1, W: 45}
	if _, err := l.ReadTileData(ctx, wider); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadTileData(%s) in flight: %v, want fs.ErrNotExist", wider.Path(), err)
	}
	if _, err := l.HashReader().ReadHashes([]int64{tlog.StoredHashIndex(0, 300)}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadHashes of the leaf in flight: %v, want fs.ErrNotExist", err)
	}
	select {
	case <-old.Next():
		t.Error("the head's Next channel closed before a newer head was published")
	default:
	}

	close(release)
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	<-old.Next()
	if h := l.Published(); h.Tree.N != 301 || !h.Time.After(old.Time) {
		t.Fatalf("published head %d at %v, after %v", h.Tree.N, h.Time, old.Time)
	}
	if data, err := l.ReadTileData(ctx, wider); err != nil || len(data) != 45*32 {
		t.Fatalf("ReadTileData(%s) after the commit: %d bytes, %v", wider.Path(), len(data), err)
	}
	if id, err := l.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); id != 300 || err != nil {
		t.Fatalf("Lookup of the record after the commit = %d, %v; want 300", id, err)
	}
	if texts, err := l.ReadRecords(ctx, 299, 2); err != nil || string(texts[1]) != string(r.Text()) {
		t.Fatalf("ReadRecords of the record after the commit = %q, %v", texts, err)
	}
}

// faultRun adds records from several callers while hook fails one commit,
// with a reader watching the published head. It returns what was
// acknowledged and seen, and the error of the failed Add.
type faultRun struct {
	acked map[string]int64
	seen  []tlog.Tree
	err   error // the first failed Add's
}

func runFault(t *testing.T, l *Log, s *MemStore, hooks MemHooks) *faultRun {
	ctx := context.Background()
	w := watch(t, l)
	run := &faultRun{acked: map[string]int64{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for i := range 30 {
				if i == 10 && c == 0 {
					s.SetHooks(hooks)
				}
				recs := []gosum.Record{record(c*1000+i, 1), record(c*1000+i, 2)}
				ids, err := l.Add(ctx, recs...)
				mu.Lock()
				if err != nil && run.err == nil {
					run.err = err
				}
				for j, r := range recs {
					if err == nil {
						run.acked[r.Key()] = ids[j]
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	run.seen = w.seen()
	return run
}

// reopenCheck reopens a MemStore after a fault and checks every invariant:
// full verification, every acknowledged record, every head a reader saw.
func reopenCheck(t *testing.T, s *MemStore, k *Key, run *faultRun) *Log {
	t.Helper()
	s.SetHooks(MemHooks{})
	l := openMem(t, s, k)
	ctx := context.Background()
	for key, id := range run.acked {
		path, version, _ := strings.Cut(key, "@")
		if got, err := l.Lookup(ctx, module.Version{Path: path, Version: version}); err != nil || got != id {
			t.Fatalf("acknowledged record %s (id %d) lost: %d, %v", key, id, got, err)
		}
	}
	checkContains(t, l, run.seen)
	return l
}

// TestFatalPersisted injects "failed but persisted": the store keeps the
// batch and then reports an error. The log stops (its writers fail with
// ErrFatal, Done closes), and the reopened store holds the batch whole.
func TestFatalPersisted(t *testing.T) {
	s, k := NewMemStore(), testKey(t, "sum.example.com")
	l := openMem(t, s, k)
	injected := errors.New("injected: fsync failed after the write")
	var failed *Batch
	var once sync.Once
	run := runFault(t, l, s, MemHooks{AfterCommit: func(b *Batch) (err error) {
		once.Do(func() { failed, err = b, injected })
		return err
	}})
	checkFatal(t, l, run, injected)
	l.Close()
	l = reopenCheck(t, s, k, run)
	defer l.Close()
	if tree, _ := l.Tree(context.Background()); tree != failed.Tree {
		t.Fatalf("reopened tree %d, want the persisted batch's %d", tree.N, failed.Tree.N)
	}
}

// TestFatalNotPersisted injects an error of unknown outcome where nothing
// was in fact stored: the log stops all the same, and the reopened store
// holds none of the batch.
func TestFatalNotPersisted(t *testing.T) {
	s, k := NewMemStore(), testKey(t, "sum.example.com")
	l := openMem(t, s, k)
	injected := errors.New("injected: connection lost during commit")
	var failed *Batch
	var once sync.Once
	run := runFault(t, l, s, MemHooks{BeforeCommit: func(b *Batch) (err error) {
		once.Do(func() { failed, err = b, injected })
		return err
	}})
	checkFatal(t, l, run, injected)
	l.Close()
	l = reopenCheck(t, s, k, run)
	defer l.Close()
	if tree, _ := l.Tree(context.Background()); tree.N != failed.Tree.N-int64(len(failed.Records)) {
		t.Fatalf("reopened tree %d, want the tree before the failed batch of %d records (%d)", tree.N, len(failed.Records), failed.Tree.N)
	}
}

// checkFatal checks that a log stopped after the injected failure.
func checkFatal(t *testing.T, l *Log, run *faultRun, injected error) {
	t.Helper()
	ctx := context.Background()
	if !errors.Is(run.err, ErrFatal) || !errors.Is(run.err, injected) {
		t.Fatalf("Add during the failure = %v, want ErrFatal wrapping the injected error", run.err)
	}
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done not closed after a fatal failure")
	}
	if err := l.Err(); !errors.Is(err, ErrFatal) {
		t.Fatalf("Err = %v, want ErrFatal", err)
	}
	for name, err := range map[string]error{
		"Add":    func() error { _, err := l.Add(ctx, record(9999, 9)); return err }(),
		"SetAux": l.SetAux(ctx, "k", []byte("v")),
		"AddKey": l.AddKey(ctx, testKey(t, "sum.example.com")),
	} {
		if !errors.Is(err, ErrFatal) {
			t.Errorf("%s after the failure = %v, want ErrFatal", name, err)
		}
	}
	if n := len(run.acked); n == 0 || n == 4*30*2 {
		t.Errorf("%d records acknowledged: the failure hit too early or not at all", n)
	}
}

// TestNotPersistedCarriesOn: a failure the store reports as definitely
// not persisted fails the batch's callers, and the log carries on from the
// last good head.
func TestNotPersistedCarriesOn(t *testing.T) {
	ctx := context.Background()
	s, k := NewMemStore(), testKey(t, "sum.example.com")
	l := openMem(t, s, k)
	defer l.Close()
	if _, err := l.Add(ctx, record(0, 0)); err != nil {
		t.Fatal(err)
	}
	refused := fmt.Errorf("injected: unique violation: %w", ErrNotPersisted)
	s.SetHooks(MemHooks{BeforeCommit: func(*Batch) error { return refused }})
	if _, err := l.Add(ctx, record(1, 0)); !errors.Is(err, refused) || errors.Is(err, ErrFatal) {
		t.Fatalf("Add = %v, want the not-persisted error, not ErrFatal", err)
	}
	s.SetHooks(MemHooks{})
	if ids, err := l.Add(ctx, record(2, 0)); err != nil || ids[0] != 1 {
		t.Fatalf("Add after a not-persisted failure = %v, %v; want id 1", ids, err)
	}
	if l.Err() != nil {
		t.Fatalf("Err = %v, want nil", l.Err())
	}
}

// TestBoltFaults injects both faults around the bbolt commit: inside the
// transaction (rolled back: not persisted, the log carries on) and after
// it (persisted, then an error: the log stops), and reopens the file.
func TestBoltFaults(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sumd.db")
	k := testKey(t, "sum.example.com")
	l := openTest(t, path, k, VerifyTail)
	bs := l.store.(*BoltStore)
	if _, err := l.Add(ctx, record(0, 0)); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected")
	bs.beforeCommit = func(*Batch) error { return injected }
	if _, err := l.Add(ctx, record(1, 0)); !errors.Is(err, ErrNotPersisted) || errors.Is(err, ErrFatal) {
		t.Fatalf("Add with a failure inside the transaction = %v, want not persisted", err)
	}
	bs.beforeCommit = nil
	bs.afterCommit = func(*Batch) error { return injected }
	w := watch(t, l)
	if _, err := l.Add(ctx, record(2, 0)); !errors.Is(err, ErrFatal) {
		t.Fatalf("Add with a failure after the commit = %v, want ErrFatal", err)
	}
	seen := w.seen()
	if tree, _ := l.Tree(ctx); tree.N != 1 {
		t.Fatalf("published tree %d after a failed commit, want 1", tree.N)
	}
	l.Close()
	l = openTest(t, path, k, VerifyFull)
	defer l.Close()
	if tree, _ := l.Tree(ctx); tree.N != 2 {
		t.Fatalf("reopened tree %d, want 2 (the persisted batch)", tree.N)
	}
	checkContains(t, l, seen)
}

// TestMaxBatch checks that MaxBatch caps a commit: requests gather up to
// it, one that would overfill a batch waits for the next, and one larger
// than the cap commits alone. One Add is limited to MaxAddRecords.
func TestMaxBatch(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	l, err := OpenStore(s, Options{Keys: []*Key{testKey(t, "sum.example.com")}, Create: true, MaxBatch: 4, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	var sizes []int
	entered, release := make(chan struct{}, 1), make(chan struct{})
	s.SetHooks(MemHooks{BeforeCommit: func(b *Batch) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		mu.Lock()
		sizes = append(sizes, len(b.Records))
		mu.Unlock()
		return nil
	}})
	var wg sync.WaitGroup
	add := func(first, n int) {
		var recs []gosum.Record
		for i := range n {
			recs = append(recs, record(first+i, 0))
		}
		wg.Go(func() {
			if _, err := l.Add(ctx, recs...); err != nil {
				t.Error(err)
			}
		})
	}
	add(0, 1) // the sequencer takes it and blocks in the commit
	<-entered
	for i, n := range []int{3, 3, 10, 1} {
		add(100*(i+1), n)
		for len(l.queue) != i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	close(release)
	wg.Wait()
	if want := []int{1, 3, 3, 10, 1}; !slices.Equal(sizes, want) {
		t.Errorf("commit sizes %v, want %v", sizes, want)
	}

	big := make([]gosum.Record, MaxAddRecords+1)
	for i := range big {
		big[i] = record(10_000+i, 0)
	}
	if _, err := l.Add(ctx, big...); err == nil || !strings.Contains(err.Error(), "the limit is 65536") {
		t.Fatalf("Add of %d records = %v, want the limit", len(big), err)
	}
	if tree, _ := l.Tree(ctx); tree.N != 18 {
		t.Fatalf("tree %d, want 18", tree.N)
	}
}
