package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/tlog"
)

// A Recorder is the log as sync uses it. *tlog.Log implements it.
type Recorder interface {
	// Lookup returns the id of m's record, or an error wrapping
	// fs.ErrNotExist if the log has none.
	Lookup(ctx context.Context, m module.Version) (int64, error)
	// Add records recs durably. Recording a version again with the same
	// hashes is a no-op; with other hashes it fails with a
	// *tlog.ConflictError and records nothing. A recorder with a policy of
	// its own (sumd serve's cross-check of public modules) fails with an
	// error wrapping ErrRefused when the policy refuses recs, and records
	// nothing.
	Add(ctx context.Context, recs ...gosum.Record) ([]int64, error)
	// Check compares recs with the log and records nothing, as
	// tlog.Log.Check: ids[i] is recs[i]'s version's id, or -1 if the log
	// does not hold it; conflicts, if not nil, has a *tlog.ConflictError
	// for each version held with other hashes. Sync compares the content
	// of a recorded version that no configured key signed with its record.
	Check(ctx context.Context, recs []gosum.Record) (ids []int64, conflicts []*tlog.ConflictError, err error)
	// Aux returns the value stored under key by SetAux, or nil: the sync
	// state (see State), kept in the database beside the log.
	Aux(ctx context.Context, key string) ([]byte, error)
	// SetAux durably stores value under key.
	SetAux(ctx context.Context, key string, value []byte) error
}

var _ Recorder = (*tlog.Log)(nil)

// ErrRefused is wrapped by a Recorder's Add error when its policy refuses
// the records for what they are: the artifact is Refused, not Failed, since
// the next pass would be refused again.
var ErrRefused = errors.New("refused")

// DefaultTimeout bounds the work on one artifact: signatures, layers and
// hashing.
const DefaultTimeout = 10 * time.Minute

// Options configure a Syncer.
type Options struct {
	Sources []*Source // where to look; at least one
	// Keys are whose signatures to accept, at least one; a key with a
	// Scope only for the repositories it covers (ParseKey).
	Keys   []*PublicKey
	Log    Recorder // where to record, and to keep the sync state
	Remote Remote
	// MaxZipSize and MaxModSize cap the zip and go.mod layers, as for a
	// proxy fetch (default the go command's limits, modhash.MaxZipFile and
	// modhash.MaxGoMod). A larger layer makes the artifact invalid.
	MaxZipSize, MaxModSize int64
	// TempDir holds each zip while it is hashed ("" means os.TempDir());
	// see package scratch.
	TempDir string
	// Timeout bounds the work on one artifact (default DefaultTimeout).
	Timeout time.Duration
	// ListTimeout bounds listing a registry's catalog, and reaching one
	// repository and listing its tags (default DefaultListTimeout): a
	// registry that stalls fails that source or repository, not the pass.
	ListTimeout time.Duration
	// MaxPassBytes bounds the blob bytes one pass downloads (default
	// DefaultMaxPassBytes): once they are spent, the pass stops examining
	// and the next one starts at the tag it stopped at (see Sync).
	MaxPassBytes int64
	Logger       *slog.Logger // nil means slog.Default()
	Metrics      *Metrics     // nil means none
}

// A Syncer walks registries for signed module artifacts and records them.
// Sync passes never overlap: a Syncer runs one at a time.
type Syncer struct {
	opts Options
	log  *slog.Logger
	mu   sync.Mutex // held for a whole pass
	// saveEvery is how long the state may keep unsaved changes during a
	// pass (stateSaveInterval; tests change it).
	saveEvery time.Duration
	budget    *passBudget // the pass's
}

// The sync state is saved at the end of a pass, when the pass stops, and
// during a pass once it has had unsaved changes for stateSaveInterval,
// checked after each artifact: a crash re-examines at most the artifacts
// of the last interval (the log holds them, so at the cost of a re-read,
// never of a record). Saving after every repository, as sync did, wrote the
// whole state each time: O(R²) bytes over a first pass of R repositories.
// The save when a pass stops runs after its ctx has ended, within
// stateSaveTimeout.
const (
	stateSaveInterval = time.Minute
	stateSaveTimeout  = 30 * time.Second
)

