package tlog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSnapshot takes a snapshot of a bbolt log while writers append: the
// copy opens, verifies in full, and holds every record acknowledged before
// the snapshot was asked for.
func TestSnapshot(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	dir := t.TempDir()
	l := openTest(t, filepath.Join(dir, "sumd.db"), k, VerifyTail)
	defer l.Close()
	var (
		mu    sync.Mutex
		acked []int // modules whose records were acknowledged
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				mod := w*1_000_000 + i
				if _, err := l.Add(ctx, record(mod, 1)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked = append(acked, mod)
				mu.Unlock()
			}
		})
	}
	for len(ackedNow(&mu, &acked)) < 200 {
		time.Sleep(time.Millisecond)
	}
	before := ackedNow(&mu, &acked)
	snap, err := l.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	f, err := os.Create(backup)
	if err != nil {
		t.Fatal(err)
	}
	n, err := snap.WriteTo(f)
	if err != nil || n != snap.Size() {
		t.Fatalf("WriteTo = %d, %v; want %d bytes", n, err, snap.Size())
	}
	f.Close()
	snap.Close()
	close(stop)
	wg.Wait()

	s, err := OpenBolt(backup, BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, tree, err := CheckStore(ctx, s, []string{k.VerifierKey()})
	if err != nil || st.Meta.Name != "sum.example.com" {
		t.Fatalf("CheckStore of the snapshot = %v", err)
	}
	for _, mod := range before {
		r := record(mod, 1)
		ids, err := s.Lookup(ctx, []string{r.Key()})
		if err != nil || ids[0] < 0 || ids[0] >= tree.N {
			t.Fatalf("record %s, acknowledged before the snapshot, is not in it (id %v, tree %d)", r.Key(), ids, tree.N)
		}
	}
	t.Logf("snapshot of %d records (%d acknowledged before it), %d bytes", tree.N, len(before), n)
}

func ackedNow(mu *sync.Mutex, acked *[]int) []int {
	mu.Lock()
	defer mu.Unlock()
	return append([]int(nil), *acked...)
}

// TestCheckStore: a damaged copy, or one checked with another log's key,
// is refused; a store that cannot copy itself says so. VerifyStore (Copy's
// check) refuses the same damage, and a primary's head that lacks a
// signature by a key the store lists, where CheckStore needs one of the
// keys it is given.
func TestCheckStore(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	s := NewMemStore()
	l := openMem(t, s, k)
	growOrigin(t, l, 0, 300)
	l.Close()
	if _, tree, err := CheckStore(ctx, s, nil); err != nil || tree.N != 300 {
		t.Fatalf("CheckStore with the stored keys = %d, %v", tree.N, err)
	}
	other := testKey(t, "sum.example.com")
	if _, _, err := CheckStore(ctx, s, []string{other.VerifierKey()}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("CheckStore with another key = %v, want ErrCorrupt", err)
	}
	damaged := s.Clone()
	damaged.records[17] = record(9, 9).Text()
	if _, _, err := CheckStore(ctx, damaged, nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "record 17") {
		t.Errorf("CheckStore of a damaged store = %v", err)
	}
	if err := VerifyStore(ctx, s, VerifyFull); err != nil {
		t.Errorf("VerifyStore of a sound store = %v", err)
	}
	if err := VerifyStore(ctx, damaged, VerifyFull); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "record 17") {
		t.Errorf("VerifyStore of a damaged store = %v", err)
	}
	// Only its hashes changed, the version and its index entry as they
	// were: the leaf hash alone tells.
	rehashed := s.Clone()
	r := record(17, 3)
	r.Hash = fakeHash("another zip")
	rehashed.records[17] = r.Text()
	if err := VerifyStore(ctx, rehashed, VerifyFull); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "record 17 does not match its stored hash") {
		t.Errorf("VerifyStore of a store whose record 17 has other hashes = %v, want ErrCorrupt: record 17 does not match its stored hash", err)
	}
	unsigned := s.Clone()
	unsigned.meta.VKeys = append(unsigned.meta.VKeys, other.VerifierKey())
	if err := VerifyStore(ctx, unsigned, VerifyFull); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "lacks a signature") {
		t.Errorf("VerifyStore of a head without a listed key's signature = %v, want ErrCorrupt", err)
	}
	if _, tree, err := CheckStore(ctx, unsigned, []string{k.VerifierKey()}); err != nil || tree.N != 300 {
		t.Errorf("CheckStore with the key that signed = %d, %v", tree.N, err)
	}
	m := openMem(t, NewMemStore(), k)
	defer m.Close()
	if _, err := m.Snapshot(ctx); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("Snapshot of a memory store = %v, want ErrNoSnapshot", err)
	}
}

