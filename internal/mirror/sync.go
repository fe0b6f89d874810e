package mirror

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// Result is what one round of Sync did.
type Result struct {
	From, To tlog.Tree // the tree held before and after
	Origin   tlog.Tree // the origin's latest tree
	Records  int       // records stored
	Commits  int       // steps committed
	Missing  int       // go.sum versions the origin does not hold, could not answer, or answered past maxLooked
	Duration time.Duration

	stored bool // Options.AfterFirstStore ran
}

// ErrOffline means the mirror has no origin URL: it is fed by bundles.
var ErrOffline = errors.New("the mirror has no origin to follow (it is fed by bundles)")

// keyFlag is the option that gives a mirror its origin's verifier keys
// (sumd mirror and sumd mirror import), named where a head does not verify.
const keyFlag = "-origin-key"

// A target is the signed head a round moves the mirror to.
type target struct {
	head []byte
	tree tlog.Tree
}

// Sync moves the mirror to its origin's latest signed head (or first to
// the head it was staging, if a crash interrupted that), in steps, and
// returns what it did. A *SecurityError means the origin's data was
// refused; other errors (a *sumdbclient.FetchError, one wrapping a
// *BodyError for an answer that is not the protocol's at all, the store)
// that it could not finish, but for go.sum files of Options.Select that
// cannot be read, which it returns after following the origin's heads
// all the same. Either way every step committed before stays.
// A round cancelled with ctx counts no outcome in the metrics and leaves
// the status's problem as the last round left it.
func (f *Follower) Sync(ctx context.Context) (*Result, error) {
	if f.opts.Client == nil {
		return nil, ErrOffline
	}
	start := time.Now()
	res, err := f.sync(ctx)
	res.Duration = time.Since(start)
	res.To = f.log.Published().Tree
	f.opts.Metrics.observeHeld(f.name, res.To.N)
	switch {
	case IsSecurity(err):
		f.opts.Metrics.round(f.name, "security")
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// Cancelled (sumd serve shutting down): the round found nothing
		// about the origin, so it has no outcome to count, and the last
		// round's problem stands.
	case err != nil:
		f.opts.Metrics.round(f.name, "error")
		f.st.setProblem(problemText(err))
	default:
		f.opts.Metrics.round(f.name, "ok")
		f.st.setProblem("")
	}
	return res, err
}

// problemText says what went wrong for anonymous readers of the status:
// never the error's text, which may hold URLs or paths.
func problemText(err error) string {
	var fe *sumdbclient.FetchError
	var be *BodyError
	switch {
	case errors.Is(err, context.Canceled):
		// First: a round cancelled (at shutdown) while it waited on the
		// origin fails with a *FetchError of no status wrapping it, which
		// says nothing about the origin.
		return ""
	case errors.As(err, new(*selectionError)):
		return "the mirror cannot read its go.sum files (-modules): it follows the origin's heads but looks up none of their versions (see the server log)"
	case errors.As(err, &be):
		return "the origin answered with something that is not the checksum database's: a proxy's or a login page? (see the server log)"
	case errors.Is(err, sumdbclient.ErrTooLarge):
		return "the origin answered with more than the protocol sends: its answer is too large (see the server log)"
	case errors.Is(err, sumdbclient.ErrDamaged):
		return "the origin reports the data the mirror asked for damaged in its database (see the server log)"
	case errors.Is(err, sumdbclient.ErrOffline):
		return "the origin, itself a mirror, cannot reach its own origin (see the server log)"
	case errors.As(err, &fe) && fe.Status == 0:
		return "the origin cannot be reached (see the server log)"
	case errors.As(err, &fe):
		return fmt.Sprintf("the origin answered %d (see the server log)", fe.Status)
	case errors.Is(err, itlog.ErrLowDisk):
		return "the mirror's disk has less free space than min-free-disk: it stores nothing new until space is freed (see the server log)"
	case IsBehind(err):
		var be *BehindError
		if errors.As(err, &be) && be.Unproved {
			return "the origin serves an older head than the one the mirror is staging: a lagging replica? (see the server log)"
		}
		return "the origin serves an older head than the mirror's, a prefix of it: a lagging replica? (see the server log)"
	}
	return "following the origin failed (see the server log)"
}

