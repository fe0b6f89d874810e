package tlog

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/mod/sumdb/tlog"
)

// flipHash flips a bit of hash i of stored tile id behind the log's back,
// and returns the tile's data as it was.
func flipHash(t *testing.T, s *MemStore, id TileID, i int) []byte {
	t.Helper()
	data, err := s.ReadTiles(context.Background(), []TileID{id})
	if err != nil || len(data[0]) <= i*32 {
		t.Fatalf("ReadTiles(%v) = %d bytes, %v", id, len(data[0]), err)
	}
	damaged := append([]byte(nil), data[0]...)
	damaged[i*32] ^= 1
	s.SetTile(id, damaged)
	return data[0]
}

// TestCatchUpDamagedTile: a catch-up proved that the head another writer
// stored extends the published one from the store's tiles as they were,
// so a damaged full tile on the proof's path (tile 1/0 of a tree of
// 65,536 records and more, written by the other writer, which the proof
// from a tree of 300 reads) stopped the log as rolled back, a fork to be
// kept from a restart. A proof that fails is now checked again with every
// tile it read authenticated against the stored head: one that does not
// hash to it is damage, a *CorruptTileError, as one cut short is (a
// *CorruptDataError), and the log goes on, adopting the head once the tile
// is repaired; a fork of sound tiles still stops it.
func TestCatchUpDamagedTile(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	s := &sharedMem{MemStore: NewMemStore()}
	a := openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	b := openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	growOrigin(t, a, 0, 300)
	growOrigin(t, b, 300, 1<<16) // tree 65,836: tile 1/0 full
	good := flipHash(t, s.MemStore, TileID{1, 0}, 200)
	s.SetTile(TileID{1, 0}, good[:100*32]) // cut short
	if err := a.Refresh(ctx); !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrFatal) {
		t.Fatalf("catch-up over a tile cut short = %v; want ErrCorrupt, not ErrFatal", err)
	}
	s.SetTile(TileID{1, 0}, good)
	flipHash(t, s.MemStore, TileID{1, 0}, 200)
	var corrupt *CorruptTileError
	if err := a.Refresh(ctx); !errors.As(err, &corrupt) || errors.Is(err, ErrFatal) {
		t.Fatalf("catch-up over a damaged tile = %v; want a *CorruptTileError, not ErrFatal", err)
	}
	if err := a.Err(); err != nil {
		t.Fatalf("log stopped after a catch-up over a damaged tile: %v", err)
	}
	s.SetTile(TileID{1, 0}, good)
	if err := a.Refresh(ctx); err != nil || a.Published().Tree.N != 300+1<<16 {
		t.Fatalf("catch-up after the repair = %v, tree %d; want tree %d", err, a.Published().Tree.N, 300+1<<16)
	}

	// A fork: the store's head is rolled back to tree 290 under c, which
	// published it, and c signs another history on it.
	s = &sharedMem{MemStore: NewMemStore()}
	a = openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	growOrigin(t, a, 0, 290)
	c := openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	old := a.Published().Signed
	growOrigin(t, a, 290, 10)
	rollBack(t, s, old, a.Published().Signed)
	growOrigin(t, c, 5000, 1<<16)
	err := a.Refresh(ctx)
	var hinted interface{ Hint() string }
	if !errors.Is(err, ErrFatal) || errors.As(err, &corrupt) || !errors.As(a.Err(), &hinted) || !strings.Contains(hinted.Hint(), "do NOT start sumd serve again") {
		t.Fatalf("catch-up to a fork = %v (log: %v); want ErrFatal with a hint not to restart", err, a.Err())
	}
}

