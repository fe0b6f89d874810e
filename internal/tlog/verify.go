package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// A VerifyMode says how much of the stored log Open re-verifies against the
// signed tree head before serving it.
type VerifyMode int

const (
	// VerifyTail recomputes the root from the stored tiles and re-hashes the
	// last data tile's records: it catches a head that does not match the
	// tree and a torn tail, in time independent of the log's size.
	VerifyTail VerifyMode = iota
	// VerifyFull authenticates every stored tile against the signed root,
	// re-parses and re-hashes every record against its leaf, checks the
	// index entry of every record, and that every index entry names a
	// record of its module version.
	VerifyFull
)

func (m VerifyMode) String() string {
	if m == VerifyFull {
		return "full"
	}
	return "tail"
}

// ErrCorrupt marks a database whose stored tree does not match its signed
// head. Serving it could show clients an inconsistent history, so Open
// refuses.
var ErrCorrupt = errors.New("database does not match its signed tree head")

// corrupt marks err, from a verification, as ErrCorrupt: the stored tree
// does not match its head. A failure to read (a store unavailable, a
// context ended) says nothing about the data, and an error that already
// is ErrCorrupt (a bbolt *DamagedError, with its own advice) says more:
// both are returned as they are, so that the operator is not told to
// restore a database that is only out of reach.
func corrupt(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrUnavailable),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}

// verify checks the tree held in s against tree, the signed head's. dense
// says every record must be held (a primary); a mirror's may be sparse.
func verify(ctx context.Context, s Store, tree tlog.Tree, mode VerifyMode, dense bool) error {
	r := storeTiles(ctx, s, tree.N)
	root, err := tlog.TreeHash(tree.N, r)
	if err != nil {
		return err
	}
	if root != tree.Hash {
		return fmt.Errorf("stored tiles give root %v for tree %d, signed head says %v", root, tree.N, tree.Hash)
	}
	if tree.N == 0 {
		return nil
	}
	if mode == VerifyFull {
		if err := verifyFull(ctx, s, tree, dense); err != nil {
			return err
		}
		return verifyIndex(ctx, s, tree.N)
	}
	// The last data tile, as it is now.
	last := tlog.Tile{H: tileHeight, L: 0, N: (tree.N - 1) >> tileHeight, W: tileWidth(TileID{0, (tree.N - 1) >> tileHeight}, tree.N)}
	data, err := r.tile(TileID{0, last.N})
	if err != nil {
		return err
	}
	return verifyRecords(ctx, s, last, data, dense)
}

// verifyFull authenticates every tile of the tree, a group of 256 level-0
// tiles (and their parents) at a time, with x/mod's TileHashReader, which
// checks each against the root as the go command does; then each record of
// the group against its leaf hash, and its index entry.
func verifyFull(ctx context.Context, s Store, tree tlog.Tree, dense bool) error {
	tiles := tlog.NewTiles(tileHeight, 0, tree.N)
	for group := range slices.Chunk(tiles, 1<<tileHeight) {
		// A store may not look at ctx (bbolt): a stop ends the loop here.
		if err := ctx.Err(); err != nil {
			return err
		}
		tr := &verifiedTiles{ctx: ctx, s: s, saved: map[tlog.Tile][]byte{}}
		indexes := make([]int64, len(group))
		for i, t := range group {
			indexes[i] = tlog.StoredHashIndex(t.L*tileHeight, t.N<<tileHeight)
		}
		if _, err := tlog.TileHashReader(tree, tr).ReadHashes(indexes); err != nil {
			return fmt.Errorf("tiles %s to %s: %w", group[0].Path(), group[len(group)-1].Path(), err)
		}
		for _, t := range group {
			if t.L != 0 {
				continue
			}
			if err := verifyRecords(ctx, s, t, tr.saved[t], dense); err != nil {
				return err
			}
		}
	}
	return nil
}

