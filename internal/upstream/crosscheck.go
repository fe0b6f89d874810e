package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/redirect"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// SumGolangOrgKey is the verifier key of sum.golang.org, as built into the
// go command.
const SumGolangOrgKey = sumdbclient.SumGolangOrgKey

// DefaultCacheBytes bounds a Checker's cache of tiles and lookups.
const DefaultCacheBytes = 16 << 20

// CheckerOptions configure a Checker.
type CheckerOptions struct {
	// Key is the upstream checksum database's verifier key (default
	// SumGolangOrgKey); its name is the database's name.
	Key string
	// URL is the database's base URL. "" means through the upstream
	// proxies, found as the go command finds them: the first of Sources
	// whose <URL>/sumdb/<name>/supported answers 200 (404 or 410: next
	// source; anything else: next source after "|", failure after ",").
	// The source found is kept until a read through it fails while "|"
	// follows it: then the proxies are probed again. A discovery that
	// fails is not kept: the checks that waited for it fail with it, and
	// the next check probes again. sumd never falls back to the internet
	// directly: set URL for that.
	URL string
	// Auth is sent to URL (Sources carry their own).
	Auth Auth
	// Sources are the proxies to reach the database through, usually the
	// Fetcher's. file:// sources are skipped.
	Sources []Source
	// Private lists the module paths that are not checked, in GOPRIVATE
	// syntax: the company's own, which a public database cannot know.
	Private string
	// FailOpen records a version unchecked when the database cannot be
	// reached. The default, false, fails closed: 502 (504 on a timeout).
	// A database that misbehaves or answers garbage always fails closed.
	FailOpen bool
	// Timeout bounds each request to the database (default DefaultTimeout).
	Timeout time.Duration
	// StateFile, if set, keeps the database's newest verified tree head
	// across restarts, like the go command's $GOPATH/pkg/sumdb/<name>/latest;
	// without it sumd trusts whatever tree it first sees after each start.
	// A check whose tree head cannot be saved fails, whatever FailOpen,
	// with KindLocal (503), and Problems says so.
	StateFile string
	// CacheBytes bounds the in-memory cache of tiles and lookups (default
	// DefaultCacheBytes).
	CacheBytes int64
	// HTTPClient sends the requests; nil means a client of sumd's own. It
	// follows redirects as FetcherOptions.HTTPClient does.
	HTTPClient *http.Client
	// Logger receives mismatches and misbehaviour at Error; nil means
	// slog.Default().
	Logger *slog.Logger
	// Metrics, if non-nil, counts cross-checks by outcome.
	Metrics *Metrics
}

// A Checker verifies computed hashes against an upstream checksum database
// (sum.golang.org by default) with x/mod's own client, which checks every
// answer against the database's signed, append-only tree. It is safe for
// concurrent use.
type Checker struct {
	name     string
	private  string
	failOpen bool
	state    *clientState
	remote   *sumdbRemote
	log      *slog.Logger
	metrics  *Metrics

	// healthMu guards what Problems reports: the failures to save
	// StateFile, the versions let through unchecked (FailOpen), and the
	// run of checks the database gave no verified answer to.
	healthMu  sync.Mutex
	unsaved   events
	unchecked events
	fails     int       // checks in a row that failed for want of an answer
	lastFail  time.Time // the last of them
}

// errUnsaved is the client's text of a failure to save StateFile: it names
// no path.
var errUnsaved = errors.New("sumd cannot save the cross-check's verified tree head now; try again later")

// stateFailure notes a failure to save StateFile.
func (c *Checker) stateFailure() {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	c.unsaved.add(time.Now())
}

// noteAnswer notes the outcome of a check that asked the database: an
// answer verified against its tree (it agrees, disagrees or lacks the
// version) ends the run of failures, a failure to get one (no answer, a
// timeout, an error status, an answer no honest database gives) that
// fails the check adds to it. Checks the database had no part in (a
// private path, the caller's going) are not noted, nor those FailOpen lets
// through (uncheckedRecord).
func (c *Checker) noteAnswer(answered bool) {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	if answered {
		c.fails = 0
		return
	}
	c.fails++
	c.lastFail = time.Now()
}

// recordedUnchecked notes n versions let through unchecked (FailOpen)
// that the log has now recorded. It is the Recorder's to call, once the
// log holds them: a version let through that the log then refuses (a
// conflict, a full disk, a failed commit) is no version recorded
// unchecked, and Problems must not say it is.
func (c *Checker) recordedUnchecked(n int) {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	now := time.Now()
	for range n {
		c.unchecked.add(now)
	}
}

