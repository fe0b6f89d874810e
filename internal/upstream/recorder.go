package upstream

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	xtlog "golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/tlog"
)

// Log is what a Recorder needs from the log. *tlog.Log implements it; the
// contracts are its own.
type Log interface {
	// Signed returns the latest signed tree head.
	Signed(ctx context.Context) ([]byte, error)
	// ReadRecords returns records id … id+n-1, or an error wrapping
	// fs.ErrNotExist if any is beyond the tree.
	ReadRecords(ctx context.Context, id, n int64) ([][]byte, error)
	// ReadTileData returns hash tile t, or an error wrapping fs.ErrNotExist.
	ReadTileData(ctx context.Context, t xtlog.Tile) ([]byte, error)
	// Lookup returns the id of m's record, or an error wrapping
	// fs.ErrNotExist if there is none. Once Add has returned an id, Lookup
	// finds it.
	Lookup(ctx context.Context, m module.Version) (int64, error)
	// Add records recs durably, covered by a signed tree head, and returns
	// their ids; a version already recorded with the same hashes keeps its
	// id. It is safe for concurrent use and fails with *tlog.ConflictError
	// (other hashes recorded; nothing changed) or tlog.ErrPushback (queue
	// full; nothing changed, retry later).
	Add(ctx context.Context, recs ...gosum.Record) ([]int64, error)
	// AddNew is Add that also reports which of recs this call appended
	// (see tlog.Log.AddNew).
	AddNew(ctx context.Context, recs ...gosum.Record) ([]int64, []bool, error)
	// Check reports what Add would do with recs, adding nothing (see
	// tlog.Log.Check).
	Check(ctx context.Context, recs []gosum.Record) ([]int64, []*tlog.ConflictError, error)
	// Room reports a write Add would refuse now for disk space (a
	// *tlog.LowDiskError), nil otherwise (see tlog.Log.Room).
	Room() error
}

var _ Log = (*tlog.Log)(nil)

// RecorderOptions configure a Recorder.
type RecorderOptions struct {
	// Fetcher fetches the versions the log lacks. nil means none: a miss is
	// the log's own "not found", and Record fails with ErrNoUpstream.
	Fetcher *Fetcher
	// Record lists the module paths to fetch on a miss, in GOPRIVATE glob
	// syntax (see CheckPatterns); "" means every path. Others are 404.
	Record string
	// Checker, if non-nil, cross-checks versions before they are recorded.
	Checker *Checker
	// NegativeTTL is how long gone and invalid versions are remembered; 0
	// disables the negative cache. Callers should default to
	// DefaultNegativeTTL.
	NegativeTTL time.Duration
	// NegativeMax bounds the negative cache (default DefaultNegativeMax).
	NegativeMax int
	// MaxFetches caps the first lookups fetching from upstream at once
	// (default DefaultMaxFetches). Lookups of one version share a fetch and
	// count once. A lookup that would start another is refused with a 503
	// (ErrBusy) rather than queued: anyone who can look a version up can
	// start a fetch of up to 500 MiB, and a queue would only delay the
	// refusal. Record, the operator's request, does not count and is never
	// refused.
	MaxFetches int
	// MaxClientFetches caps the first lookups one client may have waiting
	// for upstream fetches at once, shared fetches included; 0 means no
	// cap. One more is refused with a 503 (ErrClientBusy), so that one
	// client cannot take all MaxFetches slots. Clients are told apart by
	// Client; Record is never refused.
	MaxClientFetches int
	// Client returns the client of a lookup's ctx: its address (as
	// http.Request.RemoteAddr) and whether it is an authenticated admin,
	// whom MaxClientFetches spares. An IPv4 address is one client, an IPv6
	// one its /64 (what one host is usually given); an empty address is a
	// caller inside sumd, never refused. nil: no per-client cap.
	Client func(ctx context.Context) (addr string, admin bool)
	// Deadline bounds a fetch as a whole, for a first lookup or Record:
	// every source's requests, the hash and the cross-check (default
	// FetchDeadline of the Fetcher's Timeout). A fetch still running then
	// stops, records nothing, and its callers get a KindTimeout error
	// (504) that says so. The server in front must give a lookup longer
	// than this to write its answer: otherwise, as the requests of four
	// slow sources after "|" add up, the go command sees its connection
	// cut, with no reason, where it would have shown the 504's.
	Deadline time.Duration
	// Now is the clock of the negative cache; nil means time.Now.
	Now func() time.Time
	// Logger receives a record per version fetched or refused; nil means
	// slog.Default().
	Logger *slog.Logger
	// Metrics, if non-nil, receives the negative cache metrics.
	Metrics *Metrics
}