// verifyRecords checks the records of level-0 tile t against its data, the
// leaf hashes, and their index entries. A record the store lacks is an
// error only if dense.
func verifyRecords(ctx context.Context, s Store, t tlog.Tile, data []byte, dense bool) error {
	if len(data) != t.W*tlog.HashSize {
		return fmt.Errorf("tile %s was not read", t.Path())
	}
	ids := make([]int64, t.W)
	for i := range ids {
		ids[i] = t.N<<tileHeight + int64(i)
	}
	texts, err := s.ReadRecords(ctx, ids)
	if err != nil {
		return err
	}
	var keys []string
	var keyed []int64
	for i, text := range texts {
		switch {
		case text == nil && dense:
			return fmt.Errorf("record %d is missing", ids[i])
		case text == nil:
			continue
		case tlog.RecordHash(text) != tlog.Hash(data[i*tlog.HashSize:(i+1)*tlog.HashSize]):
			return fmt.Errorf("record %d does not match its stored hash", ids[i])
		}
		key, err := recordKey(text, dense)
		if err != nil {
			return fmt.Errorf("record %d: %w", ids[i], err)
		}
		if key != "" {
			keys, keyed = append(keys, key), append(keyed, ids[i])
		}
	}
	got, err := s.Lookup(ctx, keys)
	if err != nil {
		return err
	}
	for i, id := range keyed {
		// A mirror indexes a module version under its first record: an
		// origin may (wrongly) hold two.
		if got[i] != id && (dense || got[i] < 0 || got[i] > id) {
			return fmt.Errorf("record %d (%s) is not indexed under its id (index: %d)", id, keys[i], got[i])
		}
	}
	return nil
}

// verifyIndex checks that every index entry naming a record of the tree of
// size n names a record of its own module version. verifyRecords checks
// each record's entry, which misses an extra entry naming another
// version's record (a damaged or edited index): Lookup would serve that
// record for the version. A mirror's entry naming an earlier record of
// the same version passes. Entries beyond n are a mirror's staging or, in
// a primary, checkExtent's to refuse.
func verifyIndex(ctx context.Context, s Store, n int64) error {
	from := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := s.ScanIndex(ctx, from, MaxScanIndex)
		if err != nil || len(entries) == 0 {
			return err
		}
		var ids []int64
		var keys []string
		for _, e := range entries {
			if e.ID >= 0 && e.ID < n {
				ids, keys = append(ids, e.ID), append(keys, e.Path+"@"+e.Version)
			}
		}
		texts, err := s.ReadRecords(ctx, ids)
		if err != nil {
			return err
		}
		for i, text := range texts {
			if text == nil {
				return fmt.Errorf("the index names record %d for %s, which is not stored", ids[i], keys[i])
			}
			if has, _ := recordKey(text, false); has != keys[i] {
				return fmt.Errorf("the index names record %d for %s, a record of %s", ids[i], keys[i], has)
			}
		}
		last := entries[len(entries)-1]
		from = last.Path + "@" + last.Version + "\x00" // the next key after it
	}
}

// recordKey returns the index key of a record. A primary's records are
// strictly parsed; a mirror indexes whatever its origin logged by the first
// line's module path and version, and leaves a record without them
// unindexed ("").
func recordKey(text []byte, strict bool) (string, error) {
	if strict {
		r, err := gosum.Parse(text)
		return r.Key(), err
	}
	line, _, _ := bytes.Cut(text, []byte("\n"))
	if f := bytes.Fields(line); len(f) >= 2 {
		return string(f[0]) + "@" + string(f[1]), nil
	}
	return "", nil
}

// verifiedTiles is the tlog.TileReader over a store that verifyFull gives
// TileHashReader; it keeps the tiles TileHashReader authenticated.
type verifiedTiles struct {
	ctx   context.Context
	s     Store
	saved map[tlog.Tile][]byte
}

func (v *verifiedTiles) Height() int { return tileHeight }

func (v *verifiedTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	ids := make([]TileID, len(tiles))
	for i, t := range tiles {
		ids[i] = TileID{t.L, t.N}
	}
	data, err := v.s.ReadTiles(v.ctx, ids)
	if err != nil {
		return nil, err
	}
	for i, t := range tiles {
		if len(data[i]) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s is not stored (%d hashes)", t.Path(), len(data[i])/tlog.HashSize)
		}
		data[i] = data[i][:t.W*tlog.HashSize]
	}
	return data, nil
}

func (v *verifiedTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	for i, t := range tiles {
		v.saved[t] = data[i]
	}
}