// Problems reports, for the server's health:
//
//   - the failures to save StateFile within the last healthWindow: every
//     check of a new version fails with 503 until the operator acts;
//   - the versions let through unchecked (FailOpen) within the last
//     healthWindow, from the first: each stays unchecked in the log for
//     good, so the database's answering again does not end it;
//   - failRun or more checks in a row that got no verified answer from
//     the database, the last within healthWindow, none answered since:
//     every first lookup of a public version fails (502, 504 on a
//     timeout), which nothing else in the health showed.
//
// The texts name the database as clients see it in their 502s, by its
// name, and no path or URL (the log has them).
func (c *Checker) Problems() []string {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	now := time.Now()
	c.unsaved.prune(now)
	c.unchecked.prune(now)
	var ps []string
	if n := len(c.unsaved); n > 0 {
		ps = append(ps, fmt.Sprintf("sumd could not save the cross-check state (-crosscheck-state): %s in the last %s, last at %s: first lookups fail with 503; see the server log",
			c.unsaved.count("failure", "failures"), healthWindow, c.unsaved[n-1].UTC().Format(time.RFC3339)))
	}
	if n := len(c.unchecked); n > 0 {
		ps = append(ps, fmt.Sprintf("versions are being recorded unchecked: %s without the cross-check with %s in the last %s, the last at %s, as it could not be reached (-crosscheck-fail-open); see the server log, which names them",
			c.unchecked.count("version recorded", "versions recorded"), c.name, healthWindow, c.unchecked[n-1].UTC().Format(time.RFC3339)))
	}
	if c.fails >= failRun && now.Sub(c.lastFail) < healthWindow {
		ps = append(ps, fmt.Sprintf("the cross-check with %s (-crosscheck) failed the last %d checks (no answer, a timeout, an error status or an answer it should not give), the last at %s, and it answered none since: first lookups of public versions fail with 502 (504 on a timeout); see the server log",
			c.name, c.fails, c.lastFail.UTC().Format(time.RFC3339)))
	}
	return ps
}

// NewChecker checks opts and loads StateFile, refusing one that does not
// hold a tree head signed by Key.
func NewChecker(opts CheckerOptions) (*Checker, error) {
	opts = opts.withDefaults()
	verifier, err := note.NewVerifier(opts.Key)
	if err != nil {
		return nil, fmt.Errorf("invalid cross-check key: %w", err)
	}
	if err := CheckPatterns(opts.Private); err != nil {
		return nil, fmt.Errorf("invalid private patterns: %w", err)
	}
	remote, err := newSumdbRemote(verifier.Name(), opts)
	if err != nil {
		return nil, err
	}
	state, err := loadClientState(opts.Key, verifier, opts.StateFile, opts.CacheBytes)
	if err != nil {
		return nil, err
	}
	return &Checker{
		name: verifier.Name(), private: opts.Private, failOpen: opts.FailOpen,
		state: state, remote: remote, log: opts.Logger, metrics: opts.Metrics,
	}, nil
}