// NewSyncer checks opts and returns a Syncer.
func NewSyncer(opts Options) (*Syncer, error) {
	switch {
	case len(opts.Sources) == 0:
		return nil, errors.New("no registry to sync from")
	case len(opts.Keys) == 0:
		return nil, errors.New("no cosign public key: sync accepts only artifacts signed with a configured key")
	case opts.Log == nil:
		return nil, errors.New("oci: NewSyncer needs a log")
	}
	if err := CheckKeyScopes(opts.Sources, opts.Keys); err != nil {
		return nil, err
	}
	if opts.MaxZipSize <= 0 {
		opts.MaxZipSize = modhash.MaxZipFile
	}
	if opts.MaxModSize <= 0 {
		opts.MaxModSize = modhash.MaxGoMod
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.ListTimeout <= 0 {
		opts.ListTimeout = DefaultListTimeout
	}
	if opts.MaxPassBytes <= 0 {
		opts.MaxPassBytes = DefaultMaxPassBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	warnUnbound(opts.Keys, opts.Logger)
	s := &Syncer{opts: opts, log: opts.Logger, saveEvery: stateSaveInterval}
	s.restoreMetrics()
	return s, nil
}

// restoreMetrics sets the gauge of refused artifacts from the stored sync
// state, so that a restart does not clear SumdOCISignatureRefused until a
// pass reads them again: with passes that spend their download budget, a
// round later. A state that cannot be read leaves it at 0; the first
// pass reports why.
func (s *Syncer) restoreMetrics() {
	if s.opts.Metrics == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateSaveTimeout)
	defer cancel()
	if state, err := LoadState(ctx, s.opts.Log); err == nil {
		s.opts.Metrics.refusedArtifacts(state)
	}
}

// A Report is what one sync pass did.
type Report struct {
	Counts map[Outcome]int // artifacts examined, by outcome
	// Conflicts are the versions refused because the log holds other
	// hashes (errors naming the artifact and wrapping a
	// *tlog.ConflictError), or because the log holds them and their tags
	// hold content no configured key signed (wrapping ErrRetagged).
	Conflicts []error
	// Refused are the versions the Recorder's policy refused (see
	// ErrRefused): errors naming the artifact and wrapping ErrRefused.
	Refused []error
	// Failures are what could not be read: registries, repositories and
	// artifacts (the registry failed, not the artifact). Conflicts,
	// Refused and Failures each end with one error naming the places
	// where an earlier pass found one and this pass did not read again
	// (State.Problems; see Syncer.unsettled).
	Failures []error
	// Places are where Conflicts, Refused and Failures were found, one
	// each, and the places their last errors name (Place.Unread): for a
	// status that must not show the errors' texts (they name registries).
	Places  []Place
	Skipped int // artifacts skipped as already recorded by an earlier pass
	// Resume is where the pass ran out of MaxPassBytes, "host/repository:
	// tag", the tag the next pass starts at; "" if it did not.
	Resume string
}

// A Place is where a pass found what fails it: an artifact at a tag, a
// repository (Tag ""), or the list of a source's repositories (Catalog).
type Place struct {
	Outcome    Outcome // Failed, Conflict, Retagged or Refused
	Registry   string  // host[:port]
	Repository string  // the repository path, without the host; for Catalog, the source's prefix
	Tag        string
	Catalog    bool // the source's repositories could not be listed
	// Unread is set for a place where an earlier pass found the problem
	// and this pass did not read again (Syncer.unsettled).
	Unread bool
	// Others is, for a registry that could not be reached, how many more
	// of its repositories were not read.
	Others int
}

// Path is the place without its registry: "repository:tag",
// "repository", or for a catalog the prefix ("" for none).
func (p Place) Path() string {
	if p.Tag != "" {
		return p.Repository + ":" + p.Tag
	}
	return p.Repository
}

func tagPlace(o Outcome, ref name.Tag) Place {
	return Place{Outcome: o, Registry: ref.RegistryStr(), Repository: ref.RepositoryStr(), Tag: ref.TagStr()}
}

func repoPlace(repo name.Repository) Place {
	return Place{Outcome: Failed, Registry: repo.RegistryStr(), Repository: repo.RepositoryStr()}
}

// OK reports whether the pass read everything and found no conflict and
// no refused version.
func (r *Report) OK() bool {
	return len(r.Conflicts) == 0 && len(r.Refused) == 0 && len(r.Failures) == 0
}

// Sync runs one pass over every source: each version tag of each
// repository whose artifact is not yet known to be recorded is verified,
// hashed and recorded. Problems with single artifacts are logged, counted
// and reported, and the pass goes on. A pass that has downloaded
// MaxPassBytes stops at the next artifact to examine, with a warning, and
// the next pass starts there (Report.Resume; see syncSources): not a
// failure, but the problems earlier passes found where it did not reach
// are reported as its own until a pass reads them again. The returned
// error is for what stops the pass: the state cannot be read or written,
// or ctx ends. Every pass
// is counted in Metrics, one that stopped as failed — but for one cut
// short by ctx (sumd stopping), which is neither: a restart is no failure
// of the registries.
func (s *Syncer) Sync(ctx context.Context) (*Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.sync(ctx)
	if err == nil || ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		s.opts.Metrics.pass(r, err)
	}
	return r, err
}

