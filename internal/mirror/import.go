package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// Step caps the records stored per commit (default DefaultStep).
	Step int64
	// Logger receives progress; nil means slog.Default.
	Logger *slog.Logger
	// Progress, if set, is called as records are stored.
	Progress func(done, total int64)
}

// ImportStats is what Import did.
type ImportStats struct {
	Header   BundleHeader
	From, To tlog.Tree // the mirror's tree before and after
	Records  int       // records in the bundle beyond the mirror's tree, stored
	Commits  int
}

// maxSkew is how far in the future a bundle's created and checked times
// may be (the clocks of two machines differ). The header is not signed,
// and the mirror's checked time only moves forward: one far in the future
// would claim freshness for ever and hide every honest bundle's.
const maxSkew = 10 * time.Minute

// errHeld is the answer to a bundle of a tree the mirror already holds:
// verified in full (the first pass), with nothing to store.
var errHeld = errors.New("the mirror already holds the bundle's tree")

// Import verifies the bundle r in full, then stores it: r is read from
// where it is when Import is called, once per pass (one descriptor: a
// bundle file replaced meanwhile does not change what is read). The first
// pass verifies everything against the origin's keys vs and the mirror's
// head — the signed head, every tile up to its root, every record against
// its leaf, that a bundle whose header says full holds every record, and
// that the bundle's tree extends the mirror's — and stores nothing; a
// tampered, truncated, reordered or forked bundle fails it, naming the
// problem (a fork or rollback as a *SecurityError). The second stores it
// in steps (tlog's Stage), verified again by the log, and stops if r reads
// otherwise than in the first; a crash in it is resumed by importing the
// same bundle again, or a newer one: a bundle whose tree provably contains
// the tree an interrupted import staged takes its place, before the second
// pass (a staged head is replaced, never forgotten). A
// third pass, for a full bundle that starts below the mirror's tree, gives
// a full mirror the records of that tree it lacks (bundleFill), and stops
// as the second does if r reads otherwise than in the first.
func Import(ctx context.Context, l *itlog.Log, vs *sumdbclient.Verifiers, r io.ReadSeeker, opts ImportOptions) (*ImportStats, error) {
	if opts.Step <= 0 {
		opts.Step = DefaultStep
	}
	opts.Step = max(opts.Step>>8<<8, 256)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	vs = vs.Limit(MaxTreeSize)
	held := l.Published()
	st := &ImportStats{From: held.Tree, To: held.Tree}
	cfg, err := ReadConfig(ctx, l)
	if err != nil {
		return st, err
	}
	staging, err := l.Staged(ctx)
	if err != nil {
		return st, err
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return st, fmt.Errorf("failed to read the bundle: %w", err)
	}
	c := &bundleCheck{ctx: ctx, l: l, vs: vs, held: held, staging: staging, partial: cfg.partial(), needRecs: map[int64]bool{}, leafRecs: -1}
	h, err := walk(r, start, vs, c)
	st.Header = h
	if err == nil {
		err = c.done()
	}
	passed := errors.Is(err, errHeld)
	if err != nil && !passed {
		return st, err
	}
	// A private mirror's bundle makes the mirror private (ReadWith)
	// before it stores anything of it, as partial is below: the mirror
	// holds the private mirror's data from its first commit on. A bundle
	// of a tree it holds stores nothing but records it lacks (the third
	// pass, which calls it before its first).
	markPrivate := func() error {
		if !h.Private || cfg.private() {
			return nil
		}
		if cfg == nil {
			cfg = &Config{VerifierKeys: l.VerifierKeys()}
		}
		cfg.ReadWith = ReadWithBundle
		return WriteConfig(ctx, l, cfg)
	}
	if !passed {
		if err := markPrivate(); err != nil {
			return st, err
		}
	}
	if h.Partial && !cfg.partial() && !passed {
		// Only an empty mirror gets here, or one that already lacks
		// records (the first pass refuses the others): it is recorded
		// partial before anything is stored, so that the same bundle
		// imported again after a crash is still accepted. A bundle of a
		// tree it holds stores nothing and changes nothing.
		if held.Tree.N > 0 {
			opts.Logger.Warn("the mirror lacks records, and takes a partial bundle: it is partial from now on, and full bundles no longer fill in what it lacks",
				"origin", l.Name(), "tree_size", held.Tree.N)
		}
		if cfg == nil {
			cfg = &Config{VerifierKeys: l.VerifierKeys()}
		}
		cfg.Partial = true
		if err := WriteConfig(ctx, l, cfg); err != nil {
			return st, err
		}
	}
	if !passed {
		if err := store(ctx, l, cfg, c, r, start, opts, st); err != nil {
			return st, err
		}
	}
	if !h.Partial && !cfg.partial() && h.From < held.Tree.N {
		// A full mirror missing records of the tree it held (one that
		// imported a bundle stripped of them before imports refused
		// those) gets them back from a full bundle that carries them.
		f := &bundleFill{ctx: ctx, l: l, below: held.Tree.N, step: int(opts.Step), batch: map[int64][]byte{}, verified: c.hdr, verifiedHead: c.head, first: markPrivate}
		_, err := walk(r, start, vs, f)
		if err == nil {
			err = f.flush()
		}
		st.Records += f.filled
		st.Commits += f.commits
		if err != nil {
			return st, err
		}
		if f.filled > 0 {
			opts.Logger.Info("imported records the mirror lacked", "origin", l.Name(), "records", f.filled)
		}
	}
	if passed && c.tree.N != held.Tree.N {
		return st, nil // its checked time is an older head's
	}
	if err := takeChecked(ctx, l, h.Checked); err != nil {
		return st, err
	}
	return st, nil
}