func (f *Follower) sync(ctx context.Context) (*Result, error) {
	held := f.log.Published()
	res := &Result{From: held.Tree}
	// Lookups first: an origin that records on first lookup
	// (sum.golang.org, a sumd with -upstream) puts them in its next head,
	// which /latest then returns.
	looked, err := f.lookupSelected(ctx, res)
	var unread *selectionError
	if errors.As(err, &unread) {
		// A go.sum file moved or removed must not keep the mirror from
		// its origin's new heads: the round follows them, then fails.
		err = nil
	}
	if err != nil {
		return res, err
	}
	if err := f.addOld(ctx, looked, res); err != nil {
		return res, err
	}
	// Twice at most: a head being staged when the round began is reached
	// first, then the latest.
	for range 2 {
		t, err := f.latest(ctx, res)
		if err != nil {
			return res, err
		}
		if err := f.reach(ctx, t, looked, res); err != nil {
			return res, err
		}
		if t.tree == res.Origin {
			break
		}
	}
	// A forwarded lookup that moved the head while a step fetched left
	// the looked-up records below its head to no step (see commit).
	if err := f.addOld(ctx, looked, res); err != nil {
		return res, err
	}
	if res.Origin.N <= f.log.Published().Tree.N {
		now := f.opts.Now()
		if err := setChecked(ctx, f.log, now); err != nil {
			return res, err
		}
		f.st.setChecked(now)
		f.opts.Metrics.synced(f.name, float64(now.UnixNano())/1e9)
	}
	if unread != nil {
		return res, unread
	}
	return res, nil
}

// A selectionError is a round's failure to read the go.sum files of its
// selection. The round follows the origin's heads all the same, looking
// none of the files' versions up, and then fails with it.
type selectionError struct{ err error }

func (e *selectionError) Error() string {
	return "the mirror followed its origin's head, but looked up none of the versions of its go.sum files (-modules): " + e.err.Error()
}

func (e *selectionError) Unwrap() error { return e.err }

// IsSelection reports whether err is a round's failure to read the go.sum
// files of its selection: the round followed the origin's heads all the
// same.
func IsSelection(err error) bool { return errors.As(err, new(*selectionError)) }

// latest fetches and verifies the origin's signed head and proves it
// consistent with the held head and with any head being staged. It returns
// the head to reach this round: the one being staged, if any, else the
// latest.
func (f *Follower) latest(ctx context.Context, res *Result) (target, error) {
	msg, err := f.opts.Client.Latest(ctx)
	if err != nil {
		return target{}, err
	}
	tree, err := f.opts.Verifiers.Open(msg)
	if err != nil && !sumdbclient.IsNote(msg) {
		return target{}, notProtocol("/latest", "a signed note", msg)
	}
	if err != nil {
		return target{}, f.security(&SecurityError{Kind: KindSignature, Origin: f.name, Held: f.log.Published().Signed, Offered: msg,
			Err: errors.New(f.opts.Verifiers.Explain("/latest", keyFlag, err))})
	}
	res.Origin = tree
	f.st.setOrigin(tree.N)
	f.opts.Metrics.observeOrigin(f.name, tree.N)
	hashes := f.originHashes(ctx, tree)
	held := f.log.Published()
	staging, err := f.log.Staged(ctx)
	if err != nil {
		return target{}, err
	}
	against := held
	if staging != nil {
		against = &itlog.Head{Tree: staging.Tree, Signed: staging.Head}
	}
	if err := f.inconsistency(held, against, tree, msg, hashes); err != nil {
		return target{}, f.fromOrigin(err, msg)
	}
	if staging != nil {
		f.opts.Logger.Info("mirror resuming the staging of an extension a crash interrupted", "origin", f.name,
			"held", held.Tree.N, "staged", staging.Size, "target", staging.Tree.N)
		return target{staging.Head, staging.Tree}, nil
	}
	return target{msg, tree}, nil
}

// fromOrigin sorts an error met while checking data from the origin: a
// refusal is logged as a security event, a failure to fetch passes, and
// anything else (tiles that do not authenticate against the signed head, a
// malformed data tile) is the origin's data not verifying.
func (f *Follower) fromOrigin(err error, offered []byte) error {
	if err == nil {
		return nil
	}
	var se *SecurityError
	var tfe *sumdbclient.TileFormatError
	switch {
	case errors.As(err, &se):
		return f.security(se)
	case sumdbclient.IsFetchError(err):
		return err
	case errors.As(err, &tfe):
		return f.security(&SecurityError{Kind: KindTampered, Origin: f.name, Held: f.log.Published().Signed, Offered: offered, Err: err})
	}
	if c := f.classify(err, offered); IsSecurity(c) {
		return f.security(c.(*SecurityError))
	}
	return err
}

