package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// A stager builds the Batch for a group of requests on top of the
// published tree, in memory: nothing reaches the store until write.
type stager struct {
	base   *Head       // the published head the batch extends
	hashes *tileReader // tiles: staged, then the published tree's
	size   int64       // tree size including the records staged so far
	known  knownRecords
	recs   []StoredRecord
}

// known is a record of a key some request of the batch names: stored, or
// staged by an earlier request. err is its damage (a *CorruptRecordError,
// a *WrongIndexError): a request naming the key fails with it, and the
// version is never appended again while a record of it is stored.
type known struct {
	id   int64
	text []byte
	err  error
}

// stage stages every request of the batch, setting its ids or its
// refusal (a *ConflictError, or the damage of a stored record it names),
// and returns the batch to commit: nil if no request adds anything. A
// refused request adds nothing, and the others are staged. An error fails
// the whole batch.
func (l *Log) stage(ctx context.Context, batch []*request) (*Batch, error) {
	base := l.pub.Load()
	n := 0
	for _, r := range batch {
		n += len(r.recs)
	}
	s := &stager{
		recs:   make([]StoredRecord, 0, n),
		base:   base,
		hashes: &tileReader{read: func(id TileID) ([]byte, error) { return l.committedTile(ctx, id, base.Tree.N) }},
		size:   base.Tree.N,
	}
	if err := s.lookup(ctx, l, batch); err != nil {
		if errors.Is(err, errRetry) {
			return nil, l.catchUpRetry(ctx, "the store's index names a record beyond the published tree")
		}
		return nil, l.stageDamage(ctx, base, err)
	}
	for _, r := range batch {
		var err error
		if r.ids, r.added, r.err, err = s.add(r); err != nil {
			return nil, l.stageDamage(ctx, base, err)
		}
	}
	if s.size == base.Tree.N {
		return nil, nil // every record was present, or refused: nothing to commit
	}
	return l.seal(ctx, s.size, s.hashes, s.recs, *l.keys.Load(), nil)
}

// stageDamage tells a rollback from damage when staging on base, the
// published head, failed with err. A *CorruptDataError there is data of
// base's tree that the store lacks: a tile cut short, read because the
// log keeps no edge tiles of its own (it adopted base from another
// writer). A failover to a standby that lacked the last commits leaves
// the store at a smaller tree, cut short just so: if the store no longer
// holds base's head, catchUpRetry tells whether its head extends base
// (errRetry) or not (the log stops, the lost head recorded), as when a
// commit loses the compare-and-swap. Otherwise it returns err: damage,
// which fails the batch, and the log goes on.
func (l *Log) stageDamage(ctx context.Context, base *Head, err error) error {
	var de *CorruptDataError
	if !errors.As(err, &de) {
		return err
	}
	st, lerr := l.store.Load(ctx)
	if lerr != nil || bytes.Equal(st.Head, base.Signed) {
		return err
	}
	return l.catchUpRetry(ctx, "the store lacks data of the published tree")
}

// seal signs the tree of size n over the staged tiles with ks, after
// proving that it extends the published tree, and returns the batch that
// stores it (and vkeys, if not nil: a key rotation).
func (l *Log) seal(ctx context.Context, n int64, hashes *tileReader, recs []StoredRecord, ks keySet, vkeys []string) (*Batch, error) {
	base := l.pub.Load()
	root, err := tlog.TreeHash(n, hashes)
	if err != nil {
		return nil, fmt.Errorf("failed to compute tree hash: %w", err)
	}
	tree := tlog.Tree{N: n, Hash: root}
	if err := ProveExtends(tree, base.Tree, hashes); err != nil {
		var re *readError
		if errors.As(err, &re) {
			return nil, err
		}
		if err := l.sealDamage(ctx, base); err != nil {
			return nil, err
		}
		return nil, l.stop(fmt.Errorf("refusing to sign tree %d: not consistent with signed tree %d: %w", tree.N, base.Tree.N, err))
	}
	head, err := ks.signTree(tree)
	if err != nil {
		return nil, err
	}
	return &Batch{Prev: base.Signed, Head: head, Tree: tree, Records: recs, Tiles: hashes.staged(), VKeys: vkeys}, nil
}