// takeChecked moves the mirror's checked time forward to a bundle's,
// checked. A checked time in the future (an unsigned header forged before
// imports refused one) is replaced by any honest one. A bundle without
// one (its mirror never knew its head to be the origin's latest: a
// primary's export, or a mirror's that never reached its origin) says
// nothing of how current its head is, and its created time is only when
// it was written, maybe long after: the mirror keeps the time it had (its
// older head was the latest then, so the newer one is no less current),
// or none, and a future one is cleared.
func takeChecked(ctx context.Context, l *itlog.Log, checked time.Time) error {
	prev, err := Checked(ctx, l)
	switch {
	case err != nil:
		return nil // unreadable: left as it is, as ever
	case prev.After(time.Now().Add(maxSkew)): // replaced, or cleared
	case checked.After(prev): // never true of none
	default:
		return nil
	}
	return setChecked(ctx, l, checked)
}

// store is Import's second pass: it stores the bundle c verified, beyond
// the mirror's tree.
func store(ctx context.Context, l *itlog.Log, cfg *Config, c *bundleCheck, r io.ReadSeeker, start int64, opts ImportOptions, st *ImportStats) error {
	st.Records = c.nrecords
	if c.replaceStaging {
		// Replaced, never dropped, before anything is read again: a
		// second pass that fails must leave the mirror staged to a
		// verified head no older than the one it had staged, or Restore
		// would roll its primary back behind that head and a follower
		// take a fork of it.
		opts.Logger.Info("staging the bundle's head in the place of the one an interrupted import left: the bundle's tree contains it", "origin", l.Name(),
			"held", c.held.Tree.N, "staged", c.staging.Tree.N, "bundle", c.tree.N)
		if err := l.ReplaceStaging(ctx, c.staging.Head, c.head); err != nil {
			return err
		}
	}
	s := &bundleStore{ctx: ctx, l: l, opts: opts, held: c.held, kept: c.kept, st: st, verified: c.hdr, verifiedHead: c.head}
	if _, err := walk(r, start, c.vs, s); err != nil {
		return errors.Join(err, s.wait()) // the Stage in flight ends before Import returns
	}
	if err := s.finish(); err != nil {
		return err
	}
	st.To = l.Published().Tree
	return nil
}

func walk(r io.ReadSeeker, start int64, vs *sumdbclient.Verifiers, v bundleVisitor) (BundleHeader, error) {
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return BundleHeader{}, fmt.Errorf("failed to read the bundle again: %w", err)
	}
	return walkBundle(r, func(head []byte) (tlog.Tree, error) {
		tree, err := vs.Open(head)
		if err != nil {
			return tree, errors.New(vs.Explain("the bundle", keyFlag, err))
		}
		return tree, nil
	}, v)
}

