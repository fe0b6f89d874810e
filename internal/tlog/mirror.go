package tlog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// An Extension is what Extend stores in a mirror: another log's signed
// head, and the data that fills and proves it.
type Extension struct {
	// Head is the origin's signed head, verbatim.
	Head []byte
	// Tiles are the hash tiles tlog.NewTiles(8, held size, Head's size)
	// names, each with exactly its data, and no others: none if Head's
	// tree is the one held. They are held in memory until committed, so a
	// follower far behind bounds memory by the head it extends to (32 MiB
	// of tiles per million records).
	Tiles map[tlog.Tile][]byte
	// Records are records to store, by id: any ids in Head's tree, new or
	// (for a partial mirror) older ones it did not hold. Others it holds
	// already are ignored.
	Records map[int64][]byte

	prep *prepared // Stage's verification, made ahead by PrepareStage
}

// ErrUnverified marks extension data that does not verify: a head not
// signed by the origin's keys, a tile or a record that does not hash to the
// signed root, a tile missing or not part of the extension. Nothing was
// stored.
var ErrUnverified = errors.New("mirror data does not verify against the origin's signed head")

// An InconsistentError is Extend's refusal of a head that is not provably
// an extension of the newest head the mirror holds: a fork (another tree of
// the same size or not containing the held one), or a rollback (a smaller
// tree). Its origin, or the path to it, misbehaves: report it as a
// security event. Nothing was stored, and the held head stays published.
type InconsistentError struct {
	Held, Offered         []byte // the signed heads
	HeldTree, OfferedTree tlog.Tree
	Err                   error // why the proof failed
}

// Rollback reports whether the offered tree is smaller than the held one.
func (e *InconsistentError) Rollback() bool { return e.OfferedTree.N < e.HeldTree.N }

func (e *InconsistentError) Error() string {
	what := "fork"
	if e.Rollback() {
		what = "rollback"
	}
	return fmt.Sprintf("%s: the origin's signed tree %d (%v) does not extend the held tree %d (%v): %v",
		what, e.OfferedTree.N, e.OfferedTree.Hash, e.HeldTree.N, e.HeldTree.Hash, e.Err)
}

func (e *InconsistentError) Unwrap() error { return e.Err }

// Extend verifies ext and stores it in one commit, then publishes its
// head: the head must be signed by one of the origin's verifier keys, its
// tree must provably extend the held one (*InconsistentError otherwise),
// the tiles must hash to its root and every record to its leaf (else an
// error wrapping ErrUnverified). The tiles the extension names must be
// given, or staged before by Stage; a staged tile that no longer hashes to
// the root was damaged in the store, a *CorruptTileError. Each record is indexed by the module
// version of its first line, under its smallest id if the origin logged
// one twice (a record without one is stored unindexed). Nothing is stored
// if any check fails. While the staging of another head is unfinished, a
// head beyond the held one is refused with a *PendingError. Only a mirror
// extends.
func (l *Log) Extend(ctx context.Context, ext Extension) error {
	if l.origin == nil {
		return errors.New("only a mirror (opened with verifier keys) is extended; a primary adds records")
	}
	return l.control(ctx, func(ctx context.Context) error {
		return l.retry(func() error {
			b, err := l.stageExtension(ctx, ext)
			if err != nil || b == nil {
				return err
			}
			// The store lists the keys the mirror verifies with, for
			// what checks a store without opening a log (CheckStore: a
			// backup, a copy). An origin that rotated its key signs new
			// heads with keys the list may lack: the first head stored
			// after the mirror is opened with other keys stores them.
			if !slices.Equal(l.storedKeys, l.originKeys) {
				b.VKeys = slices.Clone(l.originKeys)
			}
			if err := l.write(ctx, b); err != nil {
				return err
			}
			if b.VKeys != nil {
				l.storedKeys = b.VKeys
			}
			return nil
		})
	})
}