// sealDamage tells damage from a rollback when seal failed to prove that
// the tree it built extends the published one, base. The tree was built on
// the tiles of base's right edge (the only tiles of base such a proof
// reads) as committedTile returned them: read from the store unchecked by
// the first commit after Open or a catch-up, and kept in l.edge since. If
// the store still holds base's head, they should hash to it: it
// authenticates them, as kept, against base, and returns the
// *CorruptTileError of damage (logged and counted), dropping l.edge so
// that a repaired tile is read again; the batch fails and the log goes on,
// as after a catch-up over a damaged tile. If the store holds another
// head (a rollback, or another writer's), catchUpRetry tells whether it
// extends base: errRetry if it does, else the log stops. It returns nil
// if the tiles hash to base, which is a fork seal cannot explain.
func (l *Log) sealDamage(ctx context.Context, base *Head) error {
	st, err := l.store.Load(ctx)
	if err != nil {
		return &readError{fmt.Errorf("failed to re-read the log's head: %w", err)}
	}
	if !bytes.Equal(st.Head, base.Signed) {
		return l.catchUpRetry(ctx, "the tree built on the store's tiles does not extend the published one")
	}
	kept := map[tlog.Tile][]byte{}
	for id, d := range l.edge {
		if w := tileWidth(id, base.Tree.N); len(d) == w*tlog.HashSize {
			kept[tlog.Tile{H: tileHeight, L: id.L, N: id.N, W: w}] = d
		}
	}
	// Authenticating the lowest tile of the edge reads, and checks against
	// the root, every other one: the tiles above it.
	low := bits.TrailingZeros64(uint64(base.Tree.N)) / tileHeight
	edge := TileID{low, base.Tree.N >> (low * tileHeight) >> tileHeight}
	_, err = l.checkTile(base.Tree, &authReader{ctx: ctx, l: l, n: base.Tree.N, want: edge, given: kept})
	var corrupt *CorruptTileError
	switch {
	case errors.As(err, &corrupt):
		clear(l.edge)
		return err
	case err != nil:
		return &readError{err}
	}
	return nil
}

// committedTile returns tile id of the published tree of size n: the
// partial tiles at its right edge from memory (the next batch appends to
// them), the others from the store.
func (l *Log) committedTile(ctx context.Context, id TileID, n int64) ([]byte, error) {
	w := tileWidth(id, n)
	if d, ok := l.edge[id]; ok && len(d) == w*tlog.HashSize {
		return d, nil
	}
	d, err := readTile(ctx, l.store, id, n)
	if err == nil && w > 0 && w < 1<<tileHeight {
		l.edge[id] = d
	}
	return d, err
}