// bundleCheck is the first pass: it verifies a bundle in full, storing
// nothing. It keeps the skeleton in memory (1/256 of the tiles) and one
// level-0 tile at a time.
type bundleCheck struct {
	ctx  context.Context
	l    *itlog.Log
	vs   *sumdbclient.Verifiers
	held *itlog.Head
	// staging: what an interrupted import (or mirror run) staged, or nil.
	// A bundle of another head whose tree provably contains the staged one
	// takes its place (replaceStaging); stagedEdge is the bundle's level-0 tile at
	// the staged tree's edge, which that proof reads.
	staging        *itlog.Staging
	replaceStaging bool
	stagedEdge     map[tlog.Tile][]byte
	// partial: the mirror holds only some records (Config.partial), so a
	// partial bundle loses nothing it holds.
	partial bool

	hdr      BundleHeader
	head     []byte
	tree     tlog.Tree
	hashes   tlog.HashReader
	tiles    map[tlog.Tile][]byte // the skeleton, authenticated
	cur      tlog.Tile            // the level-0 tile read last
	curData  []byte
	kept     map[tlog.Tile][]byte // the level-0 tile holding the mirror's edge, if not in the skeleton
	nrecords int
	// passed: the mirror holds the bundle's tree already (a prefix of its
	// own, proven). The bundle is still verified in full, so that a
	// damaged one is named, not reported imported; done then says errHeld.
	passed bool
	// A full bundle (hdr.Partial false) must carry every record from
	// hdr.From on: needRecs are the level-0 tiles of the skeleton whose
	// records entry has not come yet, leafRecs the level-0 tile read last
	// if its records entry has not come (-1 if it has).
	needRecs map[int64]bool
	leafRecs int64
	// own are the mirror's tiles ReadTiles served since the last
	// authentication began (authentic to the held tree: tlog.Log's
	// ReadTileData authenticates them), for the part of the tree the
	// bundle does not change.
	own []tlog.Tile
}

func (c *bundleCheck) header(h BundleHeader, head []byte, tree tlog.Tree) error {
	c.hdr, c.head, c.tree = h, head, tree
	switch {
	case h.Name != c.l.Name():
		return fmt.Errorf("the bundle is of %s, but the mirror is of %s", h.Name, c.l.Name())
	case h.Created.After(time.Now().Add(maxSkew)):
		return fmt.Errorf("the bundle's header says it was created at %s, in the future: a forged header, or the clock of the machine that made it is wrong; "+
			"export it again once that clock is right", h.Created.UTC().Format(time.RFC3339))
	case h.Checked.After(time.Now().Add(maxSkew)):
		return fmt.Errorf("the bundle's header says its head was checked at %s, in the future: a forged header, or the clock of the machine that made it is wrong; "+
			"export it again once that clock is right", h.Checked.UTC().Format(time.RFC3339))
	case h.From > c.held.Tree.N:
		return fmt.Errorf("the bundle starts at tree %d, but the mirror holds only %d records: import the bundles before it first, or export one with -since %d",
			h.From, c.held.Tree.N, c.held.Tree.N)
	}
	if h.Partial && !c.partial && c.held.Tree.N > 0 {
		lacks, err := c.lacksRecords()
		if err != nil {
			return fmt.Errorf("the bundle is a partial mirror's (it holds only some records): failed to read the mirror's records to tell whether it holds every one: %w", err)
		}
		if !lacks {
			return errors.New("the bundle is a partial mirror's (it holds only some records), but this mirror holds every record: " +
				"importing it would lose records for ever; import a full mirror's bundle (exported by a mirror made without -modules)")
		}
	}
	c.hashes = tlog.TileHashReader(tree, c)
	if tree.N > c.held.Tree.N {
		return nil
	}
	// A bundle of a tree the mirror has passed: it must be a prefix of the
	// held one, or the origin forked.
	if err := provePrefix(c.l, c.held, tree, head); err != nil {
		return err
	}
	c.passed = true
	return nil
}

// lacksRecords reports whether the mirror lacks a record of its tree: a
// mirror fed partial bundles before Config.Partial recorded that is
// partial, and takes partial bundles (store records it), though its
// configuration says nothing. A full mirror is read whole to tell, once,
// before it refuses the bundle.
func (c *bundleCheck) lacksRecords() (bool, error) {
	const chunk = 1 << 16
	for lo := int64(0); lo < c.held.Tree.N; lo += chunk {
		if _, err := c.l.ReadRecords(c.ctx, lo, min(chunk, c.held.Tree.N-lo)); errors.Is(err, fs.ErrNotExist) {
			c.partial = true
			return true, nil
		} else if err != nil {
			return false, err
		}
	}
	return false, nil
}

