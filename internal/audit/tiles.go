package audit

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"
)

// tileHeight is the height of every tile of the protocol (sum.golang.org's
// and the go command's).
const tileHeight = 8

// tileWidth is the number of hashes in a full tile, and of records in a
// full data tile.
const tileWidth = 1 << tileHeight

// A tileReader fetches hash tiles for tlog.TileHashReader, which
// authenticates them against a signed tree before any hash is used. It
// keeps every tile it fetched for the run: tiles of one tree never change,
// and the full audit asks for the same right-edge tiles after every data
// tile. Unauthenticated bytes in memory are harmless, since every read
// through TileHashReader authenticates them again; nothing is written to
// disk.
type tileReader struct {
	ctx      context.Context
	f        *fetcher
	parallel int

	mu    sync.Mutex
	cache map[tlog.Tile][]byte
}

var _ tlog.TileReader = (*tileReader)(nil)

func newTileReader(ctx context.Context, f *fetcher, parallel int) *tileReader {
	return &tileReader{ctx: ctx, f: f, parallel: parallel, cache: map[tlog.Tile][]byte{}}
}

func (r *tileReader) Height() int { return tileHeight }

// ReadTiles fetches the tiles not yet cached, at most r.parallel at a time.
func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	g, ctx := errgroup.WithContext(r.ctx)
	g.SetLimit(r.parallel)
	for i, t := range tiles {
		if d, ok := r.cached(t); ok {
			data[i] = d
			continue
		}
		g.Go(func() error {
			d, err := r.fetch(ctx, t)
			if err != nil {
				return err
			}
			r.mu.Lock()
			r.cache[t] = d
			r.mu.Unlock()
			data[i] = d
			return nil
		})
	}
	return data, g.Wait()
}

func (r *tileReader) cached(t tlog.Tile) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.cache[t]
	return d, ok
}

// fetch gets one hash tile. Like the go command, it falls back to the full
// tile when a partial one is gone (a server may keep only the latest
// width) and keeps the prefix; a full tile of the wrong size is returned
// as is, for TileHashReader to reject.
func (r *tileReader) fetch(ctx context.Context, t tlog.Tile) ([]byte, error) {
	data, err := r.f.get(ctx, "/"+t.Path(), maxHashTile)
	full := t
	full.W = tileWidth
	if err == nil || t == full || !notFound(err) {
		return data, err
	}
	data, ferr := r.f.get(ctx, "/"+full.Path(), maxHashTile)
	if ferr != nil {
		return nil, err // the partial tile's error says what was asked for
	}
	if len(data) != full.W*tlog.HashSize {
		return data, nil
	}
	return data[:t.W*tlog.HashSize], nil
}

// SaveTiles is a no-op: tiles are kept in memory for the run only.
func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// dataTile returns the coordinates of data tile n of a tree of size size:
// full, or partial (.p/W) for the last, unfinished tile.
func dataTile(n, size int64) tlog.Tile {
	w := min(size-n*tileWidth, tileWidth)
	return tlog.Tile{H: tileHeight, L: -1, N: n, W: int(w)}
}

// fetchDataTile gets data tile t. A partial data tile that is gone is
// taken from the full tile's first t.W records, as for hash tiles.
func fetchDataTile(ctx context.Context, f *fetcher, t tlog.Tile) ([][]byte, error) {
	data, err := f.get(ctx, "/"+t.Path(), maxDataTile)
	if err == nil {
		return splitDataTile(data, t.W)
	}
	full := t
	full.W = tileWidth
	if t == full || !notFound(err) {
		return nil, err
	}
	data, ferr := f.get(ctx, "/"+full.Path(), maxDataTile)
	if ferr != nil {
		return nil, err
	}
	recs, serr := splitDataTile(data, tileWidth)
	if serr != nil {
		return nil, serr
	}
	return recs[:t.W], nil
}

// A tileFormatError is a data tile that does not split into its records.
type tileFormatError struct{ msg string }

func (e *tileFormatError) Error() string { return e.msg }

// splitDataTile splits a data tile into its w records. x/mod's format
// (tlog.FormatRecord without the id line, a quirk of its first release)
// is each record's text followed by a blank line; record text is
// non-empty, ends in a newline and never holds a blank line, so the tile
// splits after each "\n\n", left to right, in exactly one way. Each
// returned record keeps its final newline, as hashed into the tree, and
// aliases data.
func splitDataTile(data []byte, w int) ([][]byte, error) {
	recs := make([][]byte, 0, w)
	for len(data) > 0 {
		i := bytes.Index(data, []byte("\n\n"))
		if i < 0 {
			return nil, &tileFormatError{fmt.Sprintf("data tile ends without the blank line after record %d", len(recs))}
		}
		if len(recs) == w {
			return nil, &tileFormatError{fmt.Sprintf("data tile holds more than the %d records of its width", w)}
		}
		recs = append(recs, data[:i+1:i+1])
		data = data[i+2:]
	}
	if len(recs) != w {
		return nil, &tileFormatError{fmt.Sprintf("data tile holds %d records, want %d", len(recs), w)}
	}
	return recs, nil
}
