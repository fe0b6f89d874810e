package tlog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"golang.org/x/mod/sumdb/tlog"
)

// A CorruptTileError says a hash tile read from the store does not hash up
// to the published tree: the tile, or one it was checked through on its way
// up (its parents, the tree's right edge), was changed in the database
// (damaged, or tampered with behind sumd's back), or cut short. The log
// never serves such a tile: the request fails with it, a 500.
type CorruptTileError struct {
	ID   TileID
	Size int64 // the published tree it was checked against
	// Held is how many hashes the store holds of a tile cut short (of
	// fewer than the tree gives it), or -1 if it holds them all.
	Held int
}

func (e *CorruptTileError) Error() string {
	if e.Held >= 0 {
		return fmt.Sprintf("the store holds %d hashes of hash tile %d/%d, the signed tree of size %d has %d: the database was damaged or changed behind sumd's back",
			e.Held, e.ID.L, e.ID.N, e.Size, tileWidth(e.ID, e.Size))
	}
	return fmt.Sprintf("hash tile %d/%d as stored, or a tile above it, does not hash to the signed tree of size %d: the database was damaged or changed behind sumd's back",
		e.ID.L, e.ID.N, e.Size)
}

// Is makes it an ErrCorrupt.
func (e *CorruptTileError) Is(target error) bool { return target == ErrCorrupt }

// authenticTile returns the first w hashes of tile id of the published
// tree (w at most its width in tree), authenticated against tree's hash
// as x/mod's TileHashReader authenticates a downloaded tile: its hashes
// hash up to an entry of its parent tile, and so on up to the tiles of
// the tree's right edge, which hash to the root. A tile that fails is a *CorruptTileError,
// logged and counted.
//
// A full tile never changes once written, so it is authenticated once per
// process (l.authentic) and then read alone. A partial tile is rewritten by
// every commit that grows it, so what was authenticated of it is not what
// the store holds later: the partial tiles authenticated last, one per
// level, are kept in memory (l.authentic.edge) and served from there, and
// a tile wider than the one kept is read and authenticated anew, with the
// tree's right edge, in one store read.
func (l *Log) authenticTile(ctx context.Context, tree tlog.Tree, id TileID, w int) ([]byte, error) {
	if data := l.authentic.edgeTile(id, w); data != nil {
		return data, nil
	}
	data, err := l.readAuthentic(ctx, tree, id)
	if err != nil {
		return nil, err
	}
	return data[:w*tlog.HashSize], nil
}

// readAuthentic reads tile id, cut to its width in tree, and authenticates
// it (authenticTile).
func (l *Log) readAuthentic(ctx context.Context, tree tlog.Tree, id TileID) ([]byte, error) {
	w := tileWidth(id, tree.N)
	if w == 1<<tileHeight && l.authentic.has(id) {
		data, err := l.store.ReadTiles(ctx, []TileID{id})
		if err != nil {
			return nil, fmt.Errorf("failed to read tile %d/%d: %w", id.L, id.N, err)
		}
		if len(data[0]) < tileBytes {
			return nil, l.corruptTile(&CorruptTileError{ID: id, Size: tree.N, Held: len(data[0]) / tlog.HashSize}, []TileID{id})
		}
		return data[0][:tileBytes:tileBytes], nil
	}
	return l.checkTile(tree, &authReader{ctx: ctx, l: l, n: tree.N, want: id, keep: true})
}

// checkTile reads tile r.want of tree through r, cut to its width in tree,
// and authenticates it (authenticTile). A tile that fails is a
// *CorruptTileError, logged, counted and dropped from the store's cache
// with the tiles read to check it.
func (l *Log) checkTile(tree tlog.Tree, r *authReader) ([]byte, error) {
	id := r.want
	last := tlog.StoredHashIndex(id.L*tileHeight, id.N<<tileHeight+int64(tileWidth(id, tree.N)-1))
	_, err := tlog.TileHashReader(tree, r).ReadHashes([]int64{last})
	switch {
	case r.err != nil: // the store failed, or holds a tile cut short
		var short *CorruptTileError
		if errors.As(r.err, &short) {
			return nil, l.corruptTile(short, r.read)
		}
		return nil, r.err
	case err != nil: // "downloaded inconsistent tile"
		return nil, l.corruptTile(&CorruptTileError{ID: id, Size: tree.N, Held: -1}, r.read)
	case r.data == nil:
		return nil, fmt.Errorf("tile %d/%d of tree %d was not read to authenticate it", id.L, id.N, tree.N) // a bug
	}
	return r.data, nil
}

