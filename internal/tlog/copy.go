package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// CopyOptions configure Copy.
type CopyOptions struct {
	// Chunk is the most records per commit into the destination (default
	// 8192).
	Chunk int
	// Progress, if set, is called after each commit with the records
	// copied so far and the tree size being copied.
	Progress func(done, total int64)
}

// ErrOtherLog is Copy's answer for a destination holding another log.
var ErrOtherLog = errors.New("destination holds another log")

// Copy copies the log held in src into dst and verifies the copy in full
// against the signed head it copied, which it returns with its tree. It does not need
// the log's keys: the head is checked against the verifier keys src lists.
//
// dst must hold no log, or an earlier copy of the same log (the same name
// and kind, and a tree the source's extends, or an unfinished copy), which
// is brought up to date. Records and tiles are committed in chunks with
// dst's head unchanged; the signed head comes last, once the copy verified
// in full, so a copy cut short or one that does not verify leaves dst with
// data beyond its head (or no signed head), which Open refuses; running it
// again finishes one cut short. src may be written meanwhile
// (a shared store): the copy ends at the head it read first. A primary src
// that holds data beyond its signed head (rolled back, or an unfinished
// copy) is refused with a *BeyondHeadError, as Open refuses it, and so is
// one whose head does not extend a head a process published and recorded
// as lost (AuxLostHead, not copied), with a *LostHeadError; so is a src
// whose head does not extend one dst records as lost (its log emptied for
// the copy, or older), which keeps that record. A mirror
// src part way through the staging of a newer head (Staged) gives dst that
// head, staged up to the copied tree, before the copied head: its staged
// data is not copied (dst stages it again), but the head is, since the
// origin signed it and the mirror verified it (a copy that forgot it could
// be restored behind it, or follow a fork of it). The keys src records
// as retired (AuxRetiredKeys) are added to those dst records, and a
// mirror's configuration (AuxMirrorConfig) is copied, before the head, so
// that the copy refuses them as src does and is served as src is.
func Copy(ctx context.Context, dst, src Store, opts CopyOptions) (State, tlog.Tree, error) {
	if opts.Chunk <= 0 {
		opts.Chunk = 8192
	}
	st, err := src.Load(ctx)
	if err != nil {
		return State{}, tlog.Tree{}, fmt.Errorf("failed to read the source: %w", err)
	}
	if len(st.Head) == 0 {
		return State{}, tlog.Tree{}, errors.New("the source holds no signed tree head (an unfinished copy, or a mirror that copied nothing yet)")
	}
	tree, err := openWithVKeys(st.Head, st.Meta.VKeys, !st.Meta.Mirror)
	if err != nil {
		return State{}, tlog.Tree{}, fmt.Errorf("the source's head: %w", err)
	}
	if !st.Meta.Mirror {
		// A primary holding data beyond its head was rolled back (or is
		// an unfinished copy): Open refuses it, and a copy up to its head
		// would hand a clean database that signs a fork of the tree its
		// data proves was signed. A mirror's staging is legitimate.
		openHead := func(h []byte) (tlog.Tree, error) { return openWithVKeys(h, st.Meta.VKeys, true) }
		if err := checkExtent(ctx, src, st.Head, tree, openHead); err != nil {
			return State{}, tlog.Tree{}, fmt.Errorf("the source: %w", err)
		}
		// Likewise one whose head does not extend a head a process
		// published and recorded as lost: the record is not copied.
		if err := checkLostHead(ctx, src, tree); err != nil {
			return State{}, tlog.Tree{}, fmt.Errorf("the source: %w", err)
		}
		// A destination that records a lost head (its log emptied for
		// the copy, or at an older head) takes only a tree extending it:
		// the record is then the only trace of the lost commits, and
		// a copy of a mirror behind them would open and sign a fork.
		err := CheckLostHead(ctx, dst, tree, storeTiles(ctx, src, tree.N))
		if errors.As(err, new(*LostHeadError)) {
			return State{}, tlog.Tree{}, fmt.Errorf("the destination records as lost a head the source does not hold, so the copy would not open: %w", err)
		}
		if err != nil {
			// Not a lost head: the record, or the source's tiles, could
			// not be read now.
			return State{}, tlog.Tree{}, fmt.Errorf("the destination: %w", err)
		}
	}
	cur, from, err := copyStart(ctx, dst, src, st, tree)
	if err != nil {
		return State{}, tlog.Tree{}, err
	}
	c := copier{ctx: ctx, dst: dst, src: src, mirror: st.Meta.Mirror, head: cur, tilesFrom: from}
	if st.Meta.Mirror {
		from = 0 // a mirror may have learned older records since
	}
	for start := from; start < tree.N; start += int64(opts.Chunk) {
		end := min(start+int64(opts.Chunk), tree.N)
		if err := c.chunk(start, end); err != nil {
			return State{}, tlog.Tree{}, err
		}
		if opts.Progress != nil {
			opts.Progress(end, tree.N)
		}
	}
	// The copy is verified in full before it gets the head: once stored,
	// the head makes dst servable, and Open's default (VerifyTail) would
	// not see a damaged tile or record in the middle of the tree.
	if err := verifyCopy(ctx, dst, st, tree, cur.Meta.VKeys); err != nil {
		return State{}, tlog.Tree{}, fmt.Errorf("the copy does not verify: %w", err)
	}
	if st.Meta.Mirror {
		if err := copyStaging(ctx, dst, src, st, tree); err != nil {
			return State{}, tlog.Tree{}, err
		}
		// Before the head: a copy served without it (sumd serve -mirror)
		// would have no origin, and a private mirror's would be public.
		if err := copyMirrorConfig(ctx, dst, src); err != nil {
			return State{}, tlog.Tree{}, err
		}
	}
	// Before the head: a copy that opened without the record would take a
	// retired key back.
	if err := CopyRetired(ctx, dst, src); err != nil {
		return State{}, tlog.Tree{}, err
	}
	// The head last: from here on dst serves the copy.
	err = dst.Commit(ctx, &Batch{Prev: cur.Head, Head: st.Head, Tree: tree, VKeys: st.Meta.VKeys})
	if err != nil {
		return State{}, tlog.Tree{}, fmt.Errorf("failed to store the signed head: %w", err)
	}
	return st, tree, nil
}