func (o CheckerOptions) withDefaults() CheckerOptions {
	if o.Key == "" {
		o.Key = SumGolangOrgKey
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	o.HTTPClient = redirect.Client(o.HTTPClient)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Name is the upstream database's name.
func (c *Checker) Name() string { return c.name }

// Applies reports whether versions of path are checked: those of every path
// the private patterns do not match.
func (c *Checker) Applies(path string) bool {
	return !module.MatchPrefixPatterns(c.private, path)
}

// Check returns nil if rec's path is private or the upstream database holds
// exactly rec's hashes. Otherwise it returns an *Error: KindMismatch naming
// both pairs of hashes, KindGone if the database has no record of the
// version, KindUnavailable or KindTimeout if it cannot give a verified
// answer (or nil with FailOpen, when it was merely unreachable), KindLocal
// if the verified tree head could not be saved to StateFile.
//
// A version FailOpen lets through is not counted among those Problems
// reports recorded unchecked: the Recorder counts it once it is recorded
// (see check).
func (c *Checker) Check(ctx context.Context, rec gosum.Record) error {
	_, err := c.check(ctx, rec)
	return err
}

// check is Check, also reporting whether rec was let through unchecked
// (FailOpen): the caller is to call recordedUnchecked once it is recorded.
func (c *Checker) check(ctx context.Context, rec gosum.Record) (unchecked bool, err error) {
	if !c.Applies(rec.Path) {
		c.metrics.crossCheck(checkPrivate)
		return false, nil
	}
	// A Client per check: sumdb.Client remembers every lookup's result,
	// errors included, for its lifetime, and its ops have no context. The
	// verified tree head and the tiles outlive it in c.state.
	ops := &checkOps{ctx: ctx, c: c}
	client := sumdb.NewClient(ops)
	zipLines, err := client.Lookup(rec.Path, rec.Version)
	var modLines []string
	if err == nil {
		modLines, err = client.Lookup(rec.Path, rec.Version+"/go.mod")
	}
	m := module.Version{Path: rec.Path, Version: rec.Version}
	if err != nil {
		return c.failed(ctx, m, ops, err)
	}
	return false, c.compare(ctx, rec, zipLines, modLines)
}

// compare accepts exactly one line per hash, equal to rec's.
func (c *Checker) compare(ctx context.Context, rec gosum.Record, zipLines, modLines []string) error {
	hash := onlyHash(zipLines, rec.Path+" "+rec.Version+" ")
	goMod := onlyHash(modLines, rec.Path+" "+rec.Version+"/go.mod ")
	c.noteAnswer(true)
	if hash == rec.Hash && goMod == rec.GoMod {
		c.metrics.crossCheck(checkOK)
		return nil
	}
	c.metrics.crossCheck(checkMismatch)
	c.log.ErrorContext(ctx, "cross-check mismatch: refusing to record", "module", rec.Path, "version", rec.Version,
		"sumdb", c.name, "computed_hash", rec.Hash, "computed_gomod", rec.GoMod, "sumdb_hash", hash, "sumdb_gomod", goMod)
	return newError(KindMismatch, module.Version{Path: rec.Path, Version: rec.Version},
		"checksum mismatch: computed %s, go.mod %s; %s has %s, go.mod %s", rec.Hash, rec.GoMod, c.name, hash, goMod)
}

// onlyHash returns the hash of the single line with prefix, or a
// placeholder that matches no hash.
func onlyHash(lines []string, prefix string) string {
	if len(lines) != 1 || !strings.HasPrefix(lines[0], prefix) {
		return fmt.Sprintf("(%d lines)", len(lines))
	}
	return lines[0][len(prefix):]
}

// failed turns a failed lookup into the Error the policy calls for.
func (c *Checker) failed(ctx context.Context, m module.Version, ops *checkOps, err error) (unchecked bool, _ error) {
	ops.mu.Lock()
	security, notFound, misbehaved, unavailable, timeout, unsaved := ops.security, ops.notFound, ops.misbehaved, ops.unavailable, ops.timeout, ops.unsaved
	ops.mu.Unlock()
	switch {
	case security != "" || errors.Is(err, sumdb.ErrSecurity):
		c.metrics.crossCheck(checkError)
		c.noteAnswer(false)
		return false, newError(KindUnavailable, m, "checksum database %s misbehaved (its tree is inconsistent): refusing to record", c.name)
	case unsaved != nil:
		// The database answered; sumd could not keep what it verified
		// (StateFile): only the operator can fix that, whatever the
		// policy, and the client must not hear the path.
		c.metrics.crossCheck(checkError)
		c.noteAnswer(true)
		c.stateFailure()
		c.log.ErrorContext(ctx, "cross-check state not saved: refusing to record", "module", m.Path, "version", m.Version, "sumdb", c.name, "err", unsaved)
		return false, &Error{Kind: KindLocal, Module: m, Err: errUnsaved, Cause: unsaved}
	case notFound != nil:
		c.metrics.crossCheck(checkMissing)
		c.noteAnswer(true)
		return false, newError(KindGone, m, "checksum database %s has no record of this version, and its path is not private", c.name)
	case misbehaved != nil:
		// Reached, but no verified answer to be had: whatever the
		// policy, nothing is recorded unchecked on its account.
		c.metrics.crossCheck(checkError)
		c.noteAnswer(false)
		c.log.ErrorContext(ctx, "cross-check failed, and not for an outage: the checksum database (or a proxy in front of it) gave an answer an honest one does not, or cannot be reached this way; refusing to record",
			"module", m.Path, "version", m.Version, "sumdb", c.name, "err", misbehaved)
		e := &Error{Kind: KindUnavailable, Module: m, Err: fmt.Errorf("cannot cross-check with %s: its answer is not one it should give (see the server log)", c.name), Cause: misbehaved}
		if errors.Is(misbehaved, errNotSupported) {
			e.Err = fmt.Errorf("cannot cross-check with %s: %w", c.name, errNotSupported)
		}
		return false, e
	case ctx.Err() != nil:
		// The caller went (an upload whose client disconnected): not an
		// outage of the database, so no reason to record unchecked.
		return false, &Error{Kind: KindUnavailable, Module: m, Err: fmt.Errorf("cannot cross-check with %s: %w", c.name, ctx.Err()), Cause: err}
	case unavailable != nil:
		c.metrics.crossCheck(checkUnavailable)
		if c.failOpen {
			// Not a failed lookup, so no part of the run of those
			// (which says first lookups fail): Problems reports it
			// from the first version recorded, which stays
			// unchecked (the Recorder counts it once recorded).
			c.log.WarnContext(ctx, "cross-check unavailable: recording unchecked (fail-open)", "module", m.Path, "version", m.Version, "sumdb", c.name, "err", unavailable)
			return true, nil
		}
		c.noteAnswer(false)
		// The reason names the database, which clients know by name, but
		// not the URL or proxy it is reached through.
		e := &Error{Kind: KindUnavailable, Module: m, Err: fmt.Errorf("cannot cross-check with %s: it could not be reached", c.name), Cause: unavailable}
		if timeout {
			e.Kind, e.Err = KindTimeout, fmt.Errorf("cannot cross-check with %s: it did not answer in time", c.name)
		}
		return false, e
	}
	c.metrics.crossCheck(checkError)
	c.noteAnswer(false)
	c.log.ErrorContext(ctx, "cross-check failed", "module", m.Path, "version", m.Version, "sumdb", c.name, "err", err)
	return false, &Error{Kind: KindUnavailable, Module: m, Err: fmt.Errorf("cross-check with %s failed", c.name), Cause: err}
}