func (c *bundleCheck) skeleton(tiles map[tlog.Tile][]byte) error {
	c.tiles = tiles
	c.kept = map[tlog.Tile][]byte{}
	for t := range tiles {
		if err := c.authenticate(t); err != nil {
			return err
		}
		if t.L == 0 && !c.hdr.Partial {
			c.needRecs[t.N] = true
		}
	}
	return nil
}

func (c *bundleCheck) leaf(t tlog.Tile, data []byte) error {
	c.cur, c.curData = t, data
	if err := c.authenticate(t); err != nil {
		return err
	}
	if err := c.allRecords(); err != nil {
		return err
	}
	if !c.hdr.Partial {
		c.leafRecs = t.N
	}
	if t.N == c.held.Tree.N>>8 {
		c.kept[t] = data
	}
	if c.staging != nil && t.N == c.staging.Tree.N>>8 {
		c.stagedEdge = map[tlog.Tile][]byte{t: data}
	}
	return nil
}

// authenticate checks tile t against the signed root, through its parents.
func (c *bundleCheck) authenticate(t tlog.Tile) error {
	c.own = c.own[:0]
	if _, err := c.hashes.ReadHashes([]int64{tlog.StoredHashIndex(t.L*8, t.N<<8+int64(t.W-1))}); err != nil {
		if len(c.own) > 0 && !c.passed { // passed: its tree is proven a prefix of the mirror's
			return c.forked(fmt.Sprintf("the bundle's tile %s", t.Path()), err)
		}
		return fmt.Errorf("the bundle's tile %s does not hash to its signed head (tampered or damaged): %w", t.Path(), err)
	}
	return nil
}

// forked is the refusal of a bundle whose tiles (what names them) do not
// hash to its signed head with the mirror's own tiles, c.own, read for the
// part of the tree the bundle does not change: those are authentic to the
// mirror's signed head, and the bundle's tree contains that head's only if
// it is built on them. Two validly signed heads whose trees are not one
// history are a fork, as the follower reports one whose proof fails: the
// bundle's own data cannot tell it from a bundle tile damaged on the way
// (an incremental bundle carries no tile the extension does not change),
// which the error says, but a damaged copy is the rarer case and importing
// a fresh one settles it.
func (c *bundleCheck) forked(what string, err error) error {
	own := make([]string, len(c.own))
	for i, t := range c.own {
		own[i] = t.Path()
	}
	return &SecurityError{Kind: KindFork, Origin: c.l.Name(), Held: c.held.Signed, Offered: c.head, Err: fmt.Errorf(
		"the bundle's signed tree of %d records does not contain the tree of %d records the mirror holds: %s, with the mirror's own %s for the part of the tree the bundle does not change, do not hash to the bundle's signed head (%v); "+
			"unless the bundle was damaged on the way (then a fresh copy of it imports), the origin signed two histories",
		c.tree.N, c.held.Tree.N, what, strings.Join(own, ", "), err)}
}

func (c *bundleCheck) records(n int64, recs map[int64][]byte, ids []int64) error {
	data := c.curData
	if c.curData == nil || c.cur.N != n {
		t := tlog.Tile{H: 8, L: 0, N: n, W: int(min(c.tree.N-n<<8, 256))}
		data = c.tiles[t] // a level-0 tile of the skeleton
	}
	for _, id := range ids {
		i := int(id - n<<8)
		if (i+1)*tlog.HashSize > len(data) || tlog.RecordHash(recs[id]) != tlog.Hash(data[i*tlog.HashSize:]) {
			return fmt.Errorf("the bundle's record %d does not hash to its signed head (tampered or damaged)", id)
		}
	}
	if !c.hdr.Partial {
		lo, hi := max(n<<8, c.hdr.From), min((n+1)<<8, c.tree.N)
		if int64(len(ids)) != hi-lo {
			return c.lacks(n, lo, hi, ids)
		}
		delete(c.needRecs, n)
		if n == c.leafRecs {
			c.leafRecs = -1
		}
	}
	for _, id := range ids {
		if id >= c.held.Tree.N {
			c.nrecords++
		}
	}
	return nil
}

// allRecords checks, in a full bundle, that the records entries of the
// level-0 tiles read so far have all come.
func (c *bundleCheck) allRecords() error {
	if c.leafRecs >= 0 {
		return c.missing(c.leafRecs)
	}
	if len(c.needRecs) > 0 {
		return c.missing(slices.Min(slices.Collect(maps.Keys(c.needRecs))))
	}
	return nil
}

