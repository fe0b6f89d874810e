package tlog

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// sharedMem is a MemStore that says it is shared, as a database is; its
// Load can be made to fail (the database is unreachable) or to block.
type sharedMem struct {
	*MemStore
	down  atomic.Bool
	loads atomic.Int64

	mu    sync.Mutex
	block chan struct{} // if set, the next Load waits for it to close

	commitDelay time.Duration         // how long each Commit takes
	loadErr     atomic.Pointer[error] // if set, what Load fails with
}

func (s *sharedMem) Commit(ctx context.Context, b *Batch) error {
	time.Sleep(s.commitDelay)
	return s.MemStore.Commit(ctx, b)
}

var _ SharedStore = (*sharedMem)(nil)

func (s *sharedMem) Shared() bool { return true }

func (s *sharedMem) Load(ctx context.Context) (State, error) {
	s.loads.Add(1)
	s.mu.Lock()
	block := s.block
	s.block = nil
	s.mu.Unlock()
	if block != nil {
		<-block
	}
	if s.down.Load() {
		return State{}, &UnavailableError{errors.New("connection refused")}
	}
	if err := s.loadErr.Load(); err != nil {
		return State{}, *err
	}
	return s.MemStore.Load(ctx)
}

func openShared(t testing.TB, s *sharedMem, opts Options) *Log {
	t.Helper()
	opts.Create, opts.Verify, opts.Logger = true, VerifyFull, quietLogger()
	l, err := OpenStore(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestSharedReadsBeyond: a process on a shared store answers reads of what
// another process committed after its published head — a lookup, the
// records and the tiles of the larger tree a client learned from the other
// process — by adopting the stored head first, without being told to.
func TestSharedReadsBeyond(t *testing.T) {
	ctx := context.Background()
	s, k := &sharedMem{MemStore: NewMemStore()}, testKey(t, "sum.example.com")
	slow := Options{Keys: []*Key{k}, RefreshInterval: time.Hour}
	a, b := openShared(t, s, slow), openShared(t, s, slow)
	var recs []module.Version
	for i := range 300 {
		r := record(i, 0)
		if _, err := b.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, module.Version{Path: r.Path, Version: r.Version})
	}
	if tree, _ := a.Tree(ctx); tree.N != 0 {
		t.Fatalf("a's tree is %d before any read, want 0 (no polling)", tree.N)
	}
	tile := tlog.Tile{H: 8, L: 0, N: 1, W: 300 - 256}
	if _, err := a.ReadTileData(ctx, tile); err != nil {
		t.Fatalf("a.ReadTileData(%s) of b's tree: %v", tile.Path(), err)
	}
	if tree, _ := a.Tree(ctx); tree.N != 300 {
		t.Fatalf("a's tree is %d after reading a tile of b's, want 300", tree.N)
	}
	if _, err := b.Add(ctx, record(300, 0)); err != nil {
		t.Fatal(err)
	}
	if id, err := a.Lookup(ctx, module.Version{Path: record(300, 0).Path, Version: "v1.0.0"}); err != nil || id != 300 {
		t.Fatalf("a.Lookup of b's newest record = %d, %v; want 300", id, err)
	}
	if _, err := b.Add(ctx, record(301, 0)); err != nil {
		t.Fatal(err)
	}
	if texts, err := a.ReadRecords(ctx, 300, 2); err != nil || len(texts) != 2 {
		t.Fatalf("a.ReadRecords(300, 2) = %d, %v", len(texts), err)
	}
	// Beyond every stored tree is still not found, after one refresh.
	loads := s.loads.Load()
	if _, err := a.ReadTileData(ctx, tlog.Tile{H: 8, L: 0, N: 5, W: 1}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a tile beyond the stored tree: %v, want not exist", err)
	}
	if _, err := a.ReadTileData(ctx, tlog.Tile{H: 8, L: 7, N: 1 << 40, W: 256}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a tile beyond any tree: %v, want not exist", err)
	}
	if got := s.loads.Load() - loads; got != 1 {
		t.Errorf("%d loads for two tiles beyond the tree, want 1 (the second reaches no tree)", got)
	}
	if tree, _ := a.Tree(ctx); tree.N != 302 {
		t.Fatalf("a's tree %d, want 302", tree.N)
	}
}

// TestSharedPolling: a process that only reads adopts the other's commits
// within a few polling intervals.
func TestSharedPolling(t *testing.T) {
	ctx := context.Background()
	s, k := &sharedMem{MemStore: NewMemStore()}, testKey(t, "sum.example.com")
	a := openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: 5 * time.Millisecond})
	b := openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	if _, err := b.Add(ctx, record(0, 0), record(1, 0)); err != nil {
		t.Fatal(err)
	}
	want, _ := b.Signed(ctx)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if got, err := a.Signed(ctx); err == nil && string(got) == string(want) {
			break
		}
		if time.Now().After(deadline) {
			got, err := a.Signed(ctx)
			t.Fatalf("a serves %q (%v) 10s after b committed %q", got, err, want)
		}
	}
}