// proofDamage tells damage from a fork when a consistency proof of tree
// over the tree of size small failed on tiles read from the store, as they
// are: it reads again each tile the proof reads and authenticates it
// against tree as authenticTile does, remembering nothing. It returns the
// *CorruptTileError of the first that does not hash to tree (logged,
// counted and dropped from the store's cache with those it was checked
// through), a *readError if the store failed to read, or nil if each
// does: then the proof failed on sound data, and the trees fork. (An
// extension's proof reads its tiles authenticated: see extensionHashes.)
func (l *Log) proofDamage(ctx context.Context, tree tlog.Tree, small int64) error {
	var indexes []int64
	tlog.ProveTree(tree.N, small, tlog.HashReaderFunc(func(x []int64) ([]tlog.Hash, error) {
		indexes = x // which hashes the proof reads, not what they are
		return make([]tlog.Hash, len(x)), nil
	}))
	checked := map[TileID]bool{}
	for _, x := range indexes {
		t := tlog.TileForIndex(tileHeight, x)
		id := TileID{t.L, t.N}
		if checked[id] {
			continue
		}
		checked[id] = true
		r := &authReader{ctx: ctx, l: l, n: tree.N, want: id}
		_, err := l.checkTile(tree, r)
		var corrupt *CorruptTileError
		switch {
		case errors.As(err, &corrupt):
			return err
		case err != nil:
			return &readError{err}
		}
	}
	return nil
}

// blameTile returns, for a record that does not hash to its leaf (err, a
// *CorruptRecordError), the *CorruptTileError of its level-0 tile as
// stored if that tile does not hash to tree: the leaf was damaged, maybe
// not the record. Any other err is returned as it is.
func (l *Log) blameTile(ctx context.Context, tree tlog.Tree, err error) error {
	var cr *CorruptRecordError
	if !errors.As(err, &cr) {
		return err
	}
	if _, terr := l.readAuthentic(ctx, tree, TileID{0, cr.ID >> tileHeight}); errors.Is(terr, ErrCorrupt) {
		return terr
	}
	return err
}

// corruptTile logs and counts e, drops the tiles read to authenticate it
// from the store's cache (any of them may be the damaged one), and returns
// it.
func (l *Log) corruptTile(e *CorruptTileError, read []TileID) error {
	cmp.Or(l.log, slog.Default()).Error("a hash tile in the database does not hash to the signed tree: the database was damaged or tampered with; it is not served",
		"err", e)
	l.metrics.corruptRecord()
	l.forget(nil, nil, read)
	return e
}

// An authReader is the tlog.TileReader that authenticTile hands to x/mod's
// TileHashReader: it reads the tiles of the tree of size n from the store
// (given ones instead, if any), cut to their width, and keeps the wanted
// one once authenticated.
type authReader struct {
	ctx  context.Context
	l    *Log
	n    int64
	want TileID
	// given are tiles of the tree read instead of the store's: those a
	// commit was built on, kept in memory (sealDamage).
	given map[tlog.Tile][]byte
	// keep says the tree is the published one: the tiles authenticated are
	// remembered (Log.authentic). Others' are not.
	keep bool
	data []byte   // want's, once authenticated
	err  error    // why ReadTiles failed
	read []TileID // the tiles read from the store
}

var _ tlog.TileReader = (*authReader)(nil)

func (r *authReader) Height() int { return tileHeight }

func (r *authReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	if len(r.given) == 0 {
		return r.readStored(tiles)
	}
	out := make([][]byte, len(tiles))
	var stored []tlog.Tile
	var at []int // the place in tiles of each of stored
	for i, t := range tiles {
		if d, ok := r.given[t]; ok {
			out[i] = d
		} else {
			stored, at = append(stored, t), append(at, i)
		}
	}
	if len(stored) == 0 {
		return out, nil
	}
	data, err := r.readStored(stored)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = data[j]
	}
	return out, nil
}