// DefaultMaxFetches is the default RecorderOptions.MaxFetches. The go
// command looks up as many versions at once as its machine has CPUs, so
// this lets a cold build on a 16-core machine through at once, while
// bounding the upstream requests and the temporary disk (16 zips of at
// most 500 MiB) that anonymous lookups can cause.
const DefaultMaxFetches = 16

// FetchDeadline is the default RecorderOptions.Deadline for a Fetcher
// whose requests have timeout t: three requests' worth (a .mod, a zip and
// a cross-check's read) and half a minute. sumd serve gives a lookup half
// a minute more to be answered (its write timeout), for the record's
// commit and the answer's writing.
func FetchDeadline(t time.Duration) time.Duration { return 3*t + 30*time.Second }

// errPastDeadline is the cause of a fetch's context once
// RecorderOptions.Deadline has passed.
var errPastDeadline = errors.New("past the deadline of a fetch from upstream")

// ErrBusy is a first lookup's error when MaxFetches fetches are running.
// The go command shows its text; Retry-After asks it to come back.
var ErrBusy = &server.StatusError{Status: http.StatusServiceUnavailable,
	Err: errors.New("too many new versions are being fetched from upstream at once; try again in a moment")}

// ErrClientBusy is a first lookup's error when its client has
// MaxClientFetches lookups waiting for upstream already.
var ErrClientBusy = &server.StatusError{Status: http.StatusServiceUnavailable,
	Err: errors.New("too many new versions are being fetched from upstream for this client at once; try again in a moment")}

// ErrNoUpstream is Record's error when no Fetcher is configured.
var ErrNoUpstream = &server.StatusError{Status: http.StatusNotImplemented,
	Err: errors.New("this checksum database has no upstream proxy configured")}

// A Recorder is the log as the HTTP server sees it: a sumdb.ServerOps that
// answers a lookup of a version the log lacks by fetching it from upstream,
// checking it, recording it and returning its id, as sum.golang.org does
// with proxy.golang.org. It is safe for concurrent use.
//
// Concurrent first lookups of one version share one fetch and one record.
// Failures are shared only by the lookups waiting for that fetch; after it,
// only gone failures are remembered, by the negative cache, for its TTL.
// A fetch whose lookups have all gone (their clients hung up) is
// cancelled, unless it is already recording (see fly and fetchAndAdd).
type Recorder struct {
	log     Log
	fetcher *Fetcher // nil: no upstream
	checker *Checker // nil: no cross-check
	record  string   // patterns of the paths fetched on a miss
	// deadline bounds fetchAndAdd's fetch and cross-check
	// (RecorderOptions.Deadline), as the end of its flight's context.
	deadline time.Duration
	neg      *negCache
	slots    chan struct{} // one token per lookup fetch in flight
	// perClient counts the lookups of each client waiting for upstream;
	// nil: no per-client cap.
	perClient *clientFetches
	client    func(context.Context) (string, bool)
	logger    *slog.Logger
	metrics   *Metrics
	now       func() time.Time

	flightMu sync.Mutex
	flights  map[string]*flight // keyed by kind of flight and path@version; guarded by flightMu
	workers  *workers           // run the flights

	// healthMu guards what Problems reports: the failures of sumd's own
	// temporary directory, the refusals for want of a fetch slot, and the
	// fetches in a row that no upstream proxy had (misses, the last at
	// lastMiss; see noteFetch).
	healthMu sync.Mutex
	local    events
	busy     events
	misses   int
	lastMiss time.Time
}