// TestSharedHeadAge: while the store cannot be reached, a process serves
// its head until MaxHeadAge has passed since it last confirmed it, then
// 503; reached again, it serves again, without a restart. In a synctest
// bubble, where the clock moves only while every goroutine waits, the head
// is confirmed at the open and the store goes down at that instant, so the
// head's age is exact: served at MaxHeadAge less a millisecond, refused
// once MaxHeadAge and the refresh that finds the store down have passed.
func TestSharedHeadAge(t *testing.T) {
	synctest.Test(t, testSharedHeadAge)
}

func testSharedHeadAge(t *testing.T) {
	const refresh, maxAge = 5 * time.Millisecond, 100 * time.Millisecond
	ctx := context.Background()
	s, k := &sharedMem{MemStore: NewMemStore()}, testKey(t, "sum.example.com")
	a := openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: refresh, MaxHeadAge: maxAge})
	if _, err := a.Signed(ctx); err != nil {
		t.Fatalf("Signed after open: %v", err)
	}
	s.down.Store(true)
	time.Sleep(maxAge - time.Millisecond)
	if _, err := a.Signed(ctx); err != nil {
		t.Fatalf("Signed %v after the store went down, before MaxHeadAge (%v): %v", maxAge-time.Millisecond, maxAge, err)
	}
	time.Sleep(time.Millisecond + refresh)
	_, err := a.Signed(ctx)
	var hs interface{ HTTPStatus() int }
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &hs) || hs.HTTPStatus() != http.StatusServiceUnavailable {
		t.Fatalf("Signed %v after the store went down = %v, want ErrUnavailable with status 503", maxAge+refresh, err)
	}
	if msg := err.Error(); msg != "the checksum database's storage is unavailable; try again shortly" {
		t.Errorf("error text %q would show clients more than that the storage is unavailable", msg)
	}
	s.down.Store(false)
	time.Sleep(refresh)
	synctest.Wait()
	if _, err = a.Signed(ctx); err != nil {
		t.Fatalf("Signed a refresh after the store came back: %v", err)
	}
}