// readStored reads tiles from the store, cut to their width.
func (r *authReader) readStored(tiles []tlog.Tile) ([][]byte, error) {
	ids := make([]TileID, len(tiles))
	for i, t := range tiles {
		ids[i] = TileID{t.L, t.N}
	}
	r.read = append(r.read, ids...)
	data, err := r.l.store.ReadTiles(r.ctx, ids)
	if err != nil {
		r.err = fmt.Errorf("failed to read tiles %v: %w", ids, err)
		return nil, r.err
	}
	for i, t := range tiles {
		if len(data[i]) < t.W*tlog.HashSize {
			r.err = &CorruptTileError{ID: ids[i], Size: r.n, Held: len(data[i]) / tlog.HashSize}
			return nil, r.err
		}
		data[i] = data[i][: t.W*tlog.HashSize : t.W*tlog.HashSize]
	}
	return data, nil
}

// SaveTiles is told of the tiles that hashed up to the tree: the full ones
// are remembered as authentic, the partial ones kept, if the tree is the
// published one.
func (r *authReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	for i, t := range tiles {
		id := TileID{t.L, t.N}
		switch {
		case !r.keep:
		case t.W == 1<<tileHeight:
			r.l.authentic.add(id)
		default:
			r.l.authentic.keepEdge(id, data[i])
		}
		if id == r.want {
			r.data = data[i]
		}
	}
}

// A tileSet is a set of full hash tiles, one bit per tile and level: at
// 50 million records, 24 KiB for the 195,000 tiles of level 0. It only
// holds tiles of the published tree, so it is bounded by its size. has is
// lock-free; add, rare (once per tile and process), takes a lock.
type tileSet struct {
	mu     sync.Mutex // serialises add, so that no bit is lost when words grow
	levels [tileLevels]atomic.Pointer[[]atomic.Uint64]
	// edge is, per level, the partial tile authenticated last: its data
	// were authenticated, not the store's copy, which later commits
	// rewrite. A prefix of it is the same tile in any later tree.
	edge [tileLevels]atomic.Pointer[Tile]
}

// edgeTile returns the first w hashes of tile id if the partial tile kept
// for its level holds them, else nil.
func (s *tileSet) edgeTile(id TileID, w int) []byte {
	if id.L < 0 || id.L >= tileLevels {
		return nil
	}
	t := s.edge[id.L].Load()
	if t == nil || t.TileID != id || len(t.Data) < w*tlog.HashSize {
		return nil
	}
	return t.Data[: w*tlog.HashSize : w*tlog.HashSize]
}

// keepEdge keeps data, partial tile id as authenticated, in the place of
// the one kept for its level unless that is further right. Concurrent
// authentications may keep a narrower one than the last: it is only read
// again.
func (s *tileSet) keepEdge(id TileID, data []byte) {
	if id.L < 0 || id.L >= tileLevels {
		return
	}
	if t := s.edge[id.L].Load(); t != nil && (t.N > id.N || t.N == id.N && len(t.Data) >= len(data)) {
		return
	}
	s.edge[id.L].Store(&Tile{id, data})
}

// tileLevels is how many levels of tiles a tileSet holds: levels up to 6
// (2⁶⁴ records would be needed for a level-7 tile). Tiles of other levels
// are never remembered.
const tileLevels = 7

func (s *tileSet) has(id TileID) bool {
	if id.L < 0 || id.L >= tileLevels || id.N < 0 {
		return false
	}
	p := s.levels[id.L].Load()
	if p == nil || id.N/64 >= int64(len(*p)) {
		return false
	}
	return (*p)[id.N/64].Load()&(1<<(id.N%64)) != 0
}

func (s *tileSet) add(id TileID) {
	if id.L < 0 || id.L >= tileLevels || id.N < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var words []atomic.Uint64
	if p := s.levels[id.L].Load(); p != nil {
		words = *p
	}
	if w := int(id.N / 64); w >= len(words) {
		grown := make([]atomic.Uint64, max(w+1, len(words)+len(words)/4))
		for i := range words {
			grown[i].Store(words[i].Load())
		}
		words = grown
		s.levels[id.L].Store(&words)
	}
	words[id.N/64].Or(1 << (id.N % 64))
}
