package tlog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// A mirror far behind its origin cannot reach the origin's head in one
// Extend: the origin signs only the heads it serves, and an Extension is
// held in memory until committed (32 MiB of tiles and, in a full mirror,
// about 150 MiB of records per million records). Stage lets it get there
// in bounded steps that each survive a crash:
//
//  1. Stage(Extension{Head: H, Tiles: skeleton}): every tile of level 1
//     and above that the extension to H names, and the level-0 tiles the
//     consistency proof and the root need (the one holding the held
//     tree's edge, and H's last, partial one).
//  2. Stage(Extension{Head: H, Tiles: some level-0 tiles, Records: theirs}),
//     in ascending order, as many times as it takes.
//  3. Extend(Extension{Head: H}) with whatever was not staged.
//
// Each Stage call verifies what it is given against H exactly as Extend
// would (H's signature, H's consistency with the held head, every tile
// authenticated up to H's root through the tiles given or staged before,
// every record against its leaf) and commits it with the held head
// unchanged: the data lies in the store beyond the published tree, where
// every read of the log ignores it (the Store contract allows a store to
// hold more than the published tree). Extend then authenticates every tile
// of the extension again, staged or given, before it publishes H.
//
// The head being staged is kept in the store's auxiliary state (auxStaged),
// written before the first staging commit, so that a follower resuming
// after a crash finishes H (Staged says how far it got) before it moves to
// any other head: a mirror never mixes the staged data of two heads. A
// store without auxiliary state cannot stage.
const auxStaged = "tlog/staged"

// auxStagedSize records how far the staging of a tree has got (Staging.Size),
// bound to that tree (stagedSizeValue): written before the staged head when
// a staging begins, and after each Stage commit that takes it further. It
// lags the staged data when a crash comes between the two writes, which is
// safe: staging the same tiles again is idempotent.
//
// The size cannot be read off the store reliably: ReplaceStaging leaves the
// replaced head's staged data beyond the published tree, correct for any
// head whose tree contains it (the caller proved the new one does) but not
// contiguous with what the new staging stages. The replaced head's last
// level-0 tile, full when its size is a multiple of 256, then reads as
// staged beyond a gap of missing tiles, and the binary search for the first
// missing tile that earlier versions made answered a size past the gap:
// every resumed staging then failed on a missing tile. Scanning every tile
// instead would cost O(tree) reads per Staged call, and a follower calls it
// at every step of a catch-up of millions of records. A staging begun before
// this record existed has none: Staged says the held size, and it is staged
// again from its skeleton, recorded from then on.
const auxStagedSize = "tlog/staged-size"

// stagedSizeValue encodes the value of auxStagedSize: the staged size, then
// the size and root hash of the tree it is of.
func stagedSizeValue(size int64, tree tlog.Tree) []byte {
	v := binary.BigEndian.AppendUint64(nil, uint64(size))
	v = binary.BigEndian.AppendUint64(v, uint64(tree.N))
	return append(v, tree.Hash[:]...)
}

// parseStagedSize decodes a value of auxStagedSize, and reports whether it
// is of tree.
func parseStagedSize(v []byte, tree tlog.Tree) (int64, bool, error) {
	if len(v) == 0 {
		return 0, false, nil
	}
	if len(v) != 16+tlog.HashSize {
		return 0, false, fmt.Errorf("%w: the staged size is %d bytes, want %d", ErrCorrupt, len(v), 16+tlog.HashSize)
	}
	size, n := int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
	if n != tree.N || !bytes.Equal(v[16:], tree.Hash[:]) {
		return 0, false, nil // another tree's: a replaced staging's
	}
	if size < 0 || size > n {
		return 0, false, fmt.Errorf("%w: the staged size %d is out of the tree of %d records", ErrCorrupt, size, n)
	}
	return size, true, nil
}

// A PendingError is the refusal to stage or extend to one head while the
// staging of another is unfinished: finish that one first (Staged).
type PendingError struct {
	Staged, Offered tlog.Tree
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("the mirror is part way to tree %d (staged); it must reach that tree before tree %d", e.Staged.N, e.Offered.N)
}