var _ sumdb.ServerOps = (*Recorder)(nil)

// NewRecorder returns a Recorder over log.
func NewRecorder(log Log, opts RecorderOptions) (*Recorder, error) {
	if err := CheckPatterns(opts.Record); err != nil {
		return nil, fmt.Errorf("invalid record patterns: %w", err)
	}
	if opts.NegativeMax <= 0 {
		opts.NegativeMax = DefaultNegativeMax
	}
	if opts.MaxFetches <= 0 {
		opts.MaxFetches = DefaultMaxFetches
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Deadline <= 0 && opts.Fetcher != nil {
		opts.Deadline = FetchDeadline(opts.Fetcher.opts.Timeout)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var perClient *clientFetches
	if opts.MaxClientFetches > 0 && opts.Client != nil {
		perClient = &clientFetches{max: opts.MaxClientFetches, n: map[string]int{}}
	}
	return &Recorder{
		perClient: perClient, client: opts.Client,
		log: log, fetcher: opts.Fetcher, checker: opts.Checker, record: opts.Record, deadline: opts.Deadline,
		neg:     newNegCache(opts.NegativeTTL, opts.NegativeMax, opts.Now, opts.Metrics),
		slots:   make(chan struct{}, opts.MaxFetches),
		flights: map[string]*flight{},
		workers: newWorkers(),
		logger:  opts.Logger, metrics: opts.Metrics, now: opts.Now,
	}, nil
}

// CheckPatterns checks a comma-separated list of GOPRIVATE-style globs.
// module.MatchPrefixPatterns silently ignores a malformed glob, which would
// quietly widen or narrow what sumd serves; configuration must refuse it.
func CheckPatterns(list string) error {
	for glob := range strings.SplitSeq(list, ",") {
		if _, err := path.Match(strings.TrimSuffix(glob, "/"), ""); err != nil {
			return fmt.Errorf("malformed pattern %q: %w", glob, err)
		}
	}
	return nil
}

// Signed, ReadRecords and ReadTileData are the log's.
func (r *Recorder) Signed(ctx context.Context) ([]byte, error) { return r.log.Signed(ctx) }

func (r *Recorder) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	return r.log.ReadRecords(ctx, id, n)
}

func (r *Recorder) ReadTileData(ctx context.Context, t xtlog.Tile) ([]byte, error) {
	return r.log.ReadTileData(ctx, t)
}

// Lookup returns the id of m's record, fetching and recording m first if
// the log lacks it. Errors: a path outside the record patterns is 404 (an
// error wrapping fs.ErrNotExist whose text says so); an upstream failure is
// an *Error (410, 502 or 504); MaxFetches fetches in flight already is
// ErrBusy, MaxClientFetches lookups of its client waiting already
// ErrClientBusy, and a full sequencer queue another 503
// server.StatusError; a
// conflicting concurrent Add is a 500.
func (r *Recorder) Lookup(ctx context.Context, m module.Version) (int64, error) {
	id, err := r.log.Lookup(ctx, m)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || r.fetcher == nil {
		return id, err
	}
	if !r.serves(m.Path) {
		return 0, &notServedError{m}
	}
	if e := r.neg.get(m); e != nil {
		return 0, e
	}
	release, err := r.clientSlot(ctx, m)
	if err != nil {
		return 0, err
	}
	defer release()
	res, err := r.fly(ctx, "lookup "+m.String(), func(ctx context.Context) (flightResult, error) {
		return r.recordMiss(ctx, m)
	})
	return res.id, err
}

// serves reports whether misses of path are fetched from upstream.
func (r *Recorder) serves(path string) bool {
	return r.record == "" || module.MatchPrefixPatterns(r.record, path)
}

// recordMiss is a lookup's flight.
func (r *Recorder) recordMiss(ctx context.Context, m module.Version) (flightResult, error) {
	// A flight that ended between our miss and the start of this one has
	// recorded m or remembered its failure: look again, or two lookups
	// racing that window would fetch twice.
	if id, err := r.log.Lookup(ctx, m); !errors.Is(err, fs.ErrNotExist) {
		return flightResult{id: id}, err
	}
	if e := r.neg.get(m); e != nil {
		return flightResult{}, e
	}
	select {
	case r.slots <- struct{}{}:
	default:
		r.metrics.refuseFetch()
		r.saturated()
		r.logger.InfoContext(ctx, "upstream fetch refused: too many in flight", "module", m.Path, "version", m.Version, "max", cap(r.slots))
		return flightResult{}, ErrBusy
	}
	r.metrics.fetchStarted()
	defer func() {
		r.metrics.fetchEnded()
		<-r.slots
	}()
	res, err := r.fetchAndAdd(ctx, m)
	if conflict := (*tlog.ConflictError)(nil); errors.As(err, &conflict) {
		// Another adder (the admin API, OCI sync, another process)
		// recorded m with other hashes while we fetched it: addError has
		// logged both at Error for someone to look at. The log's record
		// is the lookup's answer, as it would have been a moment later;
		// a go command whose download differs refuses it itself.
		if id, lerr := r.log.Lookup(ctx, m); lerr == nil {
			return flightResult{id: id}, nil
		}
	}
	return res, err
}

// Record fetches m from upstream, cross-checks and records it, whatever
// the record patterns and the negative cache say: it is the operator's
// explicit request (the admin API). Unlike a lookup it fetches even if m is
// recorded, so that upstream content that changed since is found: that is
// a *tlog.ConflictError naming both hashes. Other errors are as Lookup's.
func (r *Recorder) Record(ctx context.Context, m module.Version) (int64, gosum.Record, error) {
	if r.fetcher == nil {
		return 0, gosum.Record{}, ErrNoUpstream
	}
	res, err := r.fly(ctx, "record "+m.String(), func(ctx context.Context) (flightResult, error) {
		return r.fetchAndAdd(ctx, m)
	})
	return res.id, res.rec, err
}

// Add cross-checks and records rec, whose hashes the caller computed (an
// uploaded zip). Errors are as Record's; a malformed rec is a 400.
func (r *Recorder) Add(ctx context.Context, rec gosum.Record) (int64, error) {
	if err := rec.Check(); err != nil {
		return 0, &server.StatusError{Status: http.StatusBadRequest, Err: err}
	}
	m := module.Version{Path: rec.Path, Version: rec.Version}
	unchecked, err := r.crossCheck(ctx, rec)
	if err != nil {
		r.logFailure(ctx, m, err)
		return 0, err
	}
	id, added, err := r.add(ctx, rec)
	if err == nil && unchecked && added {
		r.recordedUnchecked(1)
	}
	return id, err
}

// AddRecords cross-checks recs and records them all or nothing: hashes the
// caller computed (the admin API's go.sum lines). It returns their ids and
// which of them this call appended (tlog.Log.AddNew). Errors are as Record's,
// for the first record that fails. recs are well-formed
// (gosum.Record.Check): the admin API's parser checks them and names each
// bad line, and tlog.Log.Add refuses any other, recording nothing.
func (r *Recorder) AddRecords(ctx context.Context, recs []gosum.Record) ([]int64, []bool, error) {
	var unchecked []bool // those the Checker let through unchecked (FailOpen)
	if r.checker != nil {
		// Versions the log holds need no cross-check (a bulk import run
		// again sends them all again); one held with other hashes is
		// refused by Add as a conflict.
		held, _, err := r.log.Check(ctx, recs)
		if err != nil {
			return nil, nil, r.addError(ctx, fmt.Sprintf("%d records", len(recs)), err)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(crossCheckParallel)
		unchecked = make([]bool, len(recs)) // each goroutine writes its own
		for i, rec := range recs {
			if held[i] >= 0 {
				continue
			}
			g.Go(func() error {
				var err error
				unchecked[i], err = r.crossCheck(gctx, rec)
				if err != nil && gctx.Err() == nil { // not one cancelled by another's failure
					r.logFailure(ctx, module.Version{Path: rec.Path, Version: rec.Version}, err)
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, nil, err
		}
	}
	ids, added, err := r.log.AddNew(ctx, recs...)
	if err != nil {
		return nil, nil, r.addError(ctx, fmt.Sprintf("%d records", len(recs)), err)
	}
	// Counted once recorded, and only those this call appended: one
	// another adder recorded meanwhile is that adder's.
	n := 0
	for i := range unchecked {
		if unchecked[i] && added[i] {
			n++
		}
	}
	r.recordedUnchecked(n)
	return ids, added, nil
}

// crossCheckParallel bounds the cross-checks one AddRecords runs at once.
const crossCheckParallel = 8

// CheckRecords reports what AddRecords would do with recs, well-formed as
// AddRecords's, recording nothing; see tlog.Log.Check. It answers from the
// log alone, without AddRecords's cross-check, on purpose: sumd add -gosum
// -server checks every chunk of an import this way before it adds any, so
// a cross-check here would look each new version up twice (a chunk of
// 65,536 in one request), and it checks one-line versions with a made-up
// hash for the missing line (seed's probes), which every cross-check would
// call a mismatch. The add's cross-check still refuses what upstream
// contradicts.
func (r *Recorder) CheckRecords(ctx context.Context, recs []gosum.Record) ([]int64, []*tlog.ConflictError, error) {
	return r.log.Check(ctx, recs)
}

// flightResult is what a flight gives all its waiters.
type flightResult struct {
	id  int64
	rec gosum.Record
}

// A flight is one run of a flight function, shared by every caller that
// asks for its key while it runs (see fly).
type flight struct {
	done    chan struct{} // closed once res and err are set
	res     flightResult
	err     error
	cancel  context.CancelFunc // cancels the run's context
	waiters int                // callers waiting for it; guarded by Recorder.flightMu
	// committing is set by commit once the run is past its point of no
	// return; guarded by Recorder.flightMu.
	committing bool
}

// flightKey is the context key of the *flight a run's context belongs to.
type flightKey struct{}

// fly runs fn once for all concurrent callers with the same key. fn runs
// detached from each caller's cancellation, because a lookup that gives up
// must not fail the others waiting on the same fetch; but once every
// caller waiting on it has gone, its context is cancelled: nobody would
// read the answer, and a fetch that ran on (to the upstream timeout, for
// every request of a slow upstream) would hold its fetch slot for nothing.
// Clients that hang up after a second could otherwise take every slot
// with a few requests a minute. fn marks its point of no return with
// commit (fetchAndAdd's record): from then on the flight is neither
// cancelled nor removed when its callers go, and a caller that comes
// joins it. A cancelled flight leaves the key at once: a caller that
// comes while it winds down starts a new one. Results live only as long
// as the flight.
//
// TODO(read listener): server.ServeFast's contexts are not cancelled when
// the client hangs up (fasthttp tells no handler of it), only once sumd
// serve's shutdown cuts the connections, so a fetch waited for through
// -read-listen runs to its end or its deadline; -upstream-per-client still
// bounds them.
func (r *Recorder) fly(ctx context.Context, key string, fn func(context.Context) (flightResult, error)) (flightResult, error) {
	f := r.join(ctx, key, fn)
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
		r.leave(key, f)
		return flightResult{}, ctx.Err()
	}
}

// join returns the flight of key, started with fn if there is none, and
// counts the caller among its waiters. A new flight's context has ctx's
// values (the logs name who started it) but not its cancellation, and
// ends at RecorderOptions.Deadline (errPastDeadline its cause).
func (r *Recorder) join(ctx context.Context, key string, fn func(context.Context) (flightResult, error)) *flight {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	if f := r.flights[key]; f != nil {
		f.waiters++
		return f
	}
	f := &flight{done: make(chan struct{}), waiters: 1}
	fctx := context.WithValue(context.WithoutCancel(ctx), flightKey{}, f)
	var cancel context.CancelFunc
	if r.deadline > 0 {
		// The deadline is fetchAndAdd's (every flight runs one, after a
		// lookup's quick second look in the log and the negative cache),
		// set here on the flight's own context: a context of its own in
		// fetchAndAdd, a child of this one, cost each first lookup seven
		// allocations where this costs two.
		fctx, cancel = context.WithTimeoutCause(fctx, r.deadline, errPastDeadline)
	} else {
		fctx, cancel = context.WithCancel(fctx)
	}
	f.cancel = cancel
	r.flights[key] = f
	r.workers.run(func() {
		defer cancel()
		f.res, f.err = fn(fctx)
		r.flightMu.Lock()
		if r.flights[key] == f {
			delete(r.flights, key)
		}
		r.flightMu.Unlock()
		close(f.done)
	})
	return f
}

// leave uncounts a caller of f that stopped waiting, and cancels f if it
// was the last, unless f is committing: then it runs on, and stays for
// callers to join, until it ends.
func (r *Recorder) leave(key string, f *flight) {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	if f.waiters--; f.waiters > 0 || f.committing {
		return
	}
	f.cancel()
	if r.flights[key] == f {
		delete(r.flights, key)
	}
}

// commit is a flight's point of no return: it reports whether the run
// with ctx may go on to record, and if so marks its flight committing, so
// that leave no longer cancels or removes it. Otherwise a lookup that
// came while the record was being committed, after the last caller left,
// would miss in the log (the record is not visible yet) and start a
// flight that downloads the version again. leave cancels and commit
// checks ctx both under flightMu, so one comes first: either every caller
// left before the mark, the flight is cancelled and out of the map, and
// commit says no (a flight a later lookup starts records the version,
// once), or the flight records whoever leaves after the mark.
func (r *Recorder) commit(ctx context.Context) bool {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	if f, ok := ctx.Value(flightKey{}).(*flight); ok {
		f.committing = true
	}
	return true
}

// fetchAndAdd fetches, cross-checks and records m. ctx is cancelled when
// every caller waiting for the flight has gone (see fly): the fetch, the
// hash and the cross-check stop then, freeing the fetch slot, and nothing is recorded, even if the fetch
// still succeeds. They stop too at the deadline, with a KindTimeout error
// for the callers. Once m is fetched and checked, commit makes the flight
// run to its end whatever its callers do: the work is done and the commit
// quick, a lookup meanwhile joins it, and a commit cut short would still
// append m (the sequencer owns a record once queued) while the flight
// reported a failure.
func (r *Recorder) fetchAndAdd(ctx context.Context, m module.Version) (flightResult, error) {
	if err := gosum.CheckNewModule(m.Path, m.Version); err != nil {
		return flightResult{}, &Error{Kind: KindInvalid, Module: m, Err: err} // cheap: not cached
	}
	// ctx ends at r.deadline: fly's flights carry it (see join).
	// A download onto a disk the log will not write to would only fill
	// it further, at an anonymous client's asking.
	if err := r.log.Room(); err != nil {
		return flightResult{}, r.addError(ctx, m.String(), err)
	}
	rec, err := r.fetcher.Fetch(ctx, m)
	r.noteFetch(err)
	var unchecked bool
	if err == nil {
		unchecked, err = r.crossCheck(ctx, rec)
	}
	switch {
	case err != nil && pastDeadline(ctx):
		// Whatever failed as the deadline passed, the deadline is what
		// the callers must hear of: it stopped the walk over sources.
		err = r.deadlineError(m, err)
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// Only an error the cancellation caused: a failure upstream
		// answered as the last client went is the version's, as ever.
		return flightResult{}, r.abandoned(ctx, m, err)
	}
	if errors.Is(err, tlog.ErrLowDisk) {
		// The zip would have taken -tmp-dir's file system below the
		// floor (FetcherOptions.MinFree): the operator's log says where,
		// the client only that the server is short of space.
		r.logger.ErrorContext(ctx, "not recorded: -tmp-dir's disk is nearly full", "module", m.String(), "err", err)
		r.localFailure()
		return flightResult{}, &server.StatusError{Status: http.StatusServiceUnavailable,
			Err: &lowDiskError{what: m.String(), err: err, scratch: true}}
	}
	if err != nil {
		r.neg.put(m, err)
		r.logFailure(ctx, m, err)
		return flightResult{}, err
	}
	if !r.commit(ctx) {
		if pastDeadline(ctx) {
			err := r.deadlineError(m, ctx.Err())
			r.logFailure(ctx, m, err)
			return flightResult{}, err
		}
		// The clients left as the fetch ended: see commit.
		return flightResult{}, r.abandoned(ctx, m, ctx.Err())
	}
	// The point of no return: m is recorded even if every waiter goes.
	// commit stops leave from cancelling a flight's ctx; WithoutCancel
	// covers a ctx of any other kind.
	ctx = context.WithoutCancel(ctx)
	id, added, err := r.add(ctx, rec)
	if err != nil {
		return flightResult{}, err
	}
	if unchecked && added {
		r.recordedUnchecked(1)
	}
	r.neg.forget(m)
	r.logger.InfoContext(ctx, "recorded from upstream", "module", m.Path, "version", m.Version,
		"id", id, "hash", rec.Hash, "gomod", rec.GoMod)
	return flightResult{id: id, rec: rec}, nil
}

// pastDeadline reports whether ctx, fetchAndAdd's, ended at the deadline
// rather than with its callers' going.
func pastDeadline(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errPastDeadline)
}

// deadlineError is the error of a fetch of m stopped at the deadline; err
// is the failure it stopped with, for the operator's log.
func (r *Recorder) deadlineError(m module.Version, err error) *Error {
	cause := err.Error()
	if e := (*Error)(nil); errors.As(err, &e) {
		cause = e.Detail()
	}
	return &Error{Kind: KindTimeout, Module: m,
		Err:   fmt.Errorf("fetching it from upstream and checking it took longer than %s, the time limit of a new version's lookup; try again later", r.deadline),
		Cause: fmt.Errorf("stopped at the deadline: %s", cause)}
}

// abandoned logs a fetch of m that stopped because every client waiting
// for it went away, and returns err. It is not the version's failure
// (nothing is remembered), nor upstream's.
func (r *Recorder) abandoned(ctx context.Context, m module.Version, err error) error {
	r.logger.InfoContext(ctx, "upstream fetch abandoned: every client waiting for it went away", "module", m.Path, "version", m.Version)
	return err
}

// crossCheck cross-checks rec, reporting whether the Checker let it
// through unchecked (FailOpen): the caller counts it with recordedUnchecked
// once the log holds it, not before.
func (r *Recorder) crossCheck(ctx context.Context, rec gosum.Record) (unchecked bool, err error) {
	if r.checker == nil {
		return false, nil
	}
	return r.checker.check(ctx, rec)
}

// recordedUnchecked counts n versions the Checker let through unchecked
// that the log now holds (see Checker.Problems).
func (r *Recorder) recordedUnchecked(n int) {
	if n > 0 {
		r.checker.recordedUnchecked(n)
	}
}

// add appends rec to the log and maps its errors. It reports whether
// this call appended rec: one the log held already (Record fetches it
// again; an upload may repeat it) or that another adder appended first is
// not counted as recorded unchecked by this call (see AddRecords).
func (r *Recorder) add(ctx context.Context, rec gosum.Record) (int64, bool, error) {
	ids, added, err := r.log.AddNew(ctx, rec)
	switch {
	case err != nil:
		return 0, false, r.addError(ctx, rec.Key(), err)
	case len(ids) != 1 || len(added) != 1:
		return 0, false, fmt.Errorf("failed to record %s: log returned %d ids for one record", rec.Key(), len(ids))
	}
	return ids[0], added[0], nil
}

// addError maps an error of the log's Add of what: a full queue is a 503,
// a full disk too (with a text that names no path), and a conflict is
// logged.
func (r *Recorder) addError(ctx context.Context, what string, err error) error {
	var conflict *tlog.ConflictError
	switch {
	case errors.Is(err, tlog.ErrPushback):
		return &server.StatusError{Status: http.StatusServiceUnavailable,
			Err: fmt.Errorf("failed to record %s: %w", what, err)}
	case errors.Is(err, tlog.ErrLowDisk):
		// The operator's log gets the path and the figures; the
		// client, maybe anonymous, only what happened.
		r.logger.ErrorContext(ctx, "not recorded: the database's disk is nearly full", "what", what, "err", err)
		return &server.StatusError{Status: http.StatusServiceUnavailable,
			Err: &lowDiskError{what: what, err: err}}
	case errors.As(err, &conflict):
		// For a lookup this means another adder won a race with other
		// content than upstream serves: someone must look.
		r.logger.ErrorContext(ctx, "version conflicts with its record", "module", conflict.Proposed.Path, "version", conflict.Proposed.Version,
			"recorded_hash", conflict.Recorded.Hash, "recorded_gomod", conflict.Recorded.GoMod,
			"offered_hash", conflict.Proposed.Hash, "offered_gomod", conflict.Proposed.GoMod)
	}
	return fmt.Errorf("failed to record %s: %w", what, err)
}

// lowDiskError is a write refused for disk space, as a client sees it.
type lowDiskError struct {
	what    string
	err     error // the log's, with the path: for the server's log only
	scratch bool  // the disk of -tmp-dir, where zips are fetched, not the database's
}

func (e *lowDiskError) Error() string {
	if e.scratch {
		return fmt.Sprintf("failed to record %s: the checksum database's disk for downloads is nearly full, so it records nothing new it must download until its operator frees space; recorded versions are still served", e.what)
	}
	return fmt.Sprintf("failed to record %s: the checksum database's disk is nearly full, so it records nothing new until its operator frees space; recorded versions are still served", e.what)
}

func (e *lowDiskError) Unwrap() error { return e.err }

// logFailure logs a version that was not recorded: gone ones at Info (a
// typo or an unpushed tag is routine), upstream trouble at Warn, sumd's own
// (a full -tmp-dir) at Error: only the operator can fix it.
func (r *Recorder) logFailure(ctx context.Context, m module.Version, err error) {
	level := slog.LevelWarn
	var e *Error
	switch {
	case errors.As(err, &e) && e.Gone():
		level = slog.LevelInfo
	case e != nil && e.Kind == KindLocal:
		level = slog.LevelError
		if !errors.Is(err, errUnsaved) { // the Checker counts its own
			r.localFailure()
		}
	}
	r.logger.Log(ctx, level, "version not recorded", "module", m.Path, "version", m.Version, "err", err)
}

// notServedError is a lookup of a path outside the record patterns: a 404
// whose text the server shows as is.
type notServedError struct{ m module.Version }

func (e *notServedError) Error() string {
	return fmt.Sprintf("not found: %s@%s: this checksum database does not serve module path %s",
		e.m.Path, e.m.Version, e.m.Path)
}

func (e *notServedError) Is(target error) bool { return target == fs.ErrNotExist }
func (e *notServedError) HTTPStatus() int      { return http.StatusNotFound }