// stageExtension verifies ext against the held head and returns the batch
// storing it, or nil if it adds nothing.
func (l *Log) stageExtension(ctx context.Context, ext Extension) (*Batch, error) {
	held := l.pub.Load()
	target, err := l.openExtension(ext)
	if err != nil {
		return nil, err
	}
	if target.N < held.Tree.N {
		return nil, smallerError(held, ext, target)
	}
	if target.N > held.Tree.N {
		if _, err := l.checkPending(ctx, held, ext, target); err != nil {
			return nil, err
		}
	}
	recs, err := l.verifyExtension(ctx, held, target, ext, true)
	if err != nil {
		return nil, err
	}
	b := &Batch{Prev: held.Signed, Head: ext.Head, Tree: target, Records: recs, Tiles: sortedTiles(ext.Tiles)}
	if bytes.Equal(b.Head, held.Signed) && len(b.Records) == 0 {
		return nil, nil
	}
	return b, nil
}

// openExtension verifies ext.Head with the origin's keys and returns its
// tree.
func (l *Log) openExtension(ext Extension) (tlog.Tree, error) {
	target, err := l.openOrigin(ext.Head)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("%w: %w", ErrUnverified, err)
	}
	return target, nil
}

// An OriginKeyError says a head the mirror stored, held or staged, is
// signed by none of the verifier keys it was opened with, only by others:
// the origin rotated its key and the mirror was given the new one alone.
// The database is sound (not ErrCorrupt); open it with the older key too.
type OriginKeyError struct {
	What string   // "the held head" or "the staged head"
	Keys []string // the verifier keys given
	Err  error    // note.Open's *note.UnverifiedNoteError
}

func (e *OriginKeyError) Error() string {
	return fmt.Sprintf("%s was signed by a key not given to this mirror (given: %s); pass the origin's older verifier key too (-origin-key OLD,NEW; docs/mirrors.md): %v",
		e.What, strings.Join(e.Keys, ", "), e.Err)
}

func (e *OriginKeyError) Unwrap() error { return e.Err }

// originKeyError returns an *OriginKeyError if err, a mirror's failure to
// verify a head it stored (what says which), is that none of its keys
// signed it; else nil. A bad signature by a given key, or a malformed
// head, is damage.
func (l *Log) originKeyError(what string, err error) error {
	var unverified *note.UnverifiedNoteError
	if l.origin == nil || !errors.As(err, &unverified) {
		return nil
	}
	return &OriginKeyError{What: what, Keys: l.originKeys, Err: err}
}

// smallerError is the refusal of an extension to a tree smaller than the
// held one.
func smallerError(held *Head, ext Extension, target tlog.Tree) error {
	return &InconsistentError{Held: held.Signed, Offered: ext.Head, HeldTree: held.Tree, OfferedTree: target,
		Err: errors.New("the offered tree is smaller")}
}

// checkPending returns the unfinished staging (nil if none), and a
// *PendingError if it is of another head than ext's.
func (l *Log) checkPending(ctx context.Context, held *Head, ext Extension, target tlog.Tree) (*Staging, error) {
	p, err := l.pending(ctx, held)
	if err != nil {
		return nil, err
	}
	if p != nil && !bytes.Equal(p.Head, ext.Head) {
		return nil, &PendingError{Staged: p.Tree, Offered: target}
	}
	return p, nil
}

// verifyExtension checks the tiles of the extension from held to target
// (see authenticate; all for Extend, the given ones for Stage) and its
// records, and returns the records to store.
func (l *Log) verifyExtension(ctx context.Context, held *Head, target tlog.Tree, ext Extension, all bool) ([]StoredRecord, error) {
	hashes, err := l.authenticate(ctx, held, target, ext, all)
	if err != nil {
		return nil, err
	}
	return l.checkExtensionRecords(ctx, held.Tree.N, target, hashes, ext.Tiles, ext.Records)
}

// errTileMissing marks a tile an extension needs that is neither given
// nor stored at its width.
var errTileMissing = errors.New("tile missing")