// Staging is the state of an unfinished staging: the origin's signed head
// it leads to, and how far the staged data reaches.
type Staging struct {
	Head []byte    // the signed head being staged, verbatim
	Tree tlog.Tree // its tree
	// Size is the tree size up to which every level-0 tile (and, as the
	// follower staged them with their tiles, the records wanted) is
	// staged: the place to resume from. It counts the level-0 tiles that
	// Stage calls committed in ascending order from the held tree, as
	// Stage's callers stage them, and the last (in the skeleton); it may
	// be less than the store holds (a crash between a Stage commit and the
	// record of its size, data a replaced staging left), never more.
	// Size equal to the held tree's means not even the skeleton is staged:
	// the staged head is written in a commit of its own before it, and a
	// crash may come between the two. Stage the skeleton again then.
	Size int64
}

// Staged returns the unfinished staging, or nil if there is none.
func (l *Log) Staged(ctx context.Context) (*Staging, error) {
	held := l.pub.Load()
	p, err := l.pending(ctx, held)
	if err != nil || p == nil {
		return nil, err
	}
	size, err := l.stagedSize(ctx, held.Tree.N, p.Tree)
	if err != nil {
		return nil, err
	}
	p.Size = size
	return p, nil
}

// pending returns the head being staged, if it is beyond the held tree.
func (l *Log) pending(ctx context.Context, held *Head) (*Staging, error) {
	a, ok := l.store.(AuxStore)
	if !ok {
		return nil, nil
	}
	head, err := a.Aux(ctx, auxStaged)
	if err != nil {
		return nil, &readError{fmt.Errorf("failed to read the staged head: %w", err)}
	}
	if len(head) == 0 { // none, or dropped (by older versions)
		return nil, nil
	}
	tree, err := l.openOrigin(head)
	if ke := l.originKeyError("the staged head", err); ke != nil {
		return nil, ke
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the staged head does not verify: %v", ErrCorrupt, err)
	}
	if tree.N <= held.Tree.N {
		return nil, nil // reached
	}
	return &Staging{Head: head, Tree: tree}, nil
}

// stagedSize returns the size up to which every level-0 tile of the tree
// being staged is stored at its width, from the held tree on, as recorded
// (auxStagedSize). A staging begun before that record existed says the held
// size: its tiles cannot be told from those a replaced staging left beyond
// a gap (the search earlier versions made over them could skip the gap and
// wedge the mirror), and a size lower than the truth only means staging the
// skeleton and tiles again, which Stage then records.
func (l *Log) stagedSize(ctx context.Context, held int64, tree tlog.Tree) (int64, error) {
	v, err := l.store.(AuxStore).Aux(ctx, auxStagedSize) // pending found one
	if err != nil {
		return 0, &readError{fmt.Errorf("failed to read the staged size: %w", err)}
	}
	size, ok, err := parseStagedSize(v, tree)
	if err != nil || !ok {
		return held, err
	}
	return max(size, held), nil
}

// stagedAfter returns the size up to which every level-0 tile of target is
// staged from the held tree on, once tiles are committed, if it was from
// before: it takes only the tiles committed now that continue from there
// (and the last tile, which the skeleton staged), never stale ones a
// replaced staging left, so it may say less than the store holds, never
// more.
func (l *Log) stagedAfter(ctx context.Context, from int64, target tlog.Tree, tiles []Tile) (int64, error) {
	given := map[int64]int{} // level-0 tile index: bytes committed now
	for _, t := range tiles {
		if t.L == 0 {
			given[t.N] = len(t.Data)
		}
	}
	last := (target.N - 1) >> tileHeight
	size := from
	for size < target.N {
		id := TileID{0, size >> tileHeight}
		n, ok := given[id.N]
		if !ok && id.N == last {
			data, err := l.store.ReadTiles(ctx, []TileID{id})
			if err != nil {
				return 0, &readError{fmt.Errorf("failed to read tile 0/%d: %w", id.N, err)}
			}
			n = len(data[0])
		}
		if n < tileWidth(id, target.N)*tlog.HashSize {
			break
		}
		size = min((id.N+1)<<tileHeight, target.N)
	}
	return size, nil
}

