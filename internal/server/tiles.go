package server

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// tileHeight is the only tile height served: the one the go command uses.
const tileHeight = 8

// tile serves hash tiles tile/8/<L>/<N>[.p/<W>] and data tiles
// tile/8/data/<N>[.p/<W>], with x/mod's content types. Full tiles come from
// the cache once read: they never change.
func (s *Server) tile(ctx context.Context, arg string) (*reply, error) {
	route := tileRoute(arg)
	if e, ok := s.cache.get(route, arg); ok {
		s.metrics.cacheHit(route)
		return &e.reply, nil
	}
	s.metrics.cacheMiss(route)
	t, err := parseTile(arg)
	if err != nil {
		return nil, err
	}
	ctype, read := hdrOctetStream, s.hashTile
	if t.L == -1 {
		ctype, read = hdrTextPlain, s.dataTile
	}
	data, err := read(ctx, t)
	if err != nil {
		return nil, err
	}
	if t.W < 1<<t.H {
		return &reply{ctype: ctype, cache: s.hdrShort, body: data}, nil
	}
	// The ops must not modify what they returned (sumdb.ServerOps): the
	// bytes are the tile's for good.
	return &s.cache.put(route, arg, 0, &reply{ctype: ctype, cache: s.hdrImmutable, body: data}).reply, nil
}

// parseTile parses a tile path and rejects tiles the ops must never see.
func parseTile(path string) (tlog.Tile, error) {
	t, err := tlog.ParseTilePath(path)
	if err != nil {
		return tlog.Tile{}, badRequest("%v", err)
	}
	if t.H != tileHeight {
		return tlog.Tile{}, &httpError{http.StatusNotFound, fmt.Sprintf(
			"not found: %s: tile height %d is not served; this database uses height %d", path, t.H, tileHeight)}
	}
	if !tileInRange(t) {
		return tlog.Tile{}, &httpError{http.StatusNotFound, "not found: " + path + ": beyond any possible tree"}
	}
	return t, nil
}

// tileInRange reports whether every record under t has an index below 2⁶²,
// so that neither our arithmetic nor tlog's stored-hash indexes (about twice
// the record index) can overflow. Levels above 6 would need 2⁶⁴ records.
func tileInRange(t tlog.Tile) bool {
	level := max(t.L, 0) // data tiles (L = -1) cover what level 0 covers
	if level > 6 || t.N < 0 {
		return false
	}
	return t.N < int64(1)<<(62-t.H*(level+1))
}

// hashTile reads hash tile t and checks its size.
func (s *Server) hashTile(ctx context.Context, t tlog.Tile) ([]byte, error) {
	data, err := s.ops.ReadTileData(ctx, t)
	if err != nil {
		return nil, notFound(fmt.Errorf("failed to read %s: %w", t.Path(), err), tileNotFound(t))
	}
	if want := t.W * tlog.HashSize; len(data) != want {
		return nil, fmt.Errorf("ReadTileData(%s) returned %d bytes, want %d", t.Path(), len(data), want)
	}
	return data, nil
}

// dataTile formats records N×256 … N×256+W-1 as x/mod does: each record
// followed by a blank line, without its id line (see tlog.FormatRecord).
// It checks only that each record splits off again (non-empty, ending in
// a newline, no blank line), not tlog.FormatRecord's character rules: the
// log validated what it stored (a primary formats its records, a mirror
// takes the origin's byte for byte), clients check every record against
// its leaf hash, and formatting each record anew was most of the cost of
// a data tile the cache does not hold yet (a mirror catching up reads
// every tile once).
func (s *Server) dataTile(ctx context.Context, t tlog.Tile) ([]byte, error) {
	start := t.N << t.H
	records, err := s.ops.ReadRecords(ctx, start, int64(t.W))
	if err != nil {
		return nil, notFound(fmt.Errorf("failed to read records for %s: %w", t.Path(), err), tileNotFound(t))
	}
	if len(records) != t.W {
		return nil, fmt.Errorf("ReadRecords(%d, %d) returned %d records", start, t.W, len(records))
	}
	size := 0
	for _, text := range records {
		size += len(text) + 1
	}
	data := make([]byte, 0, size)
	for i, text := range records {
		if len(text) == 0 || text[len(text)-1] != '\n' || bytes.Contains(text, []byte("\n\n")) {
			return nil, fmt.Errorf("record %d is malformed: not one or more lines", start+int64(i))
		}
		data = append(data, text...)
		data = append(data, '\n')
	}
	return data, nil
}

func tileNotFound(t tlog.Tile) string {
	return "not found: " + t.Path() + ": beyond the current tree"
}

// tileRoute labels [/]tile/<H>/data/… as data_tile and other tiles as tile.
func tileRoute(rest string) string {
	rest = strings.TrimPrefix(rest, "/")
	_, after, _ := strings.Cut(strings.TrimPrefix(rest, "tile/"), "/")
	if strings.HasPrefix(after, "data/") {
		return routeDataTile
	}
	return routeTile
}