// TestStageDamagedTile: Stage proves that the staged head extends the held
// one through the tiles given and those staged before, so a staged tile
// on the proof's path that was damaged in the store since (tile 1/0 of a
// tree of 70,000, which the proof from the held tree of 300 reads, but not
// the authentication of the leaves given) was reported as the origin's
// fork, a security event. A tile of the store that does not hash to the
// staged head is now damage (a *CorruptTileError); a fork is still one
// (TestStageRefuses).
func TestStageDamagedTile(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 300)
	s := NewMemStore()
	m := openMirror(t, s, k.VerifierKey(), VerifyTail)
	defer m.Close()
	all := func(int64) bool { return true }
	if err := m.Extend(ctx, extensionFrom(t, origin, 0, all)); err != nil {
		t.Fatal(err)
	}
	growOrigin(t, origin, 1000, 1<<16)
	growOrigin(t, origin, 1000+1<<16, 70000-300-1<<16)
	_, parts := stagingParts(t, origin, 300, 16, all)
	if err := m.Stage(ctx, parts[0]); err != nil {
		t.Fatal(err)
	}
	flipHash(t, s, TileID{1, 0}, 200)
	last := parts[len(parts)-1] // leaves under tile 1/1
	var corrupt *CorruptTileError
	if err := m.Stage(ctx, last); !errors.As(err, &corrupt) || isFork(err) {
		t.Fatalf("Stage over a damaged staged tile = %v; want a *CorruptTileError, not a fork", err)
	}
}