func (s *Syncer) sync(ctx context.Context) (*Report, error) {
	state, err := LoadState(ctx, s.opts.Log)
	if errors.Is(err, ErrStateDamaged) {
		s.log.WarnContext(ctx, "OCI sync: "+err.Error())
	} else if err != nil {
		return nil, err
	}
	r := &Report{Counts: map[Outcome]int{}}
	s.budget = &passBudget{max: s.opts.MaxPassBytes}
	err = s.syncSources(ctx, state, r)
	if err == nil {
		s.unsettled(ctx, state, r)
	}
	// Save what the pass remembered even if it stopped (ctx ended), in a
	// context of its own, so that the next pass does not redo it.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateSaveTimeout)
	defer cancel()
	if serr := state.Save(sctx); err == nil {
		err = serr
	}
	s.opts.Metrics.refusedArtifacts(state)
	if err == nil {
		err = ctx.Err()
	}
	return r, err
}

// syncSources syncs every source, in the order of the sources, their
// repositories and tags, but from the tag where the last pass ran out of
// its download budget (State.resumeAt), if any, wrapping round to it: a
// registry larger than one pass's budget is read over several passes, and
// none of its tags starves. Every source is still listed in order, so that
// the state drops what no source lists any more (State.prune) whatever the
// start. Its error stops the pass: the state could not be saved, or ctx
// ended. Either way the state then drops the repositories no source lists
// any more, as far as the sources listed so far tell.
func (s *Syncer) syncSources(ctx context.Context, state *State, r *Report) error {
	listed := map[*Source]map[string]bool{}
	defer func() { state.prune(s.opts.Sources, listed) }()
	err := s.syncRound(ctx, state, r, listed)
	var stop *budgetStop
	switch {
	case errors.As(err, &stop):
		// Not a failure: a first pass over a large registry is one.
		state.setResume(stop.at)
		r.Resume = stop.at
		s.opts.Metrics.budgetExhausted()
		s.log.WarnContext(ctx, "OCI sync: the download budget of the pass is spent; the next pass starts at this artifact",
			"artifact", stop.at, "budget_bytes", s.opts.MaxPassBytes)
		return nil
	case err == nil:
		state.setResume("") // a whole round: the next pass starts at the beginning
	}
	return err
}

// syncRound syncs the sources from the resume point, if any, and then
// those before it, and notes in listed the repositories of each source
// listed completely.
func (s *Syncer) syncRound(ctx context.Context, state *State, r *Report, listed map[*Source]map[string]bool) error {
	startRepo, startTag := state.resumeAt()
	started := startRepo == ""
	var later []stretch // before the resume point, for the end of the round
	for _, src := range s.opts.Sources {
		repos, ok, err := s.listSource(ctx, src, r)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		listed[src] = make(map[string]bool, len(repos))
		k := -1
		for i, repo := range repos {
			name := src.Registry.Repo(repo).String()
			listed[src][name] = true
			if !started && k < 0 && name == startRepo {
				k = i
			}
		}
		switch {
		case started:
			_, err = s.syncStretch(ctx, stretch{src: src, repos: repos}, state, r)
		case k < 0:
			later = append(later, stretch{src: src, repos: repos})
		default:
			started = true
			var reached bool
			reached, err = s.syncStretch(ctx, stretch{src: src, repos: repos[k:], from: startTag, unread: k}, state, r)
			if reached {
				later = append(later, stretch{src: src, repos: repos[:k+1], to: startTag})
			}
		}
		if err != nil {
			return err
		}
	}
	for _, st := range later {
		if _, err := s.syncStretch(ctx, st, state, r); err != nil {
			return err
		}
	}
	return nil
}