// ReplaceStaging puts head in the place of the unfinished staging of old
// (Staged's Head), if it is the one being staged, staged up to the held
// size (not even the skeleton: stage it first), so that the log is staged
// to head instead: for a bundle import that an interrupted import of an
// older bundle must not block for ever. The new head may also be of the
// staged tree signed again (a key rotation on the origin): it takes the
// old one's place and the staging keeps its progress; another tree of the
// same size (a fork) or a smaller tree (a rollback) is refused with an
// *InconsistentError, whose held head is the staged one, as Extend refuses
// them: a security event. It fails if old is not the head being staged
// (none is, or another is). The staging is replaced, never dropped:
// a staged head is one the origin signed and the mirror verified, and a
// log that forgot it would let Restore roll a primary back behind it and
// a follower take a fork of it. The staged size is written first,
// bound to head's tree, then head; a crash between the two leaves old
// staged, from the held size on. The staged data stays in the store
// beyond the published tree, where reads ignore it, Staged does not count
// it for the new staging (see auxStagedSize), and Stage and Extend verify
// again whatever of it they use; but the module versions it indexed keep
// their ids. So the caller must have proved that head's tree contains the
// staged tree, or a lookup could later find a record of another history.
func (l *Log) ReplaceStaging(ctx context.Context, old, head []byte) error {
	a, ok := l.store.(AuxStore)
	if !ok {
		return nil // no store without auxiliary state stages
	}
	target, err := l.openExtension(Extension{Head: head})
	if err != nil {
		return err
	}
	return l.control(ctx, func(ctx context.Context) error {
		held := l.pub.Load()
		p, err := l.pending(ctx, held)
		switch {
		case err != nil:
			return err
		case p == nil:
			return fmt.Errorf("cannot stage tree %d in the place of another staging: none is unfinished", target.N)
		case !bytes.Equal(p.Head, old):
			return fmt.Errorf("cannot stage tree %d in the place of another staging: the mirror stages another head (of tree %d)", target.N, p.Tree.N)
		}
		// A fork or a rollback of the staged tree is refused as Extend
		// refuses one of the held tree: the origin, or the path to it,
		// misbehaves.
		inconsistent := func(why string) error {
			return &InconsistentError{Held: p.Head, Offered: head, HeldTree: p.Tree, OfferedTree: target, Err: errors.New(why)}
		}
		switch {
		case bytes.Equal(head, old):
			return fmt.Errorf("cannot stage tree %d in the place of itself: it is the staged head", target.N)
		case target == p.Tree:
			// The same tree signed again (a key rotation or retirement
			// on the origin): both heads are verified, so the new one
			// takes the old one's place, and the staged size, bound to
			// the tree, stays true of it.
			return l.writeFailure(a.SetAux(ctx, auxStaged, head), "store the staged head")
		case target.N == p.Tree.N:
			return inconsistent("another tree of the staged size: its root hash differs")
		case target.N < p.Tree.N:
			return inconsistent("the offered tree is smaller than the staged one")
		}
		if err := l.writeFailure(a.SetAux(ctx, auxStagedSize, stagedSizeValue(held.Tree.N, target)), "store the staged size"); err != nil {
			return err
		}
		return l.writeFailure(a.SetAux(ctx, auxStaged, head), "store the staged head")
	})
}

