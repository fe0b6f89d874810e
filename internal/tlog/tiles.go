package tlog

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// A tileReader reads hashes from hash tiles, seeing the tiles staged by the
// current batch first. It implements tlog.HashReader.
type tileReader struct {
	read  func(TileID) ([]byte, error) // committed data of a tile, or nil
	dirty map[TileID][]byte            // tiles staged by the current batch
	// edge is, per tree level, the last hash appendRecord computed at that
	// level and its stored-hash index: the left siblings the next record
	// needs (the tree's right edge), which ReadHashes would otherwise
	// recompute from tiles with HashFromTile for every record appended.
	edge [64]edgeHash
}

// An edgeHash is a stored hash and its index; index 0 with a zero hash is
// unset (index 0, record 0's leaf, is never read again once record 1
// exists, and is read from its tile until then).
type edgeHash struct {
	index int64
	hash  tlog.Hash
}

var _ tlog.HashReader = (*tileReader)(nil)

// storeTiles returns a tileReader of the tiles of the tree of size n held
// in s: each tile is cut to the width the tree gives it, so that data a
// store holds beyond the tree (another writer's) is never read.
func storeTiles(ctx context.Context, s Store, n int64) *tileReader {
	return &tileReader{read: func(id TileID) ([]byte, error) {
		return readTile(ctx, s, id, n)
	}}
}

// readTile reads tile id of the tree of size n from s, cut to its width in
// that tree. A tile the tree does not reach is nil.
func readTile(ctx context.Context, s Store, id TileID, n int64) ([]byte, error) {
	data, err := readTiles(ctx, s, []TileID{id}, n)
	if err != nil {
		return nil, err
	}
	return data[0], nil
}

// readTiles is readTile of several tiles, in one store read.
func readTiles(ctx context.Context, s Store, ids []TileID, n int64) ([][]byte, error) {
	out := make([][]byte, len(ids))
	var read []TileID
	var at []int // the place in ids of each of read
	for i, id := range ids {
		if tileWidth(id, n) > 0 {
			read, at = append(read, id), append(at, i)
		}
	}
	if len(read) == 0 {
		return out, nil
	}
	data, err := s.ReadTiles(ctx, read)
	if err != nil {
		if len(read) == 1 {
			return nil, &readError{fmt.Errorf("failed to read tile %d/%d: %w", read[0].L, read[0].N, err)}
		}
		return nil, &readError{fmt.Errorf("failed to read %d tiles: %w", len(read), err)}
	}
	for j, id := range read {
		w := tileWidth(id, n)
		if len(data[j]) < w*tlog.HashSize {
			return nil, corruptData("store holds %d hashes of tile %d/%d, the tree of size %d has %d", len(data[j])/tlog.HashSize, id.L, id.N, n, w)
		}
		out[at[j]] = data[j][: w*tlog.HashSize : w*tlog.HashSize]
	}
	return out, nil
}

// tile returns the data of tile id, possibly empty. The slice must not be
// modified.
func (r *tileReader) tile(id TileID) ([]byte, error) {
	if d, ok := r.dirty[id]; ok {
		return d, nil
	}
	return r.read(id)
}

// ReadHashes returns the hashes at the given stored-hash indexes, computing
// the levels between tile levels with tlog.HashFromTile.
func (r *tileReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, index := range indexes {
		if level, _ := tlog.SplitStoredHashIndex(index); level < len(r.edge) && r.edge[level].index == index && index != 0 {
			out[i] = r.edge[level].hash
			continue
		}
		t := tlog.TileForIndex(tileHeight, index)
		data, err := r.tile(TileID{t.L, t.N})
		if err != nil {
			return nil, err
		}
		if len(data) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("hash %d is not stored (tile %s has %d hashes)", index, t.Path(), len(data)/tlog.HashSize)
		}
		t.W = len(data) / tlog.HashSize // a wider tile is fine for HashFromTile
		h, err := tlog.HashFromTile(t, data, index)
		if err != nil {
			return nil, fmt.Errorf("failed to read hash %d from tile %s: %w", index, t.Path(), err)
		}
		out[i] = h
	}
	return out, nil
}

// appendHash appends h, the hash at tree level 8*level and index i, to its
// tile. Hashes arrive strictly in order, so the tile must hold exactly the
// hashes before it.
func (r *tileReader) appendHash(level int, i int64, h tlog.Hash) error {
	id := TileID{level, i >> tileHeight}
	off := int(i & (1<<tileHeight - 1))
	data, ok := r.dirty[id]
	if !ok {
		stored, err := r.read(id)
		if err != nil {
			return err
		}
		data = append(make([]byte, 0, tileBytes), stored...)
	}
	if len(data) != off*tlog.HashSize {
		return fmt.Errorf("tile %d/%d holds %d hashes, cannot append hash %d", level, id.N, len(data)/tlog.HashSize, off)
	}
	if r.dirty == nil {
		r.dirty = map[TileID][]byte{}
	}
	r.dirty[id] = append(data, h[:]...)
	return nil
}

// appendRecord appends the hashes that record id with leaf hash leaf adds:
// StoredHashes gives the hash at level l (index id>>l) for each level the
// record completes, and tiles keep the levels divisible by 8.
func (r *tileReader) appendRecord(id int64, leaf tlog.Hash) error {
	hashes, err := tlog.StoredHashesForRecordHash(id, leaf, r)
	if err != nil {
		return fmt.Errorf("failed to compute hashes of record %d: %w", id, err)
	}
	for level := 0; level < len(hashes); level += tileHeight {
		if err := r.appendHash(level/tileHeight, id>>level, hashes[level]); err != nil {
			return err
		}
	}
	for level, h := range hashes {
		r.edge[level] = edgeHash{tlog.StoredHashIndex(level, id>>level), h}
	}
	return nil
}

// staged returns the tiles the batch changed, in a stable order.
func (r *tileReader) staged() []Tile {
	ids := slices.SortedFunc(maps.Keys(r.dirty), func(a, b TileID) int {
		return cmp.Or(cmp.Compare(a.L, b.L), cmp.Compare(a.N, b.N))
	})
	out := make([]Tile, len(ids))
	for i, id := range ids {
		out[i] = Tile{id, r.dirty[id]}
	}
	return out
}

// A readError is a store's failure to read: a fault of the moment (a lost
// connection), not of the data, so it fails a batch but never stops the log.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }
