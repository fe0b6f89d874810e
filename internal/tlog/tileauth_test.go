package tlog

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// addBatch adds records 0 … n-1 to l in one batch (those it holds again: no change).
func addBatch(t *testing.T, l *Log, n int) {
	t.Helper()
	recs := make([]gosum.Record, n)
	for i := range recs {
		recs[i] = record(i, 0)
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

// flipped returns data with one bit of hash i changed.
func flipped(data []byte, i int) []byte {
	data = bytes.Clone(data)
	data[i*tlog.HashSize+4] ^= 1
	return data
}

// wantCorruptTile fails t unless err is a *CorruptTileError for id.
func wantCorruptTile(t *testing.T, what string, err error, id TileID) {
	t.Helper()
	var ct *CorruptTileError
	if !errors.As(err, &ct) || !errors.Is(err, ErrCorrupt) || ct.ID != id {
		t.Errorf("%s: %v; want a *CorruptTileError for tile %d/%d, an ErrCorrupt", what, err, id.L, id.N)
	}
}

// TestDamagedTileRefused: a hash tile in the middle of the tree changed in
// the bbolt file (one bit of tile 0/0, which Open's tail check does not
// read) is refused with ErrCorrupt, logged and counted, not served; the
// records it holds the leaves of are not blamed for it; the other tiles
// are still served.
func TestDamagedTileRefused(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "example.com")
	path := filepath.Join(t.TempDir(), "t.db")
	l, err := Open(path, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger(), MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	addBatch(t, l, 600)
	l.Close()
	s, err := OpenBolt(path, BoltOptions{MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTiles)
		return b.Put(tileKey(TileID{0, 0}), flipped(b.Get(tileKey(TileID{0, 0})), 3))
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	logs := &lockedBuffer{}
	metrics := NewMetrics(prometheus.NewRegistry())
	l, err = Open(path, Options{Keys: []*Key{k}, Logger: slog.New(slog.NewTextHandler(logs, nil)), Metrics: metrics, MinFree: -1})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer l.Close()

	data, err := l.ReadTileData(ctx, tlog.Tile{H: 8, L: 0, N: 0, W: 256})
	wantCorruptTile(t, "ReadTileData(0/0)", err, TileID{0, 0})
	if data != nil {
		t.Errorf("ReadTileData(0/0) returned %d bytes with its error", len(data))
	}
	_, err = l.ReadTileData(ctx, tlog.Tile{H: 8, L: 0, N: 0, W: 10})
	wantCorruptTile(t, "ReadTileData(0/0.p/10)", err, TileID{0, 0})
	_, err = l.ReadRecords(ctx, 3, 1)
	wantCorruptTile(t, "ReadRecords(3)", err, TileID{0, 0})
	// ReadRecords counts the record that does not hash to its leaf, then
	// the tile found to hold the damaged leaf.
	if got := testutil.ToFloat64(metrics.corrupt); got != 4 {
		t.Errorf("corrupt reads counted: %v, want 4", got)
	}
	if !bytes.Contains([]byte(logs.String()), []byte("hash tile")) {
		t.Errorf("the damaged tile was not logged; the log:\n%s", logs)
	}
	for _, tile := range []tlog.Tile{{H: 8, L: 0, N: 1, W: 256}, {H: 8, L: 0, N: 2, W: 88}, {H: 8, L: 1, N: 0, W: 2}} {
		if _, err := l.ReadTileData(ctx, tile); err != nil {
			t.Errorf("ReadTileData(%s), a sound tile: %v", tile.Path(), err)
		}
	}
	if _, err := l.ReadRecords(ctx, 256, 256); err != nil {
		t.Errorf("ReadRecords(256+256), records of a sound tile: %v", err)
	}
}

// TestDamagedEdgeTileRefused: a partial tile at the tree's right edge
// that does not hash to the tree is refused; once authenticated it is
// served from memory, and a wider one, after a commit rewrote it, is
// authenticated anew. So is a tile the store holds fewer hashes of than
// the published tree gives it, partial or full.
func TestDamagedEdgeTileRefused(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore()
	l := openMem(t, s, testKey(t, "example.com"))
	defer l.Close()
	addBatch(t, l, 600)
	edge := tlog.Tile{H: 8, L: 0, N: 2, W: 88}
	good, err := s.ReadTiles(ctx, []TileID{{0, 2}})
	if err != nil {
		t.Fatal(err)
	}
	s.SetTile(TileID{0, 2}, flipped(good[0], 50))
	_, err = l.ReadTileData(ctx, edge)
	wantCorruptTile(t, "ReadTileData(0/2.p/88) damaged", err, TileID{0, 2})
	_, err = l.ReadTileData(ctx, tlog.Tile{H: 8, L: 0, N: 2, W: 10})
	wantCorruptTile(t, "ReadTileData(0/2.p/10), whose own hashes are sound", err, TileID{0, 2})
	s.SetTile(TileID{0, 2}, good[0][:80*tlog.HashSize])
	_, err = l.ReadTileData(ctx, edge)
	wantCorruptTile(t, "ReadTileData(0/2.p/88) short", err, TileID{0, 2})

	s.SetTile(TileID{0, 2}, good[0])
	if _, err := l.ReadTileData(ctx, edge); err != nil {
		t.Fatalf("ReadTileData(0/2.p/88) sound: %v", err)
	}
	if _, err := l.Add(ctx, record(600, 0)); err != nil {
		t.Fatal(err)
	}
	grown, err := s.ReadTiles(ctx, []TileID{{0, 2}})
	if err != nil {
		t.Fatal(err)
	}
	s.SetTile(TileID{0, 2}, flipped(grown[0], 50))
	if _, err := l.ReadTileData(ctx, edge); err != nil {
		t.Errorf("ReadTileData(0/2.p/88), authenticated before: %v", err)
	}
	_, err = l.ReadTileData(ctx, tlog.Tile{H: 8, L: 0, N: 2, W: 89})
	wantCorruptTile(t, "ReadTileData(0/2.p/89) damaged after a commit", err, TileID{0, 2})

	// Every tile not yet authenticated is checked through the tree's
	// right edge, which must be sound.
	s.SetTile(TileID{0, 2}, grown[0])
	full, err := l.ReadTileData(ctx, tlog.Tile{H: 8, L: 0, N: 1, W: 256})
	if err != nil {
		t.Fatal(err)
	}
	s.SetTile(TileID{0, 1}, full[:100*tlog.HashSize])
	_, err = l.ReadTileData(ctx, tlog.Tile{H: 8, L: 0, N: 1, W: 256})
	wantCorruptTile(t, "ReadTileData(0/1) short", err, TileID{0, 1})
}

// A countingStore counts the tiles read from its MemStore.
type countingStore struct {
	*MemStore
	mu    sync.Mutex
	tiles []TileID
}

func (s *countingStore) ReadTiles(ctx context.Context, tiles []TileID) ([][]byte, error) {
	s.mu.Lock()
	s.tiles = append(s.tiles, tiles...)
	s.mu.Unlock()
	return s.MemStore.ReadTiles(ctx, tiles)
}

// read returns the tiles read since the last call.
func (s *countingStore) read() []TileID {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.tiles
	s.tiles = nil
	return r
}

// TestTileAuthenticatedOnce: an honest log serves its tiles unchanged; a
// full tile's first read reads the tiles that authenticate it, later ones
// the tile alone; a partial tile is served from memory once authenticated
// at its width, and authenticated again when wider.
func TestTileAuthenticatedOnce(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "example.com")
	s := &countingStore{MemStore: NewMemStore()}
	l, err := OpenStore(s, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addBatch(t, l, 600)
	ref := &reference{}
	for i := range 600 {
		ref.add(t, record(i, 0).Text())
	}
	check := func(tile tlog.Tile) {
		t.Helper()
		got, err := l.ReadTileData(ctx, tile)
		if err != nil {
			t.Fatalf("ReadTileData(%s): %v", tile.Path(), err)
		}
		want, err := tlog.ReadTileData(tile, ref)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("ReadTileData(%s) is not the tile of the tree", tile.Path())
		}
	}
	s.read()
	check(tlog.Tile{H: 8, L: 0, N: 0, W: 256})
	if got := s.read(); len(got) < 2 || !slices.Contains(got, TileID{0, 0}) {
		t.Errorf("first read of tile 0/0 read tiles %v; want it and those that authenticate it", got)
	}
	for range 2 {
		check(tlog.Tile{H: 8, L: 0, N: 0, W: 256})
		check(tlog.Tile{H: 8, L: 0, N: 0, W: 7})
		if got := s.read(); !slices.Equal(got, []TileID{{0, 0}, {0, 0}}) {
			t.Errorf("later reads of tile 0/0 read tiles %v; want it alone", got)
		}
	}
	// The partial tiles of the tree's right edge were authenticated with
	// 0/0, and are kept.
	check(tlog.Tile{H: 8, L: 0, N: 2, W: 88})
	check(tlog.Tile{H: 8, L: 1, N: 0, W: 2})
	if got := s.read(); len(got) != 0 {
		t.Errorf("reads of the partial tiles authenticated before read tiles %v; want none", got)
	}
	addBatch(t, l, 601)
	ref.add(t, record(600, 0).Text())
	s.read()
	check(tlog.Tile{H: 8, L: 0, N: 2, W: 89})
	if got := s.read(); len(got) < 2 {
		t.Errorf("a read of partial tile 0/2.p/89 read tiles %v; want it and those that authenticate it", got)
	}
	check(tlog.Tile{H: 8, L: 0, N: 2, W: 88})
	check(tlog.Tile{H: 8, L: 0, N: 1, W: 256})
	checkRecords(t, l, 601)
}