// copyStaging gives dst the head the mirror src is staging beyond tree, if
// any, staged up to tree: the size bound to the head's tree first, then
// the head (as Stage writes them).
func copyStaging(ctx context.Context, dst, src Store, st State, tree tlog.Tree) error {
	sa, ok := src.(AuxStore)
	if !ok {
		return nil // no store without auxiliary state stages
	}
	head, err := sa.Aux(ctx, auxStaged)
	if err != nil {
		return fmt.Errorf("failed to read the source's staged head: %w", err)
	}
	if len(head) == 0 {
		return nil
	}
	staged, err := openWithVKeys(head, st.Meta.VKeys, false)
	if err != nil {
		return fmt.Errorf("%w: the source's staged head: %w", ErrCorrupt, err)
	}
	if staged.N <= tree.N {
		return nil // reached
	}
	da, ok := dst.(AuxStore)
	if !ok {
		return fmt.Errorf("the source mirror is part way to a newer head of its origin (tree %d; it holds %d), and the destination cannot keep it (it keeps no auxiliary state): "+
			"copy into a bbolt file or a PostgreSQL database, or let the mirror reach that head first", staged.N, tree.N)
	}
	if err := da.SetAux(ctx, auxStagedSize, stagedSizeValue(tree.N, staged)); err != nil {
		return fmt.Errorf("failed to store the staged size: %w", err)
	}
	if err := da.SetAux(ctx, auxStaged, head); err != nil {
		return fmt.Errorf("failed to store the staged head: %w", err)
	}
	return nil
}

// AuxMirrorConfig keeps a mirror's configuration (mirror.Config: its
// origin, -modules, and the credentials its data was read with), which
// Copy carries.
const AuxMirrorConfig = "mirror/config"

// copyMirrorConfig gives dst the configuration the mirror src keeps
// (AuxMirrorConfig), if any.
func copyMirrorConfig(ctx context.Context, dst, src Store) error {
	sa, ok := src.(AuxStore)
	if !ok {
		return nil
	}
	v, err := sa.Aux(ctx, AuxMirrorConfig)
	if err != nil {
		return fmt.Errorf("failed to read the source's mirror configuration: %w", err)
	}
	if v == nil {
		return nil
	}
	da, ok := dst.(AuxStore)
	if !ok {
		return errors.New("the source mirror keeps its configuration (origin, credentials), which the destination cannot keep (it keeps no auxiliary state): copy into a bbolt file or a PostgreSQL database")
	}
	if err := da.SetAux(ctx, AuxMirrorConfig, v); err != nil {
		return fmt.Errorf("failed to store the mirror configuration: %w", err)
	}
	return nil
}