// checkTiles checks that the given tiles are part of the extension from
// held to target, and returns a reader of target's hashes that
// authenticates every tile it reads against the signed root, as the go
// command does (TileHashReader), reading the tiles given, then those
// stored (held, or staged). It reads every given tile through it, a group
// of 256 at a time, so each is authenticated; with all, every tile of the
// extension, given or staged, which must then all be there.
func (l *Log) checkTiles(ctx context.Context, held, target tlog.Tree, given map[tlog.Tile][]byte, all bool) (tlog.HashReader, error) {
	for t, data := range given {
		if !inExtension(t, held.N, target.N) {
			return nil, fmt.Errorf("%w: tile %s is not part of the extension from %d to %d", ErrUnverified, t.Path(), held.N, target.N)
		}
		if len(data) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("%w: tile %s holds %d bytes, want %d", ErrUnverified, t.Path(), len(data), t.W*tlog.HashSize)
		}
	}
	tr := &extensionTiles{ctx: ctx, s: l.store, given: given, n: target.N, held: held.N}
	r := &extensionHashes{ctx: ctx, l: l, target: target, tiles: tr, r: tlog.TileHashReader(target, tr)}
	var check []tlog.Tile
	if all {
		check = tlog.NewTiles(tileHeight, held.N, target.N)
	} else {
		check = slices.SortedFunc(maps.Keys(given), func(a, b tlog.Tile) int {
			return cmp.Or(cmp.Compare(b.L, a.L), cmp.Compare(a.N, b.N)) // parents first
		})
	}
	for group := range slices.Chunk(check, 1<<tileHeight) {
		indexes := make([]int64, len(group))
		for i, t := range group {
			indexes[i] = tlog.StoredHashIndex(t.L*tileHeight, t.N<<tileHeight+int64(t.W-1))
		}
		if _, err := r.ReadHashes(indexes); err != nil {
			if errors.Is(err, errTileMissing) {
				return nil, fmt.Errorf("%w: %w (the extension from %d to %d)", ErrUnverified, err, held.N, target.N)
			}
			if corrupt := (*CorruptTileError)(nil); errors.As(err, &corrupt) {
				return nil, err
			}
			return nil, unverified(fmt.Errorf("tiles %s to %s: %w", group[0].Path(), group[len(group)-1].Path(), err))
		}
	}
	return r, nil
}

// inExtension reports whether t is one of tlog.NewTiles(tileHeight, held,
// target), the tiles an extension from held to target changes, without
// building that list (a catch-up of millions of records names hundreds of
// thousands of tiles, and a step only a few).
func inExtension(t tlog.Tile, held, target int64) bool {
	id := TileID{t.L, t.N}
	return t.H == tileHeight && t.W == tileWidth(id, target) && t.W > tileWidth(id, held)
}

// checkPrefixes checks that the given tiles extend the held tree's: the
// consistency proof implies it, unless SHA-256 or the store is broken.
func (l *Log) checkPrefixes(ctx context.Context, held int64, given map[tlog.Tile][]byte) error {
	for t, data := range given {
		stored, err := readTile(ctx, l.store, TileID{t.L, t.N}, held)
		if err != nil {
			return err
		}
		if !bytes.HasPrefix(data, stored) {
			return fmt.Errorf("%w: tile %s does not extend the held one", ErrUnverified, t.Path())
		}
	}
	return nil
}

// unverified wraps an authentication failure in ErrUnverified, and leaves a
// store read failure, or the store's damage (a *CorruptTileError: a staged
// tile that no longer hashes to the target), as it is.
func unverified(err error) error {
	var re *readError
	var corrupt *CorruptTileError
	if errors.As(err, &re) || errors.As(err, &corrupt) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnverified, err)
}

// MaxMirroredRecord caps a record a mirror stores. An origin's record that
// hashes to its leaf is stored as it is even beyond a primary's
// gosum.MaxRecordSize (sum.golang.org, x/mod and the go command have no
// limit). The cap bounds memory only: it is the largest data tile a mirror
// fetches (sumdbclient.MaxDataTile), so no record from a data tile exceeds it.
const MaxMirroredRecord = 1 << 20

