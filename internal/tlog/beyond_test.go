package tlog

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
)

// addRecords adds records (module i, version 0) for i in [from, to).
func addRecords(t *testing.T, l *Log, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := l.Add(context.Background(), record(i, 0)); err != nil {
			t.Fatal(err)
		}
	}
}

// grownLog opens a new log on s, adds 150 records and returns the signed
// head it had at 99 and the last one, closing the log.
func grownLog(t *testing.T, s Store, k *Key) (old, last []byte) {
	t.Helper()
	l, err := OpenStore(s, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	addRecords(t, l, 0, 99)
	old = l.Published().Signed
	addRecords(t, l, 99, 150)
	last = l.Published().Signed
	l.store = NewMemStore() // keep s open: Close closes the log's store
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return old, last
}

// rollBack stores head old in place of last, leaving the records, index
// entries and tiles of the larger tree: an UPDATE of the head row behind
// the log's back.
func rollBack(t *testing.T, s Store, old, last []byte) {
	t.Helper()
	if err := s.Commit(context.Background(), &Batch{Prev: last, Head: old, Tree: headTree(t, old)}); err != nil {
		t.Fatal(err)
	}
}

func checkBeyondHead(t *testing.T, err error) {
	t.Helper()
	var beyond *BeyondHeadError
	if !errors.As(err, &beyond) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opening a store rolled back to tree 99 of 150: %v; want a *BeyondHeadError (ErrCorrupt)", err)
	}
	if beyond.Tree != 99 || !strings.Contains(err.Error(), "records up to id 149") || !strings.Contains(beyond.Hint(), "do NOT restart") {
		t.Fatalf("error %q, hint %q: want tree 99, records up to 149, and not to restart", err, beyond.Hint())
	}
}

// TestOpenRolledBack is the red team's finding: a head rolled back behind
// the log's back opened without complaint, and the next Add overwrote
// record 99 and signed a fork of the tree clients had seen. Open refuses,
// and so do VerifyStore and CheckStore.
func TestOpenRolledBack(t *testing.T) {
	k := testKey(t, "example.com")
	for _, mode := range []VerifyMode{VerifyTail, VerifyFull} {
		s := NewMemStore()
		old, last := grownLog(t, s, k)
		rollBack(t, s, old, last)
		_, err := OpenStore(s, Options{Keys: []*Key{k}, Verify: mode, Logger: quietLogger()})
		checkBeyondHead(t, err)
		checkBeyondHead(t, VerifyStore(context.Background(), s, mode))
		_, _, err = CheckStore(context.Background(), s, nil)
		checkBeyondHead(t, err)
		if r, _ := s.ReadRecords(context.Background(), []int64{99}); string(r[0]) != string(record(99, 0).Text()) {
			t.Fatalf("record 99 changed: %q", r[0])
		}
	}

	path := filepath.Join(t.TempDir(), "log.db")
	b, err := OpenBolt(path, BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	old, last := grownLog(t, b, k)
	rollBack(t, b, old, last)
	b.Close()
	_, err = Open(path, Options{Keys: []*Key{k}, Logger: quietLogger()})
	checkBeyondHead(t, err)
}

// TestOpenBeyondHeadKinds: each kind of data beyond the head is found on its
// own: an index entry, a wider tile, a tile past the edge.
func TestOpenBeyondHeadKinds(t *testing.T) {
	k := testKey(t, "example.com")
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		found string
		add   func(s *MemStore)
	}{
		{"index", "index entries naming records up to id 120", func(s *MemStore) { s.index["example.com/x@v1.0.0"] = 120 }},
		{"wider tile", "tile 0/0 with 120 hashes, of which the tree has 99", func(s *MemStore) {
			s.tiles[TileID{0, 0}] = append(s.tiles[TileID{0, 0}], make([]byte, 21*32)...)
		}},
		{"tile past the edge", "tile 1/0 with 1 hashes", func(s *MemStore) { s.tiles[TileID{1, 0}] = make([]byte, 32) }},
	} {
		s := NewMemStore()
		l := openMem(t, s, k)
		addRecords(t, l, 0, 99)
		l.Close()
		tc.add(s)
		_, err := OpenStore(s, Options{Keys: []*Key{k}, Logger: quietLogger()})
		var beyond *BeyondHeadError
		if !errors.As(err, &beyond) || !strings.Contains(err.Error(), tc.found) {
			t.Errorf("%s: Open = %v; want a *BeyondHeadError naming %q", tc.name, err, tc.found)
		}
		if err := VerifyStore(ctx, s, VerifyTail); !errors.As(err, &beyond) {
			t.Errorf("%s: VerifyStore = %v; want a *BeyondHeadError", tc.name, err)
		}
	}
}