// listSource lists the repositories of src. A listing that fails is
// reported in r, and ok is false; the error returned is ctx's.
func (s *Syncer) listSource(ctx context.Context, src *Source, r *Report) (repos []string, ok bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, s.opts.ListTimeout)
	repos, err = src.repositories(lctx, s.opts.Remote.options(lctx))
	err = s.listTimedOut(ctx, lctx, err)
	cancel()
	if err != nil && ctx.Err() != nil {
		return nil, false, ctx.Err() // stopped: the failure is not the registry's
	}
	if err != nil {
		s.failed(ctx, "OCI sync: failed to list repositories", err, "registry", src.String())
		r.Failures = append(r.Failures, err)
		r.Places = append(r.Places, Place{Outcome: Failed, Registry: src.Registry.Name(), Repository: src.Prefix, Catalog: true})
		return nil, false, nil
	}
	return repos, true, nil
}

// A stretch is repositories of one source that a pass examines in a row:
// of the first, the tags from from on, and of the last, those before to
// ("" bounds nothing). unread is how many other repositories of the
// source are not read this pass if their registry cannot be reached.
type stretch struct {
	src      *Source
	repos    []string
	from, to string
	unread   int
}

// syncStretch syncs the repositories of st. It reports whether their
// registry could be reached: if not, it reports the failure in r and
// stops.
func (s *Syncer) syncStretch(ctx context.Context, st stretch, state *State, r *Report) (bool, error) {
	for i, name := range st.repos {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		var from, to string
		if i == 0 {
			from = st.from
		}
		if i == len(st.repos)-1 {
			to = st.to
		}
		repo := st.src.Registry.Repo(name)
		err := s.syncRepo(ctx, st.src, repo, from, to, state, r)
		var unreachable *unreachableError
		if errors.As(err, &unreachable) {
			s.unreachable(ctx, st.src, repo, unreachable, len(st.repos)-i-1+st.unread, r)
			return false, ctx.Err()
		}
		if err != nil {
			return true, err
		}
	}
	return true, nil
}

// An unreachableError is the error of reaching a repository's registry
// that every other repository of the source would meet alike (cannotReach).
type unreachableError struct {
	err   error
	after string // what else of the repository was not read, if anything
}

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// cannotReach reports whether err, from reaching a repository's registry
// (newRepoClient), is the registry failing for every repository: no answer
// (no connection, none in time), or an error status for /v2/. An error
// status from its token service is not: it may be for that repository
// alone, such as a 401 or 403 for its scope.
func cannotReach(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return true
	}
	return te.Request != nil && te.Request.URL.Path == "/v2/"
}

// noAnswer reports whether err, from a request, is the registry not
// answering it at all (no connection, the connection cut, no answer in
// time), rather than answering it wrongly.
func noAnswer(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded)
}

// unreachable reports that repo's registry could not be reached, and that
// the rest of src's repositories, those after repo, were not read this
// pass: one failure, not one per repository, and for a registry that does
// not answer, one ListTimeout, not one per repository holding up the
// sources after it.
func (s *Syncer) unreachable(ctx context.Context, src *Source, repo name.Repository, e *unreachableError, rest int, r *Report) {
	var unread []string
	if e.after != "" {
		unread = append(unread, e.after)
	}
	switch {
	case rest == 1:
		unread = append(unread, "the 1 other repository of "+src.String())
	case rest > 1:
		unread = append(unread, fmt.Sprintf("the %d other repositories of %s", rest, src))
	}
	var err error = e
	switch {
	case len(unread) == 1 && rest == 1:
		err = fmt.Errorf("%w; %s was not read this pass", e, unread[0])
	case len(unread) > 0:
		err = fmt.Errorf("%w; %s were not read this pass", e, strings.Join(unread, " and "))
	}
	s.failed(ctx, "OCI sync: failed to read repository", err, "repository", repo.String())
	r.Failures = append(r.Failures, err)
	p := repoPlace(repo)
	p.Others = rest
	r.Places = append(r.Places, p)
}