// missing is the refusal of a full bundle without data tile n's records.
func (c *bundleCheck) missing(n int64) error {
	lo, hi := max(n<<8, c.hdr.From), min((n+1)<<8, c.tree.N)
	return fmt.Errorf("the bundle's header says it holds every record (partial false), but it has no entry %s (records %d to %d): entries were removed",
		recordsEntry(n), lo, hi-1)
}

// lacks is the refusal of a full bundle whose entry for data tile n, of
// the records from lo to hi-1, holds only ids (ascending, in range).
func (c *bundleCheck) lacks(n, lo, hi int64, ids []int64) error {
	id := lo
	for _, x := range ids {
		if x != id {
			break
		}
		id++
	}
	return fmt.Errorf("the bundle's header says it holds every record (partial false), but its entry %s lacks record %d (it holds %d of the %d records from %d to %d): records were removed",
		recordsEntry(n), id, len(ids), hi-lo, lo, hi-1)
}

// done proves, once every tile is read, that the bundle's tree extends the
// mirror's.
func (c *bundleCheck) done() error {
	if err := c.allRecords(); err != nil {
		return err
	}
	if c.passed {
		return errHeld
	}
	if err := c.extends(c.held.Tree, c.held.Signed, "holds"); err != nil {
		return err
	}
	if c.staging == nil || bytes.Equal(c.staging.Head, c.head) {
		return nil // nothing staged, or this bundle's head: resumed
	}
	if c.staging.Tree.N > c.tree.N {
		return fmt.Errorf("the mirror is part way to tree %d (an interrupted import or mirror run staged it), beyond this bundle's tree %d: "+
			"import a bundle to tree %d or later first (the interrupted one again, or a newer one)", c.staging.Tree.N, c.tree.N, c.staging.Tree.N)
	}
	if err := c.extends(c.staging.Tree, c.staging.Head, "staged"); err != nil {
		return err
	}
	c.replaceStaging = true
	return nil
}

// extends proves that the bundle's tree extends tree, of the signed head
// signed the mirror holds or staged (what says which).
func (c *bundleCheck) extends(tree tlog.Tree, signed []byte, what string) error {
	if tree.N == 0 {
		return nil
	}
	c.own = c.own[:0]
	err := itlog.ProveExtends(c.tree, tree, c.hashes)
	var fork *itlog.ForkError
	switch {
	case errors.As(err, &fork):
		return &SecurityError{Kind: KindFork, Origin: c.l.Name(), Held: signed, Offered: c.head, Err: fmt.Errorf(
			"the bundle's signed tree of %d records does not contain the tree of %d records the mirror %s: %v", c.tree.N, tree.N, what, fork.Proof)}
	case err != nil && len(c.own) > 0 && what == "holds":
		return c.forked("the bundle's tiles", err)
	case err != nil:
		return fmt.Errorf("failed to prove the bundle's tree consistent with the mirror's: %w", err)
	}
	return nil
}

// ReadTiles serves TileHashReader the bundle's tiles and, for those the
// extension does not change, the mirror's.
func (c *bundleCheck) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		switch {
		case t == c.cur && c.curData != nil:
			out[i] = c.curData
		case c.tiles[t] != nil:
			out[i] = c.tiles[t]
		case c.kept[t] != nil:
			out[i] = c.kept[t]
		case c.stagedEdge[t] != nil:
			out[i] = c.stagedEdge[t]
		default:
			d, err := c.l.ReadTileData(c.ctx, t)
			if err != nil {
				c.own = c.own[:0] // not read: no evidence of a fork
				return nil, fmt.Errorf("tile %s is neither in the bundle nor held: %w", t.Path(), err)
			}
			out[i] = d
			c.own = append(c.own, t)
		}
	}
	return out, nil
}

func (c *bundleCheck) Height() int                     { return 8 }
func (c *bundleCheck) SaveTiles([]tlog.Tile, [][]byte) {}