// TestCreateOverLeftovers: a store whose log's head and metadata were
// deleted (DELETE FROM sumd_log) but whose records remain is not a new,
// empty store: Create refuses it rather than start a second history over
// the first one's records.
func TestCreateOverLeftovers(t *testing.T) {
	k := testKey(t, "example.com")
	s := NewMemStore()
	grownLog(t, s, k)
	s.Forget()
	_, err := OpenStore(s, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger()})
	if !errors.Is(err, ErrLeftoverData) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("creating a log over another's records: %v; want ErrLeftoverData", err)
	}
	if _, err := s.Load(context.Background()); !errors.Is(err, ErrNoLog) {
		t.Fatalf("after the refused Create, Load = %v; want ErrNoLog (nothing created)", err)
	}

	path := filepath.Join(t.TempDir(), "log.db")
	b, err := OpenBolt(path, BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	grownLog(t, b, k)
	if err := b.db.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketMeta) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	_, err = Open(path, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger()})
	if !errors.Is(err, ErrLeftoverData) {
		t.Fatalf("creating a log over another's records in bbolt: %v; want ErrLeftoverData", err)
	}
	// Empty buckets left behind are no obstacle.
	b, err = OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = b.db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketRecords, bucketIndex, bucketTiles} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("creating a log in a file with empty buckets: %v", err)
	}
	l.Close()
}

// TestRolledBackUnderRunningLog: a log on a shared store whose head another
// hand rolls back stops, and its error's hint says not to restart (the
// generic one said to start again, which opened the rolled-back head).
func TestRolledBackUnderRunningLog(t *testing.T) {
	k := testKey(t, "example.com")
	s := &sharedMem{MemStore: NewMemStore()}
	l := openShared(t, s, Options{Keys: []*Key{k}})
	addRecords(t, l, 0, 10)
	old := l.Published().Signed
	addRecords(t, l, 10, 20)
	rollBack(t, s, old, l.Published().Signed)
	if _, err := l.Add(context.Background(), record(20, 0)); !errors.Is(err, ErrFatal) {
		t.Fatalf("Add after the rollback = %v; want ErrFatal", err)
	}
	var hinted interface{ Hint() string }
	if err := l.Err(); !errors.Is(err, ErrFatal) || !errors.As(err, &hinted) || !strings.Contains(hinted.Hint(), "do NOT start sumd serve again") {
		t.Fatalf("Err = %v; want ErrFatal with a hint not to restart", err)
	}
}

// TestExtentReach: the smallest tree that explains a store's data.
func TestExtentReach(t *testing.T) {
	for _, tc := range []struct {
		e    Extent
		want int64
	}{
		{Extent{}, 0},
		{Extent{Records: 150, Indexed: 120}, 150},
		{Extent{Records: 99, Indexed: 121}, 121},
		{Extent{Records: 99, Tiles: []TileExtent{{TileID{0, 0}, 120}}}, 120},
		{Extent{Tiles: []TileExtent{{TileID{0, 2}, 5}, {TileID{1, 0}, 3}}}, 3 * 256},
		{Extent{Tiles: []TileExtent{{TileID{1, 1}, 2}}}, 258 * 256},
		{Extent{Tiles: []TileExtent{{TileID{7, 1 << 40}, 1}}}, math.MaxInt64},
	} {
		if got := tc.e.Reach(); got != tc.want {
			t.Errorf("%+v.Reach() = %d, want %d", tc.e, got, tc.want)
		}
	}
}

// TestCopyRolledBack: sumd copy of a rolled-back primary is refused as
// Open refuses it; it used to copy up to the head and hand over a clean
// database that signed a fork of the tree the source's data proves.
func TestCopyRolledBack(t *testing.T) {
	k := testKey(t, "example.com")
	src := NewMemStore()
	old, last := grownLog(t, src, k)
	rollBack(t, src, old, last)
	dst := NewMemStore()
	_, _, err := Copy(context.Background(), dst, src, CopyOptions{})
	checkBeyondHead(t, err)
	if dst.Commits() != 0 {
		t.Errorf("the refused copy stored %d commits", dst.Commits())
	}
}