// syncRepo syncs the version tags of one repository, those from from on
// and before to ("" bounds nothing), and saves the state when due. A
// repository that cannot be read is reported in r, but for one whose
// registry cannot be reached, an *unreachableError returned for
// syncStretch to report; any other error returned stops the pass: a state
// that cannot be saved, ctx ended, or a *budgetStop.
func (s *Syncer) syncRepo(ctx context.Context, src *Source, repo name.Repository, from, to string, state *State, r *Report) error {
	c, tags, err := s.listRepo(ctx, repo)
	var unreachable *unreachableError
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err() // stopped: the failure is not the registry's
	case err != nil && !errors.Is(err, errAbsent):
		state.read(repo.String(), "", Failed)
	default:
		state.read(repo.String(), "", "")
	}
	switch {
	case errors.As(err, &unreachable):
		return &unreachableError{err: fmt.Errorf("failed to list the tags of %s: %w", repo, unreachable.err)}
	case errors.Is(err, errAbsent):
		// One named with -repository before its first push holds nothing
		// to sync, which is not a failure (it would degrade the server
		// until the first release); a misspelt one is this warning. One
		// deleted has no tag a pass could read again: the problems an
		// earlier pass found at its tags would fail every pass.
		state.settleRepo(repo.String())
		s.log.WarnContext(ctx, "OCI sync: the repository does not exist (yet): nothing to sync until a version is pushed; check -repository if it should", "repository", repo.String())
		return nil
	case err != nil:
		err = fmt.Errorf("failed to list the tags of %s: %w", repo, err)
		s.failed(ctx, "OCI sync: failed to read repository", err, "repository", repo.String())
		r.Failures = append(r.Failures, err)
		r.Places = append(r.Places, repoPlace(repo))
		return nil
	}
	slices.Sort(tags)
	state.retain(repo.String(), tags) // the listing is complete: it did not fail
	for _, tag := range tags {
		if tag < from || to != "" && tag >= to {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if err := s.syncTag(ctx, c, src, tag, state, r); err != nil {
			return err
		}
		if ctx.Err() != nil {
			break // Sync saves the state
		}
		if err := state.saveIfDue(ctx, s.saveEvery); err != nil {
			return err
		}
	}
	return nil
}

// listRepo reaches repo and lists its version tags within ListTimeout. The
// client returned carries no deadline: syncTag gives each artifact its own.
func (s *Syncer) listRepo(ctx context.Context, repo name.Repository) (*repoClient, []string, error) {
	lctx, cancel := context.WithTimeout(ctx, s.opts.ListTimeout)
	defer cancel()
	c, err := newRepoClient(lctx, s.opts.Remote, repo)
	if err != nil {
		err = s.listTimedOut(ctx, lctx, err)
		if cannotReach(err) {
			err = &unreachableError{err: err}
		}
		return nil, nil, err
	}
	tags, err := listTags(lctx, c)
	if absent(err) {
		return nil, nil, fmt.Errorf("%w: %w", errAbsent, err)
	}
	c.budget = s.budget
	return c.in(ctx), tags, s.listTimedOut(ctx, lctx, err)
}

// listTimedOut says so if err, from listing in lctx, came of ListTimeout
// running out while the pass (ctx) goes on.
func (s *Syncer) listTimedOut(ctx, lctx context.Context, err error) error {
	if err != nil && ctx.Err() == nil && errors.Is(lctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("gave up listing after %v: %w", s.opts.ListTimeout, err)
	}
	return err
}

// errAbsent wraps the error of listing a repository the registry says it
// does not have.
var errAbsent = errors.New("the registry has no such repository")