// provePrefix proves tree (signed head offered), no larger than the held
// tree, a prefix of it, from the mirror's own tiles.
func provePrefix(l *itlog.Log, held *itlog.Head, tree tlog.Tree, offered []byte) error {
	fork := func(err error) error {
		return &SecurityError{Kind: KindFork, Origin: l.Name(), Held: held.Signed, Offered: offered, Err: err}
	}
	err := proveHeld(l, held, tree)
	var fe *itlog.ForkError
	switch {
	case errors.As(err, &fe) && fe.Proof == nil:
		return fork(fmt.Errorf("two different signed trees of %d records (hashes %s and %s)", tree.N, held.Tree.Hash, tree.Hash))
	case fe != nil:
		return fork(fmt.Errorf("the signed tree of %d records is not contained in the tree of %d records the mirror holds: %v", tree.N, held.Tree.N, fe.Proof))
	case err != nil:
		return fmt.Errorf("failed to prove a signed tree against the mirror's: %w", err)
	}
	return nil
}

// bundleStore is the second pass: it stores a verified bundle with
// Extend, or in steps with Stage, resuming a staging the same import
// began.
type bundleStore struct {
	ctx  context.Context
	l    *itlog.Log
	opts ImportOptions
	held *itlog.Head
	kept map[tlog.Tile][]byte
	st   *ImportStats
	// verified is the first pass's header and head: the second reads the
	// same file, but one changed in place between them must not get what
	// the first refused stored.
	verified     BundleHeader
	verifiedHead []byte

	head   []byte
	tree   tlog.Tree
	want   map[tlog.Tile]bool // the tiles of the extension from the held tree
	single bool               // one Extend
	skel   map[tlog.Tile]bool // staging: the skeleton from the held tree
	staged int64              // staging: every level-0 tile is staged up to this size; -1 before the skeleton
	ext    itlog.Extension    // being gathered
	leaves int                // level-0 tiles in ext
	skip   bool               // the records of the current tile are stored

	// The Stage committing while the next part is read and verified
	// (PrepareStage), or nil; it sends its error and the size it stages
	// up to.
	inflight chan staged
}

// staged is the outcome of one Stage of an import.
type staged struct {
	size int64 // every level-0 tile is staged up to this size, if err is nil
	err  error
}

func (s *bundleStore) header(h BundleHeader, head []byte, tree tlog.Tree) error {
	if !bytes.Equal(h.marshal(), s.verified.marshal()) || !bytes.Equal(head, s.verifiedHead) {
		return errChanged
	}
	if tree.N <= s.held.Tree.N {
		return errHeld
	}
	s.head, s.tree, s.staged = head, tree, -1
	s.want = map[tlog.Tile]bool{}
	for _, t := range tlog.NewTiles(8, s.held.Tree.N, tree.N) {
		s.want[t] = true
	}
	s.reset()
	pending, err := s.l.Staged(s.ctx)
	if err != nil {
		return err
	}
	s.single = pending == nil && tree.N-s.held.Tree.N <= s.opts.Step
	if s.single {
		return nil
	}
	skel, _ := itlog.StagingPlan(s.held.Tree.N, tree.N)
	s.skel = map[tlog.Tile]bool{}
	for _, t := range skel {
		s.skel[t] = true
	}
	if pending != nil && pending.Size > s.held.Tree.N {
		s.staged = pending.Size // resume: the skeleton and the tiles up to here are staged
	}
	return nil
}

func (s *bundleStore) reset() {
	s.ext = itlog.Extension{Head: s.head, Tiles: map[tlog.Tile][]byte{}, Records: map[int64][]byte{}}
	s.leaves = 0
}

func (s *bundleStore) skeleton(tiles map[tlog.Tile][]byte) error {
	s.skip = s.staged >= 0
	if s.skip {
		return nil
	}
	for t, data := range tiles {
		if s.want[t] && (s.single || s.skel[t]) {
			s.ext.Tiles[t] = data
		}
	}
	for t, data := range s.kept {
		s.ext.Tiles[t] = data
	}
	return nil
}

func (s *bundleStore) leaf(t tlog.Tile, data []byte) error {
	// Tiles below the held tree, and those a resumed staging stored, are
	// skipped with their records; the skeleton's edge tile (when the bundle
	// starts below the held tree) was staged with the skeleton, but its
	// records come with the tiles after it.
	s.skip = !s.want[t] || !s.single && s.staged >= 0 && t.N<<8+int64(t.W) <= s.staged
	if s.skip || s.skel[t] {
		return nil
	}
	if !s.single && (s.staged < 0 || s.leaves >= int(s.opts.Step>>8)) {
		if err := s.stage(); err != nil {
			return err
		}
	}
	s.ext.Tiles[t] = data
	s.leaves++
	return nil
}