// CopyRetired adds the keys src records as retired (AuxRetiredKeys) to
// those dst records: the copy's AddKey must refuse them too (Copy, and
// a restore over an old database).
func CopyRetired(ctx context.Context, dst, src Store) error {
	sa, ok := src.(AuxStore)
	if !ok {
		return nil
	}
	v, err := sa.Aux(ctx, AuxRetiredKeys)
	if err != nil {
		return fmt.Errorf("failed to read the source's retired keys: %w", err)
	}
	keys, err := parseRetired(v)
	if err != nil {
		return fmt.Errorf("the source's retired keys: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	da, ok := dst.(AuxStore)
	if !ok {
		return fmt.Errorf("the source records retired keys (%s), which the destination cannot keep (it keeps no auxiliary state): copy into a bbolt file or a PostgreSQL database", strings.Join(keys, ", "))
	}
	v, err = da.Aux(ctx, AuxRetiredKeys)
	if err != nil {
		return fmt.Errorf("failed to read the destination's retired keys: %w", err)
	}
	held, err := parseRetired(v)
	if err != nil {
		return fmt.Errorf("the destination's retired keys: %w", err)
	}
	merged := held
	for _, k := range keys {
		if !slices.Contains(merged, k) {
			merged = append(merged, k)
		}
	}
	if len(merged) == len(held) {
		return nil
	}
	if err := da.SetAux(ctx, AuxRetiredKeys, retiredValue(merged)); err != nil {
		return fmt.Errorf("failed to store the retired keys: %w", err)
	}
	return nil
}

// verifyCopy verifies what dst holds, before it holds st's head, as
// VerifyStore(VerifyFull) would verify it with that head: every tile and
// record against tree, and (a primary) nothing beyond it. held are the
// verifier keys dst lists now. A mismatch is ErrCorrupt (see corrupt).
func verifyCopy(ctx context.Context, dst Store, st State, tree tlog.Tree, held []string) error {
	if err := verify(ctx, dst, tree, VerifyFull, !st.Meta.Mirror); err != nil {
		return corrupt(err)
	}
	if st.Meta.Mirror {
		return nil
	}
	// dst's Extent names the head dst holds, if any: an earlier copy's,
	// signed with the keys dst lists (held), and a tree the source's
	// extends, so no larger bound than tree.
	openHead := func(h []byte) (tlog.Tree, error) { return openWithVKeys(h, held, true) }
	return checkExtent(ctx, dst, st.Head, tree, openHead)
}

// copyStart creates the log in dst, or checks that dst holds an earlier
// copy of it, and returns dst's state and the first record to copy.
func copyStart(ctx context.Context, dst, src Store, st State, tree tlog.Tree) (State, int64, error) {
	cur, err := dst.Load(ctx)
	if errors.Is(err, ErrNoLog) {
		cur = State{Meta: st.Meta}
		if err := dst.Create(ctx, st.Meta, nil); err != nil {
			return State{}, 0, fmt.Errorf("failed to create the log in the destination: %w", err)
		}
		return cur, 0, nil
	}
	if err != nil {
		return State{}, 0, fmt.Errorf("failed to read the destination: %w", err)
	}
	if cur.Meta.Name != st.Meta.Name || cur.Meta.Mirror != st.Meta.Mirror {
		return State{}, 0, fmt.Errorf("%w: %s (mirror: %v), not %s (mirror: %v); copy into an empty database",
			ErrOtherLog, cur.Meta.Name, cur.Meta.Mirror, st.Meta.Name, st.Meta.Mirror)
	}
	if len(cur.Head) == 0 {
		if !slices.Equal(cur.Meta.VKeys, st.Meta.VKeys) {
			return State{}, 0, fmt.Errorf("%w: an unfinished copy of %s with keys %s, not %s", ErrOtherLog,
				cur.Meta.Name, strings.Join(cur.Meta.VKeys, ", "), strings.Join(st.Meta.VKeys, ", "))
		}
		return cur, 0, nil
	}
	// An earlier copy: signed by a key the source signs with, and its tree
	// one the source's extends.
	if !slices.ContainsFunc(cur.Meta.VKeys, func(k string) bool { return slices.Contains(st.Meta.VKeys, k) }) {
		return State{}, 0, fmt.Errorf("%w: %s signed with %s, not with %s", ErrOtherLog,
			cur.Meta.Name, strings.Join(cur.Meta.VKeys, ", "), strings.Join(st.Meta.VKeys, ", "))
	}
	held, err := openWithVKeys(cur.Head, cur.Meta.VKeys, !cur.Meta.Mirror)
	if err != nil {
		return State{}, 0, fmt.Errorf("the destination's head: %w", err)
	}
	if held.N > tree.N {
		return State{}, 0, fmt.Errorf("%w: its tree (%d records) is larger than the source's (%d)", ErrOtherLog, held.N, tree.N)
	}
	root, err := tlog.TreeHash(held.N, storeTiles(ctx, src, tree.N))
	if err != nil {
		return State{}, 0, fmt.Errorf("failed to read the source's tree: %w", err)
	}
	if root != held.Hash {
		return State{}, 0, fmt.Errorf("%w: its tree of %d records is not the source's", ErrOtherLog, held.N)
	}
	return cur, held.N, nil
}

// A copier commits chunks of a log into dst under dst's unchanged head.
type copier struct {
	ctx       context.Context
	dst, src  Store
	mirror    bool
	head      State
	tilesFrom int64 // the tree size dst holds: its tiles are not rewritten narrower
}

// chunk copies records start to end-1 and the tiles of the tree of size
// end that differ from those of the tree of size start (and of the tree
// dst holds: tiles only grow).
func (c *copier) chunk(start, end int64) error {
	ids := make([]int64, end-start)
	for i := range ids {
		ids[i] = start + int64(i)
	}
	texts, err := c.src.ReadRecords(c.ctx, ids)
	if err != nil {
		return fmt.Errorf("failed to read records %d to %d: %w", start, end-1, err)
	}
	b := &Batch{Prev: c.head.Head, Head: c.head.Head}
	if len(c.head.Head) > 0 {
		b.Tree, _ = tlog.ParseTree(headText(c.head.Head))
	}
	for i, text := range texts {
		switch {
		case text == nil && c.mirror:
			continue
		case text == nil:
			return fmt.Errorf("the source lacks record %d", ids[i])
		}
		key, err := recordKey(text, !c.mirror)
		if err != nil {
			return fmt.Errorf("the source's record %d: %w", ids[i], err)
		}
		b.Records = append(b.Records, StoredRecord{ID: ids[i], Key: key, Text: text})
	}
	if c.mirror {
		if err := indexFirstIn(c.ctx, c.dst, b.Records); err != nil {
			return err
		}
	}
	for _, t := range tlog.NewTiles(tileHeight, max(start, c.tilesFrom), max(end, c.tilesFrom)) {
		data, err := readTile(c.ctx, c.src, TileID{t.L, t.N}, end)
		if err != nil {
			return fmt.Errorf("failed to read tile %s: %w", t.Path(), err)
		}
		b.Tiles = append(b.Tiles, Tile{TileID{t.L, t.N}, data})
	}
	if err := c.dst.Commit(c.ctx, b); err != nil {
		return fmt.Errorf("failed to store records %d to %d: %w", start, end-1, err)
	}
	return nil
}

// indexFirstIn clears the Key of every record whose module version s
// indexes (or recs index) under a smaller id: a mirror's rule.
func indexFirstIn(ctx context.Context, s Store, recs []StoredRecord) error {
	l := &Log{store: s}
	return l.indexFirst(ctx, recs)
}

func headText(head []byte) []byte {
	text, _, _ := bytes.Cut(head, []byte("\n\n"))
	return append(text[:len(text):len(text)], '\n')
}

// openWithVKeys verifies a signed head with verifier keys and parses its
// tree: every key must have signed it (a primary's), or one (a mirror's).
func openWithVKeys(head []byte, vkeys []string, all bool) (tlog.Tree, error) {
	var verifiers []note.Verifier
	for _, vkey := range vkeys {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return tlog.Tree{}, fmt.Errorf("malformed verifier key %q: %w", vkey, err)
		}
		verifiers = append(verifiers, v)
	}
	n, err := note.Open(head, note.VerifierList(verifiers...))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("failed to verify the signed head with %s: %w", strings.Join(vkeys, ", "), err)
	}
	if all && len(n.Sigs) < len(verifiers) {
		return tlog.Tree{}, fmt.Errorf("the signed head lacks a signature by one of %s", strings.Join(vkeys, ", "))
	}
	return tlog.ParseTree([]byte(n.Text))
}