// checkExtensionRecords checks each record against its leaf hash in the
// target tree, and returns those the mirror holding a tree of size held
// does not hold yet, indexed under the smallest id of their module
// version. The leaf hashes come from the given level-0 tiles, which the
// caller authenticated whole, or else through hashes.
func (l *Log) checkExtensionRecords(ctx context.Context, held int64, target tlog.Tree, hashes tlog.HashReader, given map[tlog.Tile][]byte, texts map[int64][]byte) ([]StoredRecord, error) {
	ids := slices.Sorted(maps.Keys(texts))
	if len(ids) == 0 {
		return nil, nil
	}
	if ids[0] < 0 || ids[len(ids)-1] >= target.N {
		return nil, fmt.Errorf("%w: records %d to %d are not all in the tree of size %d", ErrUnverified, ids[0], ids[len(ids)-1], target.N)
	}
	leaves, err := leafHashes(ids, target.N, hashes, given)
	if err != nil {
		return nil, unverified(err)
	}
	// Only records of the held tree may be stored already (a partial
	// mirror adding old ones); a record beyond it that an earlier Stage
	// stored is verified and written again, identical.
	old := ids[:sort.Search(len(ids), func(i int) bool { return ids[i] >= held })]
	stored, err := l.store.ReadRecords(ctx, old)
	if err != nil {
		return nil, fmt.Errorf("failed to read records: %w", err)
	}
	recs := make([]StoredRecord, 0, len(ids))
	for i, id := range ids {
		text := texts[id]
		if tlog.RecordHash(text) != leaves[i] {
			return nil, fmt.Errorf("%w: record %d does not hash to its leaf", ErrUnverified, id)
		}
		// A record that hashes to its leaf is the origin's genuine data,
		// whatever its size: a primary's gosum.MaxRecordSize is sumd's own
		// rule, not the protocol's (x/mod and the go command have none).
		if len(text) > MaxMirroredRecord {
			return nil, fmt.Errorf("record %d of the origin is %d bytes, more than the %d bytes a mirror stores: "+
				"it hashes to its leaf, so the origin's data is genuine but larger than sumd allows; report it to the sumd project",
				id, len(text), MaxMirroredRecord)
		}
		if i >= len(old) || stored[i] == nil {
			// The text is the caller's until Extend returns, and the store
			// has written it by then: no copy.
			key, _ := recordKey(text, false) // "" leaves it unindexed
			recs = append(recs, StoredRecord{ID: id, Key: key, Text: text})
		}
	}
	return recs, l.indexFirst(ctx, recs)
}

// leafHashes returns the leaf hashes of records ids (ascending) in the tree
// of size n: from the given level-0 tile holding each, if there is one,
// else read through hashes, which authenticates what it reads.
func leafHashes(ids []int64, n int64, hashes tlog.HashReader, given map[tlog.Tile][]byte) ([]tlog.Hash, error) {
	leaves := make([]tlog.Hash, len(ids))
	var rest []int // indexes into ids of the leaves to read
	tile, data := tlog.Tile{N: -1}, []byte(nil)
	for i, id := range ids {
		if id>>tileHeight != tile.N {
			tile = tlog.Tile{H: tileHeight, L: 0, N: id >> tileHeight}
			tile.W = tileWidth(TileID{0, tile.N}, n)
			data = given[tile]
		}
		if off := int(id-tile.N<<tileHeight) * tlog.HashSize; off+tlog.HashSize <= len(data) {
			leaves[i] = tlog.Hash(data[off:])
		} else {
			rest = append(rest, i)
		}
	}
	if len(rest) == 0 {
		return leaves, nil
	}
	indexes := make([]int64, len(rest))
	for j, i := range rest {
		indexes[j] = tlog.StoredHashIndex(0, ids[i])
	}
	read, err := hashes.ReadHashes(indexes)
	if err != nil {
		return nil, err
	}
	for j, i := range rest {
		leaves[i] = read[j]
	}
	return leaves, nil
}