// maxLooked caps the bytes of looked-up records a round holds, unverified,
// until it stores them. An honest origin's records are a few hundred
// bytes (64 MiB is hundreds of thousands of versions), but a lookup's may
// be as large as a data tile, and a go.sum file may list thousands of
// versions the mirror lacks. A variable for tests.
var maxLooked = 64 << 20

// lookupSelected looks up, at the origin, the go.sum versions of the
// selection that the mirror does not hold, and returns their records by id
// (unverified: the log checks each against its leaf). A version the origin
// does not hold or cannot answer, or whose record would take the records
// held past maxLooked, is logged and counted in res.Missing; only an
// interruption fails it, or go.sum files that cannot be read (a
// *selectionError).
func (f *Follower) lookupSelected(ctx context.Context, res *Result) (map[int64][]byte, error) {
	if f.opts.Select == nil || len(f.opts.Select.files) == 0 {
		return nil, nil
	}
	versions, err := f.opts.Select.Versions()
	if err != nil {
		return nil, &selectionError{err}
	}
	var missing []module.Version
	for _, m := range versions {
		if _, err := f.log.Lookup(ctx, m); err != nil {
			missing = append(missing, m)
		}
	}
	out := map[int64][]byte{}
	var mu sync.Mutex
	size, over := 0, 0 // bytes in out, and the answers dropped for maxLooked
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.opts.Parallel)
	for _, m := range missing {
		g.Go(func() error {
			ans, err := f.opts.Client.Lookup(gctx, m)
			switch {
			case err != nil && ctx.Err() != nil:
				return err
			case err != nil:
				// One version the origin cannot answer (a 5xx, data it
				// reports damaged, the offline 404 of an origin that is
				// a mirror) must not keep the mirror from its origin's
				// new heads: it is looked up again next round.
				if sumdbclient.NotFound(err) {
					f.opts.Logger.Warn("the origin of a mirror does not hold a version a go.sum file lists", "origin", f.name, "module", m.String(), "err", err)
				} else {
					f.opts.Logger.Warn("the origin of a mirror could not answer the lookup of a version a go.sum file lists: skipped this round", "origin", f.name, "module", m.String(), "err", err)
				}
				mu.Lock()
				res.Missing++
				mu.Unlock()
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			if size+len(ans.Record) > maxLooked {
				over++
				res.Missing++
				return nil
			}
			size += len(ans.Record)
			out[ans.ID] = ans.Record
			return nil
		})
	}
	err = g.Wait()
	if over > 0 && err == nil {
		f.opts.Logger.Warn("the origin of a mirror answered a round's lookups of go.sum versions with more records than a round holds: the rest are looked up next round",
			"origin", f.name, "held_bytes", size, "max_bytes", maxLooked, "skipped", over)
	}
	return out, err
}

// addOld stores the looked-up records the held tree already covers, and
// forgets them.
func (f *Follower) addOld(ctx context.Context, looked map[int64][]byte, res *Result) error {
	if err := f.lock(ctx); err != nil {
		return err
	}
	defer f.unlock()
	held := f.log.Published()
	old := map[int64][]byte{}
	for id, text := range looked {
		if id < held.Tree.N {
			old[id] = text
		}
	}
	if len(old) == 0 {
		return nil
	}
	err := f.log.Extend(ctx, itlog.Extension{Head: held.Signed, Records: old})
	if err != nil {
		return f.fromOrigin(f.classify(err, held.Signed), held.Signed)
	}
	forget(looked, 0, held.Tree.N)
	f.count(res, len(old))
	return f.afterStore(ctx, res)
}

// reach moves the mirror to t, one step at a time.
func (f *Follower) reach(ctx context.Context, t target, looked map[int64][]byte, res *Result) error {
	start := f.log.Published().Tree.N
	pf := newPrefetcher(ctx, f, t)
	defer pf.stop()
	for {
		done, err := f.step(ctx, t, looked, pf, res)
		if err != nil {
			return err
		}
		if f.opts.Progress != nil && t.tree.N > start {
			f.opts.Progress(f.progress(ctx, t)-start, t.tree.N-start)
		}
		if done {
			return nil
		}
	}
}

// progress is how far the mirror is towards t: the held tree, or the
// staged size.
func (f *Follower) progress(ctx context.Context, t target) int64 {
	n := f.log.Published().Tree.N
	if st, err := f.log.Staged(ctx); err == nil && st != nil {
		n = st.Size
	}
	return min(n, t.tree.N)
}