// VerifyStore verifies the log held in s as Open would, without its keys:
// the head against the verifier keys s lists, then the stored tree against
// the head (mode: tail or full).
func VerifyStore(ctx context.Context, s Store, mode VerifyMode) error {
	st, err := s.Load(ctx)
	if err != nil {
		return err
	}
	if len(st.Head) == 0 {
		return errors.New("the database holds no signed tree head")
	}
	_, err = verifyStored(ctx, s, st, st.Meta.VKeys, !st.Meta.Mirror, mode)
	return err
}

// verifyStored verifies st's head with vkeys (all: every one of them signed
// it, as a primary's; else one, as an origin's), and the tree stored in s
// against it (mode); a mirror's missing head is its empty tree. A
// mismatch is ErrCorrupt (see corrupt).
func verifyStored(ctx context.Context, s Store, st State, vkeys []string, all bool, mode VerifyMode) (tlog.Tree, error) {
	tree := emptyTree()
	if len(st.Head) > 0 {
		var err error
		if tree, err = openWithVKeys(st.Head, vkeys, all); err != nil {
			return tlog.Tree{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	if err := verify(ctx, s, tree, mode, !st.Meta.Mirror); err != nil {
		return tree, corrupt(err)
	}
	if !st.Meta.Mirror {
		openHead := func(head []byte) (tlog.Tree, error) { return openWithVKeys(head, vkeys, all) }
		if err := checkExtent(ctx, s, st.Head, tree, openHead); err != nil {
			return tree, err
		}
	}
	return tree, nil
}