// TestSharedSlowCommit: a commit that takes longer than MaxHeadAge (a wait
// for the head's lock, or for a synchronous standby) confirms its head as
// of its answer: its callers' answers carry the head, not a 503.
func TestSharedSlowCommit(t *testing.T) {
	ctx := context.Background()
	s, k := &sharedMem{MemStore: NewMemStore()}, testKey(t, "sum.example.com")
	a := openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: time.Hour, MaxHeadAge: 200 * time.Millisecond})
	s.commitDelay = 400 * time.Millisecond
	if _, err := a.Add(ctx, record(0, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Signed(ctx); err != nil {
		t.Fatalf("Signed right after a slow commit = %v, want its head", err)
	}
}

// TestRefreshCoalesced: callers of Refresh while a catch-up is queued but
// not started share it; one that started does not serve later callers,
// which may need a head it did not read.
func TestRefreshCoalesced(t *testing.T) {
	ctx := context.Background()
	s, k := &sharedMem{MemStore: NewMemStore()}, testKey(t, "sum.example.com")
	l := openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before Close, which waits for the sequencer
	s.mu.Lock()
	s.block = release
	s.mu.Unlock()
	loads := s.loads.Load()
	first, err := l.refreshCall()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); s.loads.Load() == loads; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first catch-up did not start")
		}
	}
	second, _ := l.refreshCall()
	if second == first {
		t.Fatal("a caller after the catch-up started joined it")
	}
	for range 50 {
		if c, _ := l.refreshCall(); c != second {
			t.Fatal("a caller while a catch-up is queued did not join it")
		}
	}
	unblock()
	<-first.done
	<-second.done
	if first.err != nil || second.err != nil {
		t.Fatal(first.err, second.err)
	}
	if n := s.loads.Load() - loads; n != 2 {
		t.Errorf("%d loads for 52 refreshes in two generations, want 2", n)
	}
	if err := l.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSharedPollFailureLogged: a process whose polls of the stored head
// fail for a reason other than an unreachable database (which the store
// reports itself), such as a role that lost a privilege, answers 503 once
// MaxHeadAge has passed; the failure was logged at debug level only, so
// that nothing said why. It is logged as a warning, once while it lasts.
func TestSharedPollFailureLogged(t *testing.T) {
	ctx := context.Background()
	s, k := &sharedMem{MemStore: NewMemStore()}, testKey(t, "sum.example.com")
	logs := &lockedBuffer{}
	l, err := OpenStore(s, Options{Keys: []*Key{k}, Create: true, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		RefreshInterval: 5 * time.Millisecond, MaxHeadAge: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	denied := error(errors.New("ERROR: permission denied for table sumd_schema (SQLSTATE 42501)"))
	s.loadErr.Store(&denied)
	start := s.loads.Load()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := l.Signed(ctx); err != nil && s.loads.Load() > start+10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Signed still answers 10s after the polls began to fail")
		}
	}
	var warned bool
	for _, line := range strings.Split(logs.String(), "\n") {
		warned = warned || strings.Contains(line, "level=WARN") && strings.Contains(line, "permission denied")
	}
	if n := strings.Count(logs.String(), "permission denied"); n != 1 || !warned {
		t.Fatalf("after %d failed polls the log has the failure %d times, want once, as a warning:\n%s", s.loads.Load()-start, n, logs.String())
	}
	s.loadErr.Store(nil)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := l.Signed(ctx); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Signed still fails 10s after the polls succeed again")
		}
	}
}

// scanningMem is a sharedMem that counts ScanIndex calls.
type scanningMem struct {
	*sharedMem
	scans atomic.Int64
}

func (s *scanningMem) ScanIndex(ctx context.Context, from string, limit int) ([]IndexEntry, error) {
	s.scans.Add(1)
	return s.sharedMem.ScanIndex(ctx, from, limit)
}