// absent reports whether err, from listing the tags of a repository once
// the registry answered /v2/ (newRepoClient), is the registry saying it has
// no such repository: the distribution spec's NAME_UNKNOWN, or a 404 with a
// distribution error body (Harbor's is NOT_FOUND). A 404 with any other
// body — an HTML page, nothing — is not a registry speaking but a web
// server, a proxy's default site or a wrong port, which must fail the
// repository rather than pass for one not pushed yet; so must a /v2/ that
// does not answer as a registry's.
func absent(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	return te.StatusCode == http.StatusNotFound && len(te.Errors) > 0 ||
		slices.ContainsFunc(te.Errors, func(d transport.Diagnostic) bool { return d.Code == transport.NameUnknownErrorCode })
}

// syncTag examines the artifact at one tag, unless an earlier pass recorded
// it from the same tag at the same digest, and logs and counts what became
// of it. It returns an *unreachableError if the registry did not answer
// for the tag, for syncStretch to report: every tag after it would fail
// alike, each after remote's retries; and a *budgetStop, leaving the tag
// as it was, if the pass's download budget is spent or cannot cover its
// layers.
func (s *Syncer) syncTag(pass context.Context, c *repoClient, src *Source, tag string, state *State, r *Report) error {
	ctx, cancel := context.WithTimeout(pass, s.opts.Timeout)
	defer cancel()
	c = c.in(ctx)
	at := c.repo.Tag(tag).String()
	desc, err := remote.Head(c.repo.Tag(tag), c.opts...)
	if err != nil && pass.Err() != nil {
		return nil // the pass was stopped: the failure is not the artifact's
	}
	if err != nil {
		err = s.artifactTimedOut(pass, ctx, fmt.Errorf("failed to resolve the tag: %w", err))
		state.read(c.repo.String(), tag, Failed)
		if noAnswer(err) {
			return &unreachableError{err: fmt.Errorf("artifact %s: %w", at, err), after: fmt.Sprintf("the tags of %s after it", c.repo)}
		}
		s.report(ctx, r, c.repo.Tag(tag), "", &result{outcome: Failed, err: err})
		return nil
	}
	digest := desc.Digest.String()
	if mv, ok := state.recorded(c.repo.String(), tag, digest); ok && s.placed(c.repo, tag, mv) && s.inLog(ctx, mv) {
		state.read(c.repo.String(), tag, Present)
		r.Skipped++
		return nil
	}
	if s.budget.spent() {
		return &budgetStop{at}
	}
	prev := state.entry(c.repo.String(), tag)
	state.forget(c.repo.String(), tag) // moved, or the log lacks it after all
	res := s.examine(ctx, c, src, tag, desc, prev)
	if errors.Is(res.err, errBudgetSpent) {
		if prev != (stateEntry{}) {
			state.put(c.repo.String(), tag, prev)
		}
		return &budgetStop{at}
	}
	switch {
	case res.outcome == Recorded || res.outcome == Present:
		state.put(c.repo.String(), tag, stateEntry{Digest: digest, Module: res.module.String(), Mod: layerOf(res.mod), Zip: layerOf(res.zip)})
	case res.outcome == Retagged || res.outcome == Invalid || res.outcome == Conflict:
		if e, ok := verdictEntry(prev, res, digest); ok {
			state.put(c.repo.String(), tag, e)
		}
	}
	if pass.Err() != nil && res.outcome != Recorded && res.outcome != Present {
		return nil // the pass was stopped: the failure is not the artifact's
	}
	if res.outcome == Failed {
		res.err = s.artifactTimedOut(pass, ctx, res.err)
	}
	state.read(c.repo.String(), tag, res.outcome)
	s.report(ctx, r, c.repo.Tag(tag), digest, res)
	return nil
}