// step takes one step towards t and reports whether t is reached. It
// plans the step from the mirror's state under the follower's lock,
// fetches what it needs from the origin without it, so that a forwarded
// lookup, which stores under the lock, never waits behind a slow origin
// for a round, then commits under the lock again if the mirror is still
// as planned. A forwarded lookup that moved the head in between makes it
// plan again rather than commit what was fetched for another state.
func (f *Follower) step(ctx context.Context, t target, looked map[int64][]byte, pf *prefetcher, res *Result) (bool, error) {
	p, done, err := f.plan(ctx, t)
	if done || err != nil {
		return done, err
	}
	ext, err := f.fetchStep(ctx, t, p, pf)
	if err != nil {
		return false, f.fromOrigin(err, t.head)
	}
	return f.commit(ctx, t, p, ext, looked, res)
}

// A mark is the state of the mirror a step is planned from: the held tree,
// and the tree being staged and how far it is staged (zero if none).
// While a round stages only the round moves them; otherwise a forwarded
// lookup may extend the held tree (store).
type mark struct {
	held, staged tlog.Tree
	size         int64
}

func markOf(held *itlog.Head, staging *itlog.Staging) mark {
	m := mark{held: held.Tree}
	if staging != nil {
		m.staged, m.size = staging.Tree, staging.Size
	}
	return m
}

// A plan is the step a round takes from the state at.
type plan struct {
	at   mark
	kind stepKind
}

type stepKind int

const (
	stepNear     stepKind = iota // extend to the target at once
	stepSkeleton                 // stage the extension's upper tiles (StagingPlan's skeleton)
	stepChunk                    // stage the next chunk of level-0 tiles
	stepFinish                   // extend to the target, every tile staged
)

// plan decides, under the follower's lock, the next step towards t, or
// reports that t is reached.
func (f *Follower) plan(ctx context.Context, t target) (plan, bool, error) {
	if err := f.lock(ctx); err != nil {
		return plan{}, false, err
	}
	defer f.unlock()
	held := f.log.Published()
	if held.Tree.N >= t.tree.N {
		// A forwarded lookup may have moved the head past t meanwhile;
		// the round proved t consistent with the head it began from
		// only, so t must be a prefix of this one before the round
		// calls the mirror current.
		if held.Tree != t.tree {
			if err := f.prefixOf(held, t.tree, t.head); err != nil {
				return plan{}, false, f.fromOrigin(err, t.head)
			}
		}
		return plan{}, true, nil
	}
	staging, err := f.log.Staged(ctx)
	if err != nil {
		return plan{}, false, err
	}
	p := plan{at: markOf(held, staging)}
	switch {
	case staging == nil && t.tree.N-held.Tree.N <= f.opts.Step:
		p.kind = stepNear
	case staging == nil || staging.Size <= held.Tree.N:
		// Nothing staged, or the staged head alone: a crash between
		// the staging's first two commits leaves no skeleton.
		p.kind = stepSkeleton
	case staging.Size < t.tree.N:
		p.kind = stepChunk
	default:
		p.kind = stepFinish
	}
	return p, false, nil
}

// fetchStep fetches from the origin, unverified, what step p needs,
// without the follower's lock.
func (f *Follower) fetchStep(ctx context.Context, t target, p plan, pf *prefetcher) (itlog.Extension, error) {
	held := p.at.held.N
	switch p.kind {
	case stepNear:
		return f.fetch(ctx, t, held, tlog.NewTiles(8, held, t.tree.N))
	case stepSkeleton:
		f.opts.Logger.Info("mirror far behind its origin: staging the extension in steps", "origin", f.name,
			"held", held, "target", t.tree.N, "step", f.opts.Step)
		skeleton, _ := itlog.StagingPlan(held, t.tree.N)
		return f.fetch(ctx, t, held, skeleton)
	case stepChunk:
		return pf.chunk(held, p.at.size)
	}
	return itlog.Extension{Head: t.head}, nil
}