// TestSealDamagedTile: a primary proves that the tree it signs extends the
// published one from the tiles of the published tree's right edge, read
// from the store unchecked by the first commit after Open (or a catch-up)
// and kept in memory after it. One damaged after Open's tail check (tile
// 1/1 of a tree of 65,836 records) made the proof fail, and the log
// stopped as rolled back (do not restart); an AddKey, re-signing the tree
// from the same tiles, too. A failed proof now reads the stored head: if
// it is the published one, the tiles used are authenticated against it,
// and one that does not hash to it is damage, a *CorruptTileError: the
// write fails, the log goes on, and writes again once the tile is
// repaired. A store that holds another head, a rollback, still stops it.
func TestSealDamagedTile(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	s := NewMemStore()
	l := openMem(t, s, k)
	growOrigin(t, l, 0, 300)
	growOrigin(t, l, 300, 1<<16)
	l.Close()
	l, err := OpenStore(s, Options{Keys: []*Key{k}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	good := flipHash(t, s, TileID{1, 1}, 0)
	var corrupt *CorruptTileError
	if _, err := l.Add(ctx, record(1<<20, 3)); !errors.As(err, &corrupt) || errors.Is(err, ErrFatal) {
		t.Fatalf("Add over a damaged edge tile = %v; want a *CorruptTileError, not ErrFatal", err)
	}
	if err := l.AddKey(ctx, testKey(t, "sum.example.com")); !errors.As(err, &corrupt) || errors.Is(err, ErrFatal) {
		t.Fatalf("AddKey over a damaged edge tile = %v; want a *CorruptTileError, not ErrFatal", err)
	}
	if err := l.Err(); err != nil {
		t.Fatalf("log stopped after a commit over a damaged tile: %v", err)
	}
	s.SetTile(TileID{1, 1}, good)
	if _, err := l.Add(ctx, record(1<<20, 3)); err != nil {
		t.Fatalf("Add after the repair: %v", err)
	}

	// A rollback: the store's head is rolled back to tree 290 under b,
	// which opened on tree 300 and has not committed yet, and c signs
	// another history on it.
	sh := &sharedMem{MemStore: NewMemStore()}
	a := openShared(t, sh, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	growOrigin(t, a, 0, 290)
	c := openShared(t, sh, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	old := a.Published().Signed
	growOrigin(t, a, 290, 10)
	b := openShared(t, sh, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	rollBack(t, sh, old, a.Published().Signed)
	growOrigin(t, c, 5000, 20)
	_, err = b.Add(ctx, record(1<<20, 3))
	var hinted interface{ Hint() string }
	if !errors.Is(err, ErrFatal) || errors.As(err, &corrupt) || !errors.As(b.Err(), &hinted) || !strings.Contains(hinted.Hint(), "do NOT start sumd serve again") {
		t.Fatalf("commit on a rolled-back store = %v (log: %v); want ErrFatal with a hint not to restart", err, b.Err())
	}
}

// TestDamagedStagedTileUnverified: a tile staged before was authenticated
// against the staged head when staged, so the store's own; one that no
// longer hashes to it was damaged in the store. Stage, authenticating the
// leaves given through their staged parent (tile 1/0, damaged), and Extend,
// authenticating every tile, staged or given (tile 0/3, damaged), reported
// it as ErrUnverified, the origin's data not verifying, which a mirror
// logs as the origin's fault. It is a *CorruptTileError now.
func TestDamagedStagedTileUnverified(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 300)
	s := NewMemStore()
	m := openMirror(t, s, k.VerifierKey(), VerifyTail)
	defer m.Close()
	all := func(int64) bool { return true }
	if err := m.Extend(ctx, extensionFrom(t, origin, 0, all)); err != nil {
		t.Fatal(err)
	}
	growOrigin(t, origin, 1000, 1<<16)
	growOrigin(t, origin, 1000+1<<16, 70000-300-1<<16)
	head, parts := stagingParts(t, origin, 300, 16, all)
	if err := m.Stage(ctx, parts[0]); err != nil {
		t.Fatal(err)
	}
	var corrupt *CorruptTileError
	good := flipHash(t, s, TileID{1, 0}, 2) // tile 0/2's hash, in parts[1]
	if err := m.Stage(ctx, parts[1]); !errors.As(err, &corrupt) || errors.Is(err, ErrUnverified) {
		t.Fatalf("Stage of leaves under a damaged staged parent = %v; want a *CorruptTileError, not ErrUnverified", err)
	}
	s.SetTile(TileID{1, 0}, good)
	if err := m.Stage(ctx, parts[1]); err != nil {
		t.Fatalf("Stage after the repair: %v", err)
	}
	flipHash(t, s, TileID{0, 3}, 7)
	rest := Extension{Head: head, Tiles: map[tlog.Tile][]byte{}, Records: map[int64][]byte{}}
	for _, p := range parts[2:] {
		maps.Copy(rest.Tiles, p.Tiles)
		maps.Copy(rest.Records, p.Records)
	}
	if err := m.Extend(ctx, rest); !errors.As(err, &corrupt) || errors.Is(err, ErrUnverified) {
		t.Fatalf("Extend over a damaged staged tile = %v; want a *CorruptTileError, not ErrUnverified", err)
	}
}

// TestStagedDamageCountedOnce: Stage verifies in PrepareStage, and again in
// the sequencer when that failed, so one damaged staged tile was logged and
// counted in sumd_log_corrupt_records_total twice per Stage call. A
// prepared verification that found damage stands: once.
func TestStagedDamageCountedOnce(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 3000)
	s := NewMemStore()
	logs := &lockedBuffer{}
	metrics := NewMetrics(prometheus.NewRegistry())
	m, err := OpenStore(s, Options{VerifierKeys: []string{k.VerifierKey()}, Create: true,
		Logger: slog.New(slog.NewTextHandler(logs, nil)), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, parts := stagingParts(t, origin, 0, 4, func(int64) bool { return true })
	if err := m.Stage(ctx, parts[0]); err != nil {
		t.Fatal(err)
	}
	flipHash(t, s, TileID{1, 0}, 2) // tile 0/2's hash, in parts[1]
	var corrupt *CorruptTileError
	if err := m.Stage(ctx, parts[1]); !errors.As(err, &corrupt) {
		t.Fatalf("Stage of leaves under a damaged staged parent = %v; want a *CorruptTileError", err)
	}
	if got := testutil.ToFloat64(metrics.corrupt); got != 1 {
		t.Errorf("sumd_log_corrupt_records_total = %v after one Stage over a damaged tile, want 1", got)
	}
	if n := strings.Count(logs.String(), `msg="a hash tile in the database`); n != 1 {
		t.Errorf("the damaged tile was logged %d times, want once; the log:\n%s", n, logs)
	}
}