func (s *bundleStore) records(n int64, recs map[int64][]byte, ids []int64) error {
	if s.skip {
		return nil
	}
	for _, id := range ids {
		if id >= s.held.Tree.N {
			s.ext.Records[id] = recs[id]
		}
	}
	return nil
}

// stage stages what was gathered: the skeleton first, then level-0 tiles.
// The skeleton is committed before anything else is read, since the tiles
// after it are verified through it; each later part is verified here, in
// the reading goroutine, while the part before commits, then committed in
// the background (one at a time, in order).
func (s *bundleStore) stage() error {
	if err := s.ctx.Err(); err != nil {
		return errors.Join(err, s.wait())
	}
	if err := s.complete(); err != nil {
		return errors.Join(err, s.wait()) // the Stage in flight ends before Import returns
	}
	size := s.staged
	if size < 0 {
		size = s.held.Tree.N
	}
	for t := range s.ext.Tiles {
		if t.L == 0 && !s.skel[t] {
			size = max(size, t.N<<8+int64(t.W))
		}
	}
	if s.staged < 0 {
		if err := s.l.Stage(s.ctx, s.ext); err != nil {
			return err
		}
		s.done(size)
		s.reset()
		return nil
	}
	ext := s.l.PrepareStage(s.ctx, s.ext)
	s.reset()
	if err := s.wait(); err != nil {
		return err
	}
	s.staged = size // what Staged will say once this commit is done
	ch := make(chan staged, 1)
	s.inflight = ch
	go func() {
		// Canceled, it either commits before Stage returns or never.
		ch <- staged{size, s.l.Stage(s.ctx, ext)}
	}()
	return nil
}

// errChanged is the answer to a bundle that reads differently in the
// second pass than in the first.
var errChanged = errors.New("the bundle changed while it was read (it was verified, then read otherwise): nothing more was stored; import it again")

// complete checks, in a full bundle, that the part about to be stored
// holds every record of its level-0 tiles from the held tree on, as the
// first pass did: tiles staged without their records would be skipped,
// records and all, by a resumed import, and Extend publishes a tree
// without the records it is not given (a mirror may lack records), so
// nothing else would notice. That includes the held tree's edge tile when
// the bundle starts below it (s.kept): it is stored with the first part,
// and its records from the held size on have come by then (its records
// entry follows it, and the first Stage waits for the next tile).
func (s *bundleStore) complete() error {
	if s.verified.Partial {
		return nil
	}
	for t := range s.ext.Tiles {
		if t.L != 0 {
			continue
		}
		for id := max(t.N<<8, s.held.Tree.N); id < t.N<<8+int64(t.W); id++ {
			if s.ext.Records[id] == nil {
				return fmt.Errorf("%w (record %d is gone)", errChanged, id)
			}
		}
	}
	return nil
}

// wait waits for the Stage in flight, if any.
func (s *bundleStore) wait() error {
	if s.inflight == nil {
		return nil
	}
	st := <-s.inflight
	s.inflight = nil
	if st.err != nil {
		return st.err
	}
	s.done(st.size)
	return nil
}

// done counts a Stage that staged every level-0 tile up to size.
func (s *bundleStore) done(size int64) {
	s.st.Commits++
	s.staged = max(s.staged, size)
	s.opts.Logger.Debug("staged part of the bundle", "origin", s.l.Name(), "staged", s.staged, "tree_size", s.tree.N)
	if s.opts.Progress != nil {
		s.opts.Progress(size-s.held.Tree.N, s.tree.N-s.held.Tree.N)
	}
}

// finish stores what is left and publishes the head.
func (s *bundleStore) finish() error {
	if s.head == nil {
		return nil // nothing beyond the held tree
	}
	if !s.single && (len(s.ext.Tiles) > 0 || len(s.ext.Records) > 0 || s.staged < 0) {
		if err := s.stage(); err != nil {
			return err
		}
	}
	if err := s.wait(); err != nil {
		return err
	}
	if err := s.complete(); err != nil {
		return err
	}
	if err := s.l.Extend(s.ctx, s.ext); err != nil {
		return err
	}
	s.st.Commits++
	if s.opts.Progress != nil {
		s.opts.Progress(s.tree.N-s.held.Tree.N, s.tree.N-s.held.Tree.N)
	}
	s.opts.Logger.Info("imported a bundle", "origin", s.l.Name(), "tree_size", s.tree.N, "was", s.held.Tree.N)
	return nil
}