// indexFirst clears the Key of every record whose module version is
// indexed (or staged) under a smaller id.
func (l *Log) indexFirst(ctx context.Context, recs []StoredRecord) error {
	// Looked up in key order, which a B-tree reads fastest.
	keys := make([]string, 0, len(recs))
	for _, r := range recs {
		if r.Key != "" {
			keys = append(keys, r.Key)
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	ids, err := l.store.Lookup(ctx, keys)
	if err != nil {
		return fmt.Errorf("failed to look up %d module versions: %w", len(keys), err)
	}
	first := make(map[string]int64, len(recs))
	for i, k := range keys {
		if ids[i] >= 0 {
			first[k] = ids[i]
		}
	}
	for i := range recs { // ascending ids: the first of a key wins
		r := &recs[i]
		if r.Key == "" {
			continue
		}
		if id, ok := first[r.Key]; ok && id < r.ID {
			r.Key = ""
			continue
		}
		first[r.Key] = r.ID
	}
	return nil
}

// extensionHashes reads the hashes of an extension's target tree through
// x/mod's TileHashReader over extensionTiles, which authenticates every
// tile it reads against the target's root, and tells whose a tile that
// does not hash to it is. The tiles given are the origin's. A tile the
// store holds beyond the held tree was staged: authenticated against the
// target when staged, through its parents and the tree's right edge, then
// given or staged before and so in the store since. When a read fails on
// tiles that do not hash to the target, it authenticates again each
// staged tile it read, from the store alone, and returns the
// *CorruptTileError of one that fails (logged and counted): the store's
// damage, not the origin's fault. Else the error stays as it is: the
// given tiles, or the offered head, are wrong.
type extensionHashes struct {
	ctx    context.Context
	l      *Log
	target tlog.Tree
	tiles  *extensionTiles
	r      tlog.HashReader
}

func (h *extensionHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	h.tiles.staged = h.tiles.staged[:0]
	out, err := h.r.ReadHashes(indexes)
	var re *readError
	if err == nil || errors.Is(err, errTileMissing) || errors.As(err, &re) {
		return out, err
	}
	checked := map[TileID]bool{}
	for _, id := range h.tiles.staged {
		if checked[id] {
			continue
		}
		checked[id] = true
		_, derr := h.l.checkTile(h.target, &authReader{ctx: h.ctx, l: h.l, n: h.target.N, want: id})
		var corrupt *CorruptTileError
		switch {
		case errors.As(derr, &corrupt):
			return nil, derr
		case derr != nil:
			return nil, &readError{derr}
		}
	}
	return nil, err
}

// extensionTiles is the tlog.TileReader an extension is authenticated
// through: the tiles given, then the store's (the held tree's, or staged
// ones), cut to their width in the target tree of size n.
type extensionTiles struct {
	ctx   context.Context
	s     Store
	given map[tlog.Tile][]byte
	n     int64
	held  int64 // the held tree's size
	// staged are the tiles read from the store that lie beyond the held
	// tree, staged before (extensionHashes resets it).
	staged []TileID
}

func (e *extensionTiles) Height() int { return tileHeight }

func (e *extensionTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if d, ok := e.given[t]; ok {
			out[i] = d
			continue
		}
		id := TileID{t.L, t.N}
		data, err := e.s.ReadTiles(e.ctx, []TileID{id})
		if err != nil {
			return nil, &readError{fmt.Errorf("failed to read tile %d/%d: %w", id.L, id.N, err)}
		}
		if len(data[0]) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("%w: tile %s is needed, but neither given nor stored", errTileMissing, t.Path())
		}
		out[i] = data[0][:t.W*tlog.HashSize]
		if t.W > tileWidth(id, e.held) {
			e.staged = append(e.staged, id)
		}
	}
	return out, nil
}

func (e *extensionTiles) SaveTiles([]tlog.Tile, [][]byte) {}