// Stage verifies a part of the extension to ext.Head, a head too far ahead
// to reach in one Extend, and stores it ahead of the published head, which
// stays as it is (see the comment on auxStaged for the whole procedure).
// The checks and their errors are Extend's, but that the tiles may be any
// part of those the extension names: each is authenticated against
// ext.Head's root through the tiles given and those staged before, which
// must include its ancestors and the tree's right edge. It fails with a
// *PendingError while the staging of another head is unfinished, and if the
// store keeps no auxiliary state.
//
// The verification runs in the caller's goroutine (PrepareStage, unless
// ext comes from it), the commit in the sequencer's.
func (l *Log) Stage(ctx context.Context, ext Extension) error {
	if l.origin == nil {
		return errors.New("only a mirror (opened with verifier keys) stages extensions")
	}
	a, ok := l.store.(AuxStore)
	if !ok {
		return fmt.Errorf("cannot stage: %w; extend in one step", errNoAux)
	}
	if ext.prep == nil && l.shared == nil {
		ext = l.PrepareStage(ctx, ext)
	}
	return l.control(ctx, func(ctx context.Context) error {
		b, first, target, keys, err := l.stageReady(ctx, ext)
		if err != nil || b == nil {
			return err
		}
		// The staged size before this commit, if recorded (auxStagedSize).
		from, recorded := b.Tree.N, true
		if first {
			// The size first, so that a staged head never goes with
			// another tree's size or none.
			if err := l.writeFailure(a.SetAux(ctx, auxStagedSize, stagedSizeValue(from, target)), "store the staged size"); err != nil {
				return err
			}
			if err := l.writeFailure(a.SetAux(ctx, auxStaged, ext.Head), "store the staged head"); err != nil {
				return err
			}
		} else {
			v, err := a.Aux(ctx, auxStagedSize)
			if err != nil {
				return &readError{fmt.Errorf("failed to read the staged size: %w", err)}
			}
			if from, recorded, err = parseStagedSize(v, target); err != nil {
				return err
			}
			if !recorded { // begun before the record: Staged said the held size
				from, recorded = b.Tree.N, true
			}
		}
		// The head stays: nothing is published, and reads ignore the
		// staged data until Extend publishes the head it belongs to.
		if err := l.writeFailure(l.commitStore(ctx, b), "store staged tiles and records"); err != nil {
			return err
		}
		l.lastStages = append(l.lastStages, stagedKeys{commits: l.commits.Load(), keys: keys})
		if len(l.lastStages) > maxPrepared {
			l.lastStages = slices.Delete(l.lastStages, 0, 1)
		}
		return l.recordStaged(ctx, a, max(from, b.Tree.N), target, b.Tiles)
	})
}

// recordStaged records how far the staging of target has got
// (auxStagedSize) after a Stage commit of tiles, from the size recorded
// before it. A failure to write that stored nothing is only logged: the
// size lags the tiles, which costs staging them again.
func (l *Log) recordStaged(ctx context.Context, a AuxStore, from int64, target tlog.Tree, tiles []Tile) error {
	size, err := l.stagedAfter(ctx, from, target, tiles)
	if err != nil {
		// The tiles are committed; only their count is unknown: keep the
		// size recorded before, which lags.
		l.log.Warn("failed to read how far the staging got; a resumed staging will stage some tiles again",
			"recorded", from, "err", err)
		return nil
	}
	if size == from {
		return nil
	}
	err = a.SetAux(ctx, auxStagedSize, stagedSizeValue(size, target))
	if errors.Is(err, ErrNotPersisted) {
		l.log.Warn("failed to record how far the staging got; a resumed staging will stage some tiles again",
			"staged", size, "recorded", from, "err", err)
		return nil
	}
	return l.writeFailure(err, "store the staged size")
}

// A prepared is a Stage call's verification, made by PrepareStage outside
// the sequencer, against the held head and the store as they were then.
type prepared struct {
	held    *Head
	commits uint64           // l.commits when it began
	batch   *Batch           // what to commit; nil if nothing, or with err
	target  tlog.Tree        // ext.Head's tree
	keys    map[string]int64 // the keys batch indexes, and their ids
	err     error
}

// maxPrepared is how many commits may come between PrepareStage and Stage
// with the prepared verification still of use: so many Stage commits.
const maxPrepared = 4

// stagedKeys are the keys one of the sequencer's Stage commits indexed.
type stagedKeys struct {
	commits uint64 // l.commits just after it
	keys    map[string]int64
}

