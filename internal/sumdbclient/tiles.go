package sumdbclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"
)

// TileHeight is the height of every tile of the protocol (sum.golang.org's
// and the go command's).
const TileHeight = 8

// TileWidth is the number of hashes in a full tile, and of records in a
// full data tile.
const TileWidth = 1 << TileHeight

// A TileReader fetches hash tiles for tlog.TileHashReader, which
// authenticates them against a signed tree before any hash is used. It
// keeps every tile it fetched until Forget: tiles of one tree never
// change, and an audit asks for the same right-edge tiles again and again.
// Unauthenticated bytes in memory are harmless, since every read through
// TileHashReader authenticates them again. A tile not of its length is a
// failure to fetch (CheckHashTile), never cached: tlog would take it for a
// tile that does not match the signed tree, a finding, where it is most
// likely a proxy's page.
type TileReader struct {
	// Quote is CheckHashTile's quote for the tiles fetched: false where a
	// redirect may have led to a host only this process reaches.
	Quote bool

	ctx      context.Context
	c        *Client
	parallel int

	mu    sync.Mutex
	cache map[tlog.Tile][]byte
}

var _ tlog.TileReader = (*TileReader)(nil)

// NewTileReader returns a reader fetching from c, at most parallel tiles at
// a time, with ctx.
func NewTileReader(ctx context.Context, c *Client, parallel int) *TileReader {
	return &TileReader{ctx: ctx, c: c, parallel: max(parallel, 1), cache: map[tlog.Tile][]byte{}}
}

// Height implements tlog.TileReader.
func (r *TileReader) Height() int { return TileHeight }