// unsettled adds to r, and logs, the problems that earlier passes found
// (State.Problems) where this pass did not read again: it spent its
// download budget before them (the next pass goes on from there), or a
// registry failed first. A round over a registry larger than one budget
// is spread over several passes; without them, a tag failing at every
// read failed only the pass of each round that reached it, and the
// passes in between looked like a sync working, keeping
// sumd_oci_sync_last_success_timestamp_seconds advancing and the health
// problem away. Each kind is one error naming the places.
func (s *Syncer) unsettled(ctx context.Context, state *State, r *Report) {
	unread := state.unread()
	for _, o := range []Outcome{Failed, Conflict, Retagged, Refused} {
		ats := unread[o]
		if len(ats) == 0 {
			continue
		}
		what, list := "a read failure", &r.Failures
		switch o {
		case Conflict:
			what, list = "a conflict (a version re-published with other hashes)", &r.Conflicts
		case Retagged:
			what, list = "a re-tag (a recorded version's tag moved to content no configured key signed)", &r.Conflicts
		case Refused:
			what, list = "a version the cross-check refused", &r.Refused
		}
		for _, at := range ats {
			host, rest, _ := strings.Cut(at, "/")
			repo, tag, _ := strings.Cut(rest, ":") // a repository path holds no colon
			r.Places = append(r.Places, Place{Outcome: o, Registry: host, Repository: repo, Tag: tag, Unread: true})
		}
		names := strings.Join(ats[:min(len(ats), maxUnsettledNames)], ", ")
		if n := len(ats) - maxUnsettledNames; n > 0 {
			names += fmt.Sprintf(" and %d more", n)
		}
		err := fmt.Errorf("%d place(s) where an earlier pass found %s were not read again by this pass, which stopped at its download budget or at a failure before them (the sync fails until a pass reads them again): %s", len(ats), what, names)
		*list = append(*list, err)
		s.log.ErrorContext(ctx, "OCI sync: not read again this pass where an earlier pass found a problem", "outcome", string(o), "err", err)
	}
}

// maxUnsettledNames bounds the places unsettled names in one error.
const maxUnsettledNames = 10

// verdictEntry is what the sync state keeps of a tag whose manifest,
// digest, is retagged, or signed and invalid or a conflict (res): what was
// recorded from the tag, so that a tag moved back to it is skipped again
// and a manifest with its layers is present, and the verdict on digest, if
// it is one on the manifest (res.judged), so that later passes report it
// again without fetching its layers; a tag moved once more is judged
// afresh. Without an entry of the same version (the state lost it) the
// verdict is kept alone. The verdict never makes a pass skip the tag: a
// re-tag is one only for a version the log holds (examine asks the log),
// a conflict is compared with the log again, an invalid manifest is one
// only while its signature verifies and its layers are within the limits,
// and each is reported on every pass.
func verdictEntry(prev stateEntry, res *result, digest string) (stateEntry, bool) {
	e := stateEntry{Module: res.module.String()}
	if prev.Module == e.Module {
		e = prev
	}
	if res.judged {
		switch res.outcome {
		case Retagged:
			e.Retagged = digest
		case Invalid:
			e.Invalid = digest
		case Conflict:
			e.Conflict = stateConflict{Digest: digest, Hash: res.rec.Hash, GoMod: res.rec.GoMod}
		}
	}
	return e, e.Digest != "" || e.Retagged != "" || e.Invalid != "" || e.Conflict.Digest != ""
}

// artifactTimedOut says so if err, from work on one artifact in ctx, came
// of Timeout running out while the pass goes on: "context deadline
// exceeded" alone does not say which bound it was.
func (s *Syncer) artifactTimedOut(pass, ctx context.Context, err error) error {
	if pass.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("gave up on the artifact after %v: %w", s.opts.Timeout, err)
	}
	return err
}

// placed reports whether mv ("path@version"), as the state remembers it
// for repo:tag, is a version that repository and tag hold under some
// source (checkPlacement): a damaged or altered entry naming another
// version the log holds must not make the pass skip the artifact there.
func (s *Syncer) placed(repo name.Repository, tag, mv string) bool {
	path, version, ok := splitModule(mv)
	if !ok {
		return false
	}
	a := &Artifact{Module: module.Version{Path: path, Version: version}}
	return slices.ContainsFunc(s.opts.Sources, func(src *Source) bool {
		return src.covers(repo.String()) && checkPlacement(a, src.Prefix, repo.RepositoryStr(), tag) == nil
	})
}