// lookup finds, in one store call for the whole batch, the records stored
// under the keys the batch names.
func (s *stager) lookup(ctx context.Context, l *Log, batch []*request) error {
	var keys []string
	if len(batch) == 1 {
		keys = batch[0].keys // repeats are harmless
	} else {
		seen := map[string]bool{}
		for _, r := range batch {
			for _, k := range r.keys {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	kr, beyond, err := l.lookupKnown(ctx, keys, s.base.Tree.N, s.hashes.tile)
	if err != nil {
		return err
	}
	if beyond {
		// Another writer of a shared store recorded it after the
		// published head: adopt that writer's head first.
		return errRetry
	}
	s.known = kr
	return nil
}

// knownRecords holds the records stored (or staged) under the keys that a
// batch, or a Check, names.
type knownRecords map[string]known

// lookupKnown finds, in one store call, the records stored under keys in
// the tree of size n, each checked against its leaf hash in the level-0
// tile that tile returns, and each of the version looked up: a changed
// record, or one of another version (a damaged index), must fail the
// request, not be compared with the proposed one (a false conflict).
// beyond reports that
// the index names a record past n for some key: another writer of a
// shared store recorded it after the published head; it is not in known.
func (l *Log) lookupKnown(ctx context.Context, keys []string, n int64, tile func(TileID) ([]byte, error)) (_ knownRecords, beyond bool, _ error) {
	store := l.store
	ids, err := store.Lookup(ctx, keys)
	if err != nil {
		return nil, false, fmt.Errorf("failed to look up %d module versions: %w", len(keys), err)
	}
	var found []int64
	var foundKeys []string
	for i, id := range ids {
		switch {
		case id >= n:
			beyond = true
		case id >= 0:
			found, foundKeys = append(found, id), append(foundKeys, keys[i])
		}
	}
	texts, err := store.ReadRecords(ctx, found)
	if err != nil {
		return nil, false, fmt.Errorf("failed to read %d records: %w", len(found), err)
	}
	kr := make(knownRecords, len(keys))
	for i, text := range texts {
		if text == nil {
			return nil, false, fmt.Errorf("index names record %d for %s, which is not stored", found[i], foundKeys[i])
		}
		kr[foundKeys[i]] = known{id: found[i], text: text}
	}
	// The damage of a record fails the requests that name its key only,
	// not its batch: the rest of the log is sound.
	damaged := func(i int, err error) error {
		k := kr[foundKeys[i]]
		if k.err == nil {
			k.err = err
			kr[foundKeys[i]] = k
		}
		return nil
	}
	if err := l.checkEachLeaf(found, texts, tile, damaged); err != nil {
		return nil, false, err
	}
	// A sound record under another version's index entry is no conflict
	// with the record proposed for this version: the index is damaged.
	if err := l.checkEachKey(found, foundKeys, texts, damaged); err != nil {
		return nil, false, err
	}
	return kr, beyond, nil
}

// add stages one request's records: it checks all of them first, so that a
// refusal (a *ConflictError, a damaged record) leaves nothing of the
// request behind and fails it alone, then appends the new ones, which
// isNew reports. err, a failure to append, fails the whole batch.
func (s *stager) add(req *request) (_ []int64, isNew []bool, refused, err error) {
	recs := req.recs
	ids := make([]int64, len(recs))
	isNew = make([]bool, len(recs))
	first := make(map[string]int, len(recs)) // key -> index of its first occurrence in recs
	for i, r := range recs {
		key := req.keys[i]
		if j, ok := first[key]; ok {
			if recs[j] != r {
				return nil, nil, &ConflictError{ID: -1, Recorded: recs[j], Proposed: r}, nil
			}
			continue
		}
		first[key] = i
		id, ok, err := s.known.existing(r, key, req.texts[i])
		if err != nil {
			return nil, nil, err, nil
		}
		ids[i], isNew[i] = id, !ok
	}
	for i := range recs {
		if isNew[i] {
			id, err := s.append(req.keys[i], req.texts[i], req.leaves[i])
			if err != nil {
				return nil, nil, nil, err
			}
			ids[i] = id
		}
	}
	for i := range recs {
		ids[i] = ids[first[req.keys[i]]]
	}
	return ids, isNew, nil, nil
}

// existing returns the id of r's module version if it is recorded (or
// staged) with the same hashes, a *ConflictError if with others, and the
// damage of its stored record if it is damaged.
func (kr knownRecords) existing(r gosum.Record, key string, text []byte) (int64, bool, error) {
	k, ok := kr[key]
	switch {
	case !ok:
		return 0, false, nil
	case k.err != nil:
		return 0, false, k.err
	}
	if bytes.Equal(k.text, text) {
		return k.id, true, nil
	}
	recorded, err := gosum.Parse(k.text)
	if err != nil {
		return 0, false, fmt.Errorf("record %d is malformed: %w", k.id, err)
	}
	return 0, false, &ConflictError{ID: k.id, Recorded: recorded, Proposed: r}
}

// append stages a record, with its key, text and leaf hash, as the next
// record with its index entry and tile hashes.
func (s *stager) append(key string, text []byte, leaf tlog.Hash) (int64, error) {
	id := s.size
	if err := s.hashes.appendRecord(id, leaf); err != nil {
		return 0, err
	}
	s.recs = append(s.recs, StoredRecord{ID: id, Key: key, Text: text})
	s.known[key] = known{id: id, text: text}
	s.size++
	return id, nil
}