// PrepareStage returns ext carrying the verification Stage makes, made now
// in the caller's goroutine, so that a follower can verify the next part of
// a staging while the sequencer commits the ones before (two cores busy,
// not one). Stage then commits ext without verifying it again if the log
// has committed nothing in between but up to maxPrepared Stage calls (whose
// keys it knows: they only decide where a module version staged twice is
// indexed), and verifies it again, in the sequencer, otherwise: a prepared
// Extension is trusted no more than another, and its errors are those of
// that second verification, but for damage found in the store (ErrCorrupt:
// a staged tile that no longer hashes to the head), which stands, logged
// and counted once, where found (refusing is safe; a repair is seen by the
// next call). ext must not be changed afterwards. On a
// shared store, which other processes change, it returns ext as it is:
// Stage verifies in the sequencer there.
func (l *Log) PrepareStage(ctx context.Context, ext Extension) Extension {
	if l.shared != nil {
		return ext
	}
	p := &prepared{commits: l.commits.Load(), held: l.pub.Load()}
	ext.prep = nil
	if p.target, p.err = l.openExtension(ext); p.err == nil {
		p.batch, _, p.err = l.stageAhead(ctx, p.held, ext, p.target)
	}
	if p.batch != nil {
		p.keys = indexedKeys(p.batch.Records)
	}
	ext.prep = p
	return ext
}

// stageReady returns, in the sequencer, the batch of a Stage call, whether
// it starts the staging of its head, the head's tree and the keys the
// batch indexes: prepared, if that still holds (see PrepareStage), else
// verified now.
func (l *Log) stageReady(ctx context.Context, ext Extension) (*Batch, bool, tlog.Tree, map[string]int64, error) {
	p := ext.prep
	if p != nil && errors.Is(p.err, ErrCorrupt) {
		return nil, false, p.target, nil, p.err // the store's damage: see PrepareStage
	}
	if p == nil || p.err != nil || !l.stillHolds(p) {
		target, err := l.openExtension(ext)
		if err != nil {
			return nil, false, target, nil, err
		}
		b, first, err := l.stageAhead(ctx, l.pub.Load(), ext, target)
		if err != nil || b == nil {
			return nil, false, target, nil, err
		}
		return b, first, target, indexedKeys(b.Records), nil
	}
	// The staging may have begun, or ended, since.
	pending, err := l.checkPending(ctx, p.held, ext, p.target)
	if err != nil || p.batch == nil {
		return nil, false, p.target, nil, err
	}
	return p.batch, pending == nil, p.target, p.keys, nil
}

// stillHolds reports whether prepared p may be committed as it is: the
// held head is the one it was verified against and the store has not
// changed since, but for the sequencer's last Stage commits, whose keys
// p's batch then stops indexing wherever one of them indexed them under a
// smaller id (the only thing a Stage commit changes that a verification
// reads: the tiles it reads are given, held or in the skeleton).
func (l *Log) stillHolds(p *prepared) bool {
	if l.pub.Load() != p.held {
		return false
	}
	since := l.commits.Load() - p.commits
	if since == 0 {
		return true
	}
	if p.batch == nil || since > uint64(len(l.lastStages)) {
		return false
	}
	stages := l.lastStages[len(l.lastStages)-int(since):]
	if stages[0].commits != p.commits+1 || stages[len(stages)-1].commits != l.commits.Load() {
		return false
	}
	for _, st := range stages {
		for i := range p.batch.Records {
			r := &p.batch.Records[i]
			if id, ok := st.keys[r.Key]; ok && id < r.ID { // keys holds no ""
				delete(p.keys, r.Key)
				r.Key = ""
			}
		}
	}
	return true
}

// indexedKeys maps the keys recs index to their ids.
func indexedKeys(recs []StoredRecord) map[string]int64 {
	keys := make(map[string]int64, len(recs))
	for _, r := range recs {
		if r.Key != "" {
			keys[r.Key] = r.ID
		}
	}
	return keys
}