// inLog reports whether the log holds mv ("path@version").
func (s *Syncer) inLog(ctx context.Context, mv string) bool {
	path, version, ok := splitModule(mv)
	if !ok {
		return false
	}
	_, err := s.opts.Log.Lookup(ctx, module.Version{Path: path, Version: version})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.WarnContext(ctx, "OCI sync: failed to look up a remembered version; examining it again", "module", mv, "err", err)
	}
	return err == nil
}

// report logs the outcome of the artifact at ref in one line, counts it
// and adds conflicts and failures to r.
func (s *Syncer) report(ctx context.Context, r *Report, ref name.Tag, digest string, res *result) {
	at := ref.String()
	if failsPass(res.outcome) {
		r.Places = append(r.Places, tagPlace(res.outcome, ref))
	}
	r.Counts[res.outcome]++
	s.opts.Metrics.artifact(res.outcome)
	attrs := []any{"outcome", string(res.outcome), "artifact", at, "digest", digest}
	if res.module.Path != "" {
		attrs = append(attrs, "module", res.module.Path, "version", res.module.Version)
	}
	var conflict *tlog.ConflictError
	switch {
	case res.outcome == Recorded || res.outcome == Present:
		attrs = append(attrs, "signature", res.format, "key", res.key, "record", res.id)
		s.log.InfoContext(ctx, "OCI sync: "+res.verb(), attrs...)
	case res.outcome == Retagged: // before a conflict: its error may wrap one
		r.Conflicts = append(r.Conflicts, fmt.Errorf("artifact %s: %w", at, res.err))
		s.log.ErrorContext(ctx, "OCI sync: refused: a recorded version re-tagged to other content no configured key signed", append(attrs, "err", res.err, "hint", hintRecorded)...)
	case errors.As(res.err, &conflict):
		r.Conflicts = append(r.Conflicts, fmt.Errorf("artifact %s: %w", at, res.err))
		s.log.ErrorContext(ctx, "OCI sync: refused: version already recorded with other hashes", append(attrs, "err", res.err, "hint", hintRecorded)...)
	case res.outcome == Refused:
		r.Refused = append(r.Refused, fmt.Errorf("artifact %s: %w", at, res.err))
		s.log.ErrorContext(ctx, "OCI sync: refused by the cross-check", append(attrs, "err", res.err, "hint", hintCrosscheck)...)
	case res.outcome == Failed:
		r.Failures = append(r.Failures, fmt.Errorf("artifact %s: %w", at, res.err))
		s.failed(ctx, "OCI sync: failed to examine artifact", res.err, attrs...)
	case res.outcome == Ignored:
		s.log.DebugContext(ctx, "OCI sync: ignored: not a module artifact", attrs...)
	default:
		attrs = append(attrs, "err", res.err)
		if h := skipHints[res.outcome]; h != "" {
			attrs = append(attrs, "hint", h)
		}
		s.log.WarnContext(ctx, "OCI sync: skipped artifact", attrs...)
	}
}

// Hints of the log lines of artifacts refused (report): what the operator
// does, since the status names only the tag.
const (
	hintRecorded   = "a recorded version never changes: move the tag back to the release recorded, or delete it, and publish the change as a new version"
	hintCrosscheck = "the upstream checksum database holds other hashes for this public version, or none: publish your own modules under a -private path, public ones as they are upstream"
)

// skipHints are the hints of skipped artifacts whose outcome says someone
// published what sumd cannot trust.
var skipHints = map[Outcome]string{
	BadSignature: "sign the artifact with a key of -cosign-key (cosign sign --key), or, if its signer is to be trusted, add the signer's public key to -cosign-key",
	Tampered:     "a layer differs from what the signed manifest names: the registry's blobs were altered or damaged; push and sign the release again, and find out who could write them",
}

// failed logs a read failure of a pass. A registry's refusal carries
// DeniedHint: under sumd serve the log is the only place that says it.
func (s *Syncer) failed(ctx context.Context, msg string, err error, attrs ...any) {
	attrs = append(attrs, "err", err)
	if IsDenied(err) {
		attrs = append(attrs, "hint", DeniedHint)
	}
	s.log.ErrorContext(ctx, msg, attrs...)
}