// ReadTiles fetches the tiles not yet cached, at most r.parallel at a time.
func (r *TileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data := make([][]byte, len(tiles))
	g, ctx := errgroup.WithContext(r.ctx)
	g.SetLimit(r.parallel)
	for i, t := range tiles {
		if d, ok := r.Cached(t); ok {
			data[i] = d
			continue
		}
		g.Go(func() error {
			d, err := r.c.HashTile(ctx, t)
			if err == nil {
				err = CheckHashTile(t, d, r.Quote)
			}
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

// Cached returns tile t if it was fetched and not forgotten.
func (r *TileReader) Cached(t tlog.Tile) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.cache[t]
	return d, ok
}

// Forget drops the cached tiles for which drop returns true: a follower
// walking a large tree keeps memory bounded by dropping the level-0 tiles
// it is done with.
func (r *TileReader) Forget(drop func(tlog.Tile) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t := range r.cache {
		if drop(t) {
			delete(r.cache, t)
		}
	}
}

// SaveTiles is a no-op: tiles are kept in memory only.
func (r *TileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// HashTile fetches hash tile t, unverified. Like the go command, it falls
// back to the full tile when a partial one is gone (a server may keep only
// the latest width) and keeps the prefix; a full tile of the wrong size is
// returned as is: TileReader refuses it (CheckHashTile).
func (c *Client) HashTile(ctx context.Context, t tlog.Tile) ([]byte, error) {
	data, err := c.Get(ctx, "/"+t.Path(), MaxHashTile)
	full := t
	full.W = TileWidth
	if err == nil || t == full || !NotFound(err) {
		return data, err
	}
	data, ferr := c.Get(ctx, "/"+full.Path(), MaxHashTile)
	if ferr != nil {
		return nil, err // the partial tile's error says what was asked for
	}
	if len(data) != full.W*tlog.HashSize {
		return data, nil
	}
	return data[:t.W*tlog.HashSize], nil
}

// DataTileOf returns the coordinates of data tile n of a tree of size
// size: full, or partial (.p/W) for the last, unfinished tile.
func DataTileOf(n, size int64) tlog.Tile {
	w := min(size-n*TileWidth, TileWidth)
	return tlog.Tile{H: TileHeight, L: -1, N: n, W: int(w)}
}

// DataTile fetches data tile t and splits it into its t.W records,
// unverified. A partial data tile that is gone is taken from the full
// tile's first t.W records, as for hash tiles. A tile that does not split
// is a *TileFormatError.
func (c *Client) DataTile(ctx context.Context, t tlog.Tile) ([][]byte, error) {
	data, err := c.Get(ctx, "/"+t.Path(), MaxDataTile)
	if err == nil {
		return SplitDataTile(data, t.W)
	}
	full := t
	full.W = TileWidth
	if t == full || !NotFound(err) {
		return nil, err
	}
	data, ferr := c.Get(ctx, "/"+full.Path(), MaxDataTile)
	if ferr != nil {
		return nil, err
	}
	recs, serr := SplitDataTile(data, TileWidth)
	if serr != nil {
		return nil, serr
	}
	return recs[:t.W], nil
}

// A TileFormatError is a data tile that does not split into its records.
// Data is the tile (a caller may tell a page that is no data tile at all
// from a tile of records that does not split).
type TileFormatError struct {
	Msg  string
	Data []byte
}

func (e *TileFormatError) Error() string { return e.Msg }

// SplitDataTile splits a data tile into its w records. x/mod's format
// (tlog.FormatRecord without the id line, a quirk of its first release)
// is each record's text followed by a blank line; record text is
// non-empty, ends in a newline and never holds a blank line, so the tile
// splits after each "\n\n", left to right, in exactly one way. Each
// returned record keeps its final newline, as hashed into the tree, and
// aliases data.
func SplitDataTile(data []byte, w int) ([][]byte, error) {
	tile := data
	recs := make([][]byte, 0, max(w, 0))
	for len(data) > 0 {
		i := bytes.Index(data, []byte("\n\n"))
		if i < 0 {
			return nil, &TileFormatError{fmt.Sprintf("data tile ends without the blank line after record %d", len(recs)), tile}
		}
		if len(recs) == w {
			return nil, &TileFormatError{fmt.Sprintf("data tile holds more than the %d records of its width", w), tile}
		}
		recs = append(recs, data[:i+1:i+1])
		data = data[i+2:]
	}
	if len(recs) != w {
		return nil, &TileFormatError{fmt.Sprintf("data tile holds %d records, want %d", len(recs), w), tile}
	}
	return recs, nil
}

// CheckHashTile returns a failure to fetch t (NotProtocol, quoting the
// body's first bytes if quote) if data is not of hash tile t's length:
// x/mod's tlog refuses such a tile as one it cannot use, not as one that
// does not authenticate, and it is what the page of something between
// the client and the database (a proxy's, a login page) is. Nothing in it
// claims to be the database's hashes.
func CheckHashTile(t tlog.Tile, data []byte, quote bool) error {
	if len(data) != t.W*tlog.HashSize {
		return NotProtocol("/"+t.Path(), fmt.Sprintf("a hash tile of %d bytes", t.W*tlog.HashSize), data, quote)
	}
	return nil
}

// CheckDataTile sorts err, a failure to read data tile t: a data tile
// that does not split into its records (a *TileFormatError) and does not
// even begin with a record's line (RecordShaped) is no data tile at all,
// but the page of something between the client and the database, and
// becomes a failure to fetch t (NotProtocol, quoting the body's first
// bytes if quote), as CheckHashTile's is; one that begins as the
// database's records do stays a *TileFormatError: it claims to hold them.
// Any other err is returned as it is.
func CheckDataTile(t tlog.Tile, err error, quote bool) error {
	var tfe *TileFormatError
	if errors.As(err, &tfe) && !RecordShaped(tfe.Data) {
		return NotProtocol("/"+t.Path(), "a data tile", tfe.Data, quote)
	}
	return err
}

// RecordShaped reports whether data begins as a record of a Go checksum
// database does: a go.sum line, "<module> <version> <hash>", its hash
// "<algorithm>:<base64>". A data tile that does not split into its
// records (a *TileFormatError) but begins so claims to hold the
// database's records; one that does not is no data tile at all.
func RecordShaped(data []byte) bool {
	line, _, _ := bytes.Cut(data[:min(len(data), maxRecordLine)], []byte("\n"))
	f := bytes.Fields(line)
	return len(f) == 3 && bytes.Count(line, []byte(" ")) == 2 && bytes.IndexByte(f[2], ':') > 0
}

// maxRecordLine caps the first line RecordShaped reads: a module path is
// at most a few hundred bytes.
const maxRecordLine = 4096