// stageAhead verifies a Stage call, whose head openExtension verified and
// found of tree target, against the held head and returns the batch
// storing it, and whether it starts the staging of its head.
func (l *Log) stageAhead(ctx context.Context, held *Head, ext Extension, target tlog.Tree) (*Batch, bool, error) {
	p, err := l.checkPending(ctx, held, ext, target)
	if err != nil {
		return nil, false, err
	}
	if target.N <= held.Tree.N {
		if target.N < held.Tree.N {
			return nil, false, smallerError(held, ext, target)
		}
		return nil, false, errors.New("nothing to stage: the offered tree is the held one; use Extend")
	}
	recs, err := l.verifyExtension(ctx, held, target, ext, false)
	if err != nil {
		return nil, false, err
	}
	b := &Batch{Prev: held.Signed, Head: held.Signed, Tree: held.Tree, Records: recs, Tiles: sortedTiles(ext.Tiles)}
	if len(b.Tiles) == 0 && len(b.Records) == 0 {
		return nil, false, nil
	}
	return b, p == nil, nil
}

// authenticate checks the tiles of an extension from held to target (the
// given ones, or with all every one, given or staged), and that target
// extends held, and returns a reader of target's hashes that
// authenticates every tile it reads.
func (l *Log) authenticate(ctx context.Context, held *Head, target tlog.Tree, ext Extension, all bool) (tlog.HashReader, error) {
	hashes, err := l.checkTiles(ctx, held.Tree, target, ext.Tiles, all)
	if err != nil {
		return nil, err
	}
	if err := ProveExtends(target, held.Tree, hashes); err != nil {
		var re *readError
		if errors.As(err, &re) {
			return nil, err
		}
		if errors.Is(err, errTileMissing) {
			return nil, fmt.Errorf("%w: %w", ErrUnverified, err)
		}
		if corrupt := (*CorruptTileError)(nil); errors.As(err, &corrupt) {
			return nil, err // a staged tile damaged since (extensionHashes)
		}
		return nil, &InconsistentError{Held: held.Signed, Offered: ext.Head, HeldTree: held.Tree, OfferedTree: target, Err: err}
	}
	if err := l.checkPrefixes(ctx, held.Tree.N, ext.Tiles); err != nil {
		return nil, err
	}
	return hashes, nil
}

// writeFailure sorts the failure of a write of the sequencer's (doing
// says what it did) by the Store contract: nothing stored (the caller
// fails, the log goes on), or unknown (the log stops). A nil err is nil.
func (l *Log) writeFailure(err error, doing string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotPersisted):
		return fmt.Errorf("failed to %s (nothing was stored): %w", doing, err)
	}
	return l.stop(fmt.Errorf("failed to %s, and the store cannot tell whether it did: %w", doing, err))
}

// sortedTiles returns the given tiles in a stable order: by level, then
// index.
func sortedTiles(given map[tlog.Tile][]byte) []Tile {
	ts := slices.SortedFunc(maps.Keys(given), func(a, b tlog.Tile) int {
		return cmp.Or(cmp.Compare(a.L, b.L), cmp.Compare(a.N, b.N))
	})
	out := make([]Tile, len(ts))
	for i, t := range ts {
		out[i] = Tile{TileID{t.L, t.N}, given[t]}
	}
	return out
}

// StagingPlan splits the tiles of the extension from a tree of size held
// to one of size target (tlog.NewTiles) for Stage: the skeleton, to stage
// first, is every tile of level 1 and above and the level-0 tiles the
// consistency proof and the root need (the one holding the held tree's
// edge, and the target's last); leaves are the other level-0 tiles, in
// ascending order, to stage after it in that order, each authenticated by
// its staged parent.
func StagingPlan(held, target int64) (skeleton, leaves []tlog.Tile) {
	first, last := held>>tileHeight, (target-1)>>tileHeight
	for _, t := range tlog.NewTiles(tileHeight, held, target) {
		if t.L > 0 || t.N == first || t.N == last {
			skeleton = append(skeleton, t)
		} else {
			leaves = append(leaves, t)
		}
	}
	return skeleton, leaves
}