// TestScanIndexBeyondBounded: the index entries of records beyond the
// published tree (another process's commits not adopted yet, a mirror's
// staging) are left out of ScanIndex, which read on past them as many
// entries at a time as were still wanted: the status page's search for one
// version (limit 1) read them one store read each, thousands of statements
// for one anonymous request. It reads them in chunks, and gives up past a
// bound, answering what it found.
func TestScanIndexBeyondBounded(t *testing.T) {
	ctx := context.Background()
	mem, k := &sharedMem{MemStore: NewMemStore()}, testKey(t, "sum.example.com")
	s := &scanningMem{sharedMem: mem}
	a, err := OpenStore(s, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger(), RefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := openShared(t, mem, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	const beyond = 3000
	for i := 0; i < beyond; i += 500 {
		recs := make([]gosum.Record, 0, 500)
		for j := i; j < i+500; j++ {
			recs = append(recs, record(j, 0))
		}
		if _, err := b.Add(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	es, cut, err := a.ScanIndex(ctx, "", 1)
	if err != nil || len(es) != 0 || cut {
		t.Fatalf("ScanIndex of a tree of 0 records = %v, cut %v, %v; want none, the end of the index", es, cut, err)
	}
	if n := s.scans.Load(); n > beyond/MaxScanIndex+2 {
		t.Fatalf("ScanIndex(limit 1) past %d entries beyond the published tree read the store %d times", beyond, n)
	}
	// Past maxScanBeyond of them, it says that it stopped short.
	recs := make([]gosum.Record, 0, maxScanBeyond)
	for j := beyond; j < beyond+maxScanBeyond; j++ {
		recs = append(recs, record(j, 0))
	}
	if _, err := b.Add(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	start := s.scans.Load()
	if es, cut, err := a.ScanIndex(ctx, "", 1); err != nil || len(es) != 0 || !cut {
		t.Fatalf("ScanIndex past %d entries beyond the tree = %v, cut %v, %v; want none, cut short", beyond+maxScanBeyond, es, cut, err)
	}
	if n := s.scans.Load() - start; n > maxScanBeyond/MaxScanIndex+1 {
		t.Fatalf("ScanIndex(limit 1) past %d entries beyond the published tree read the store %d times", beyond+maxScanBeyond, n)
	}
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if es, cut, err := a.ScanIndex(ctx, "", 2); err != nil || len(es) != 2 || cut {
		t.Fatalf("ScanIndex once adopted = %v, cut %v, %v; want 2 entries", es, cut, err)
	}
}

// TestScanReleasesBeyondTree: ScanReleases answers the first key of each
// release within the published tree: a release whose first key another
// process committed (a tag over pseudo-versions already published) is
// still listed, by its first key within the tree; and past
// maxReleaseReads reads that meet such keys it says that it stopped
// short.
func TestScanReleasesBeyondTree(t *testing.T) {
	ctx := context.Background()
	mem, k := &sharedMem{MemStore: NewMemStore()}, testKey(t, "sum.example.com")
	a, err := OpenStore(mem, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger(), RefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := openShared(t, mem, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	rec := func(l *Log, versions ...string) {
		t.Helper()
		var recs []gosum.Record
		for _, v := range versions {
			recs = append(recs, gosum.Record{Path: "example.com/m", Version: v, Hash: fakeHash(v), GoMod: fakeHash(v + "/go.mod")})
		}
		if _, err := l.Add(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	scan := func(want []string, wantCut bool) {
		t.Helper()
		es, cut, err := a.ScanReleases(ctx, "example.com/m", "", 100)
		var got []string
		for _, e := range es {
			got = append(got, e.Version)
		}
		if err != nil || !slices.Equal(got, want) || cut != wantCut {
			t.Fatalf("ScanReleases = %q, cut %v, %v; want %q, cut %v", got, cut, err, want, wantCut)
		}
	}
	rec(a, "v1.0.0-0.20200101000000-abcdef123456", "v1.0.0-rc.1", "v1.1.0", "v1.2.0-rc.1", "v1.3.0-rc.1", "v1.4.0-rc.1", "v1.5.0-rc.1")
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	rec(b, "v1.0.0", "v1.0.0-0.20190101000000-abcdef123456", "v1.6.0")
	scan([]string{"v1.0.0-0.20200101000000-abcdef123456", "v1.1.0", "v1.2.0-rc.1", "v1.3.0-rc.1", "v1.4.0-rc.1", "v1.5.0-rc.1"}, false)
	rec(b, "v1.2.0", "v1.3.0", "v1.4.0", "v1.5.0")
	scan([]string{"v1.0.0-0.20200101000000-abcdef123456", "v1.1.0", "v1.2.0-rc.1", "v1.3.0-rc.1"}, true)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	scan([]string{"v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0", "v1.5.0", "v1.6.0"}, false)
}