// TestSnapshotCanceled asks for snapshots with contexts that end before the
// sequencer gets to them: each fails with the context's error and leaves
// no read transaction open.
func TestSnapshotCanceled(t *testing.T) {
	l := openTest(t, filepath.Join(t.TempDir(), "sumd.db"), testKey(t, "sum.example.com"), VerifyTail)
	defer l.Close()
	block, blocked := make(chan struct{}), make(chan struct{})
	go l.control(context.Background(), func(context.Context) error { close(blocked); <-block; return nil })
	<-blocked // the sequencer is busy: the snapshots below queue behind it
	var wg sync.WaitGroup
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		wg.Go(func() {
			if snap, err := l.Snapshot(ctx); !errors.Is(err, context.Canceled) || snap != nil {
				t.Errorf("Snapshot with a canceled context = %v, %v", snap, err)
			}
		})
		cancel()
	}
	wg.Wait()
	close(block)
	if err := l.control(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := l.store.(*BoltStore).db.Stats().OpenTxN; n != 0 {
		t.Errorf("%d read transactions left open", n)
	}
}

// TestVerifyTail: Open's default verification re-hashes the records of the
// last data tile, in time independent of the log's size: a record there
// with other hashes (its version unchanged) is refused; one in an earlier
// tile is left to VerifyFull.
func TestVerifyTail(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	s := NewMemStore()
	l := openMem(t, s, k)
	growOrigin(t, l, 0, 300)
	l.Close()
	rehash := func(id int) *MemStore {
		c := s.Clone()
		r := record(id, 3)
		r.Hash = fakeHash("another zip")
		c.records[int64(id)] = r.Text()
		return c
	}
	if _, err := OpenStore(rehash(299), Options{Keys: []*Key{k}, Logger: quietLogger()}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "record 299 does not match its stored hash") {
		t.Errorf("Open (VerifyTail) with record 299, in the last tile, changed = %v, want ErrCorrupt: record 299 does not match its stored hash", err)
	}
	early := rehash(100)
	l, err := OpenStore(early, Options{Keys: []*Key{k}, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open (VerifyTail) with record 100, before the last tile, changed = %v, want it opened: the tail check reads the last tile only", err)
	}
	l.Close()
	if err := VerifyStore(ctx, early, VerifyFull); !errors.Is(err, ErrCorrupt) {
		t.Errorf("VerifyFull with record 100 changed = %v, want ErrCorrupt", err)
	}
}

// TestMmapSize: the mapping bbolt starts with is twice the file, and at
// least 8 GiB, so that a commit needs a larger one (and waits for every
// read, a backup's snapshot among them) only once the file has doubled
// since it was opened. Windows and 32-bit systems keep bbolt's default.
func TestMmapSize(t *testing.T) {
	const gib = 1 << 30
	for _, tt := range []struct{ file, want int64 }{
		{0, 8 * gib},
		{1 << 20, 8 * gib},
		{4 * gib, 8 * gib},
		{5 * gib, 10 * gib},
		{100 * gib, 200 * gib},
	} {
		want := int(tt.want)
		if runtime.GOOS == "windows" || strconv.IntSize < 64 {
			want = 0
		}
		if got := mmapSize(tt.file); got != want {
			t.Errorf("mmapSize(%d) = %d, want %d", tt.file, got, want)
		}
	}
}