// commit stores ext, fetched for step p, under the follower's lock if the
// mirror is still in the state p was planned from, and reports whether t
// is reached. Otherwise it stores nothing: the next step plans again.
func (f *Follower) commit(ctx context.Context, t target, p plan, ext itlog.Extension, looked map[int64][]byte, res *Result) (bool, error) {
	if err := f.lock(ctx); err != nil {
		return false, err
	}
	defer f.unlock()
	held := f.log.Published()
	staging, err := f.log.Staged(ctx)
	if err != nil {
		return false, err
	}
	if now := markOf(held, staging); now != p.at {
		f.opts.Logger.Debug("the mirror moved while a round fetched a step (a forwarded lookup stored): the round plans the step again",
			"origin", f.name, "planned_held", p.at.held.N, "held", now.held.N, "target", t.tree.N)
		return false, nil
	}
	last := p.kind == stepNear || p.kind == stepFinish
	if last {
		// Every looked-up record the round has not stored: those below
		// the held tree too, if a forwarded lookup moved it past them
		// while an earlier plan fetched (the Extension's older records).
		addLooked(&ext, looked, 0, t.tree.N)
		err = f.log.Extend(ctx, ext)
	} else {
		err = f.log.Stage(ctx, ext)
	}
	if err != nil {
		return false, f.fromOrigin(f.classify(err, t.head), t.head)
	}
	if last {
		forget(looked, 0, t.tree.N)
	}
	f.count(res, len(ext.Records))
	if last {
		f.opts.Logger.Info("mirror reached the origin's head", "origin", f.name, "tree_size", t.tree.N, "was", res.From.N)
	}
	if err := f.afterStore(ctx, res); err != nil {
		return false, err
	}
	return last, nil
}

// count counts a commit of n records in the round's result and metrics.
func (f *Follower) count(res *Result, n int) {
	res.Commits++
	res.Records += n
	f.opts.Metrics.addRecords(f.name, n)
}

// afterStore runs Options.AfterFirstStore after the round's first commit:
// only then has the log verified something the origin sent.
func (f *Follower) afterStore(ctx context.Context, res *Result) error {
	if res.stored || f.opts.AfterFirstStore == nil {
		return nil
	}
	if err := f.opts.AfterFirstStore(ctx); err != nil {
		return fmt.Errorf("failed to complete the round's first commit (it is stored): %w", err)
	}
	res.stored = true
	return nil
}

// addLooked adds the looked-up records in [from, to) to ext.
func addLooked(ext *itlog.Extension, looked map[int64][]byte, from, to int64) {
	for id, text := range looked {
		if id >= from && id < to {
			if ext.Records == nil {
				ext.Records = map[int64][]byte{}
			}
			ext.Records[id] = text
		}
	}
}

// forget drops the looked-up records in [from, to), once stored.
func forget(looked map[int64][]byte, from, to int64) {
	maps.DeleteFunc(looked, func(id int64, _ []byte) bool { return id >= from && id < to })
}

// fetch fetches the given hash tiles of t's tree and, for a mirror that
// reads data tiles, the records of the level-0 ones from id from on, all
// unverified (the log verifies them).
func (f *Follower) fetch(ctx context.Context, t target, from int64, tiles []tlog.Tile) (itlog.Extension, error) {
	ext := itlog.Extension{Head: t.head, Tiles: make(map[tlog.Tile][]byte, len(tiles)), Records: map[int64][]byte{}}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.opts.Parallel)
	data := f.opts.Select == nil || f.opts.Select.Scans()
	for _, tile := range tiles {
		g.Go(func() error {
			d, err := f.opts.Client.HashTile(gctx, tile)
			if err == nil {
				err = sumdbclient.CheckHashTile(tile, d, true)
			}
			if err != nil {
				return err
			}
			mu.Lock()
			ext.Tiles[tile] = d
			mu.Unlock()
			return nil
		})
		if tile.L != 0 || !data || tile.N<<8+int64(tile.W) <= from {
			continue
		}
		g.Go(func() error {
			dt := sumdbclient.DataTileOf(tile.N, t.tree.N)
			recs, err := f.opts.Client.DataTile(gctx, dt)
			if err != nil {
				return sumdbclient.CheckDataTile(dt, err, true)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, text := range recs {
				id := tile.N<<8 + int64(i)
				if id >= from && (f.opts.Select == nil || f.opts.Select.Match(text)) {
					ext.Records[id] = text
				}
			}
			return nil
		})
	}
	return ext, g.Wait()
}

// A prefetcher fetches the chunks of level-0 tiles of a staging ahead, and
// verifies them (tlog's PrepareStage), aheadChunks chunks in flight while
// the one before them commits: one chunk fetched, one verified and one
// committed at a time keep two cores busy.
type prefetcher struct {
	f          *Follower
	t          target
	ctx        context.Context
	cancel     context.CancelFunc
	ahead      []*inflight // the chunks being prefetched, in order
	plannedFor int64       // the held size leaves were planned for; -1 if none
	leaves     []tlog.Tile // StagingPlan's leaves for plannedFor
	wg         sync.WaitGroup
}

// aheadChunks is how many chunks a prefetcher fetches ahead of the one
// committing. Each holds about 3 MiB of records at the default step.
const aheadChunks = 2

// An inflight chunk is being fetched, then prepared; done is closed when
// ext and err are set.
type inflight struct {
	from, held int64 // the size it starts at, and the held size it is for
	after      int64 // the size it ends at
	done       chan struct{}
	ext        itlog.Extension
	err        error
}

func newPrefetcher(ctx context.Context, f *Follower, t target) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	return &prefetcher{f: f, t: t, ctx: ctx, cancel: cancel, plannedFor: -1}
}

// chunk returns the chunk of level-0 tiles staged next, for a mirror
// holding held with every tile staged up to size from: the one prefetched
// if it is that one, else fetched now. Then it tops up the chunks fetched
// ahead.
func (p *prefetcher) chunk(held, from int64) (itlog.Extension, error) {
	var got *inflight
	if len(p.ahead) > 0 && p.ahead[0].from == from && p.ahead[0].held == held {
		got, p.ahead = p.ahead[0], p.ahead[1:]
		<-got.done
	} else {
		p.drop()
		tiles := p.tiles(held, from)
		got = &inflight{from: from, held: held, after: end(tiles, from)}
		got.ext, got.err = p.f.fetch(p.ctx, p.t, held, tiles)
	}
	if got.err != nil {
		return got.ext, got.err // the caller stops (stop) or asks for another chunk (drop)
	}
	next := got.after
	if n := len(p.ahead); n > 0 {
		next = p.ahead[n-1].after
	}
	for len(p.ahead) < aheadChunks && next < p.t.tree.N {
		tiles := p.tiles(held, next) // here: the plan is the caller's alone
		if len(tiles) == 0 {
			break
		}
		c := &inflight{from: next, held: held, after: end(tiles, next), done: make(chan struct{})}
		before := p.ahead
		p.ahead = append(p.ahead, c)
		p.wg.Go(func() {
			defer close(c.done)
			c.ext, c.err = p.f.fetch(p.ctx, p.t, held, tiles)
			// Verified in order, after the chunks before it, while the
			// one before commits.
			for _, b := range before {
				<-b.done
			}
			if c.err == nil {
				c.ext = p.f.log.PrepareStage(p.ctx, c.ext)
			}
		})
		next = c.after
	}
	return got.ext, got.err
}

// end is the tree size a chunk of level-0 tiles ends at (from if none).
func end(tiles []tlog.Tile, from int64) int64 {
	if len(tiles) == 0 {
		return from
	}
	last := tiles[len(tiles)-1]
	return last.N<<8 + int64(last.W)
}

// drop forgets the chunks fetched ahead (they are for another plan), once
// their fetches end.
func (p *prefetcher) drop() {
	for _, c := range p.ahead {
		<-c.done
	}
	p.ahead = nil
}

// tiles returns the chunk of level-0 tiles to stage after size from, for
// a mirror holding held: a step's worth of those not in the skeleton.
// The plan is made once per held size: it lists every level-0 tile of
// the rest of a catch-up (tens of milliseconds at sum.golang.org's size).
func (p *prefetcher) tiles(held, from int64) []tlog.Tile {
	if p.plannedFor != held {
		_, p.leaves = itlog.StagingPlan(held, p.t.tree.N)
		p.plannedFor = held
	}
	leaves := p.leaves
	// Leaves are consecutive level-0 tiles: find the first ending after from.
	start, _ := slices.BinarySearchFunc(leaves, from+1, func(t tlog.Tile, end int64) int {
		return cmp.Compare(t.N<<8+int64(t.W), end)
	})
	if start == len(leaves) {
		return nil
	}
	return leaves[start:min(len(leaves), start+int(p.f.opts.Step>>8))]
}

func (p *prefetcher) stop() {
	p.cancel()
	p.wg.Wait()
	p.ahead = nil
}

// lock and unlock serialize the steps of rounds and forwarded lookups.
// lock waits for the turn until ctx is done, and then returns its error.
func (f *Follower) lock(ctx context.Context) error {
	select {
	case f.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *Follower) unlock() { <-f.turn }
