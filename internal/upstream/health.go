package upstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// healthWindow is how long a failure of the temporary directory, or a
// lookup refused for want of a fetch slot, stays a problem of the
// server's health (Problems).
const healthWindow = 5 * time.Minute

// maxEvents bounds the events kept per kind: beyond it, Problems says
// "at least".
const maxEvents = 1000

// events are the times something happened within healthWindow, oldest
// first.
type events []time.Time

// add notes an event at now.
func (e *events) add(now time.Time) {
	e.prune(now)
	*e = append(*e, now)
	if n := len(*e); n > maxEvents {
		*e = (*e)[n-maxEvents:]
	}
}

// prune drops the events older than healthWindow.
func (e *events) prune(now time.Time) {
	cut := now.Add(-healthWindow)
	i := 0
	for i < len(*e) && (*e)[i].Before(cut) {
		i++
	}
	*e = (*e)[i:]
}

// count says how many events there were, as Problems words it.
func (e events) count(one, many string) string {
	switch n := len(e); {
	case n == 1:
		return "1 " + one
	case n >= maxEvents:
		return fmt.Sprintf("at least %d %s", n, many)
	default:
		return fmt.Sprintf("%d %s", n, many)
	}
}

// Problems reports, for the server's health (degraded: recorded versions
// are served, new ones may not be), what happened within the last
// healthWindow:
//
//   - sumd's own failures to store or read back module zips in its
//     temporary directory (-tmp-dir full, removed, unreadable): every
//     first lookup fails with 503 until the operator acts;
//   - the Checker's failures to save its state file, the versions it let
//     through unchecked (fail-open), and its run of checks the cross-check
//     database gave no answer to (Checker.Problems);
//   - first lookups refused because MaxFetches fetches were in flight
//     ("upstream fetch slots saturated"): new versions get 503 while
//     some client — a build, or someone keeping the slots busy — holds
//     them all. Per-client refusals are not: they are that client's;
//   - missRun or more fetches in a row that every upstream proxy answered
//     404 or 410, the last within healthWindow, none found since: what a
//     misconfigured -upstream URL looks like (see missRun);
//   - failRun or more fetches in a row that one upstream proxy failed (no
//     answer, a timeout, an error status), the last within healthWindow,
//     none answered since: after "|" the next proxy may answer them all,
//     and nothing else would show it (see failRun).
//
// The texts name no path or client (anonymous clients see /healthz); the
// log has them.
func (r *Recorder) Problems() []string {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	now := r.now()
	r.local.prune(now)
	r.busy.prune(now)
	var ps []string
	if n := len(r.local); n > 0 {
		times := "once"
		if n > 1 {
			times = fmt.Sprintf("%d times", n)
		}
		ps = append(ps, fmt.Sprintf("sumd could not store or read back module zips in its temporary directory (-tmp-dir) %s in the last %s, last at %s: first lookups fail with 503; see the server log",
			times, healthWindow, r.local[n-1].UTC().Format(time.RFC3339)))
	}
	if n := len(r.busy); n > 0 {
		ps = append(ps, fmt.Sprintf("upstream fetch slots saturated: %s in the last %s, last at %s, because all %d fetch slots (-upstream-parallel) were taken; see sumd_upstream_lookup_fetches_in_flight and the server log",
			r.busy.count("first lookup refused", "first lookups refused"), healthWindow, r.busy[n-1].UTC().Format(time.RFC3339), cap(r.slots)))
	}
	if r.misses >= missRun && now.Sub(r.lastMiss) < healthWindow {
		ps = append(ps, fmt.Sprintf("the last %d versions fetched from upstream were missing from every upstream proxy (404 or 410), the last at %s, and none was found since: if versions that exist are among them, check that each -upstream URL is the proxy's GOPROXY base URL; see the server log",
			r.misses, r.lastMiss.UTC().Format(time.RFC3339)))
	}
	if r.fetcher != nil {
		ps = append(ps, r.fetcher.health.problems()...)
	}
	if r.checker != nil {
		ps = append(ps, r.checker.Problems()...)
	}
	return ps
}

// localFailure notes a failure of the temporary directory.
func (r *Recorder) localFailure() {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	r.local.add(r.now())
}

// saturated notes a lookup refused for want of a fetch slot.
func (r *Recorder) saturated() {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	r.busy.add(r.now())
}

// missRun is how many fetches in a row every upstream proxy must answer
// 404 or 410 for Problems to report it: a URL that is no GOPROXY base URL
// (a path prefix left out, the proxy's web UI) answers so for every
// version, as a proxy lacking it does, while a working one has most of
// what the go command asks for.
const missRun = 20

// noteFetch notes the outcome of a fetch, err: a version no upstream
// proxy had adds to the run of misses, one found ends it. Other failures
// (an outage, an invalid version, the client's going) say nothing of it.
func (r *Recorder) noteFetch(err error) {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	switch {
	case err == nil:
		r.misses = 0
	case kindOf(err) == KindGone:
		r.misses++
		r.lastMiss = r.now()
	}
}

// failRun is how many fetches in a row one source must fail (no answer, a
// timeout, a status other than 404 and 410) for Problems to report it: a
// source after which "|" lets the next one answer is otherwise dead
// without a word, each fetch succeeding through the next, and a single
// failure is as likely a blip as an outage.
const failRun = 3

// sourceRun is what a Fetcher saw of one source lately.
type sourceRun struct {
	fails    int       // fetches in a row it failed
	lastFail time.Time // the last of them
	misses   int       // fetches in a row it answered 404 or 410
	// warned says the Fetcher logged a warning of this run of failures
	// (see sourceHealth.warn): it logs the next ones of the run at debug
	// level, and when the run ends says so once.
	warned bool
}

// noted is what sourceHealth.note saw change in a source's runs.
type noted struct {
	// missRunReached: the source's run of misses has just reached
	// missRun.
	missRunReached bool
	// recovered is the length of the run of failures an answer has just
	// ended, if the Fetcher warned of that run; else 0.
	recovered int
}

// sourceHealth is what a Fetcher saw of each of its sources, in the
// order of its list, for the server's health.
type sourceHealth struct {
	mu   sync.Mutex
	runs []sourceRun // guarded by mu
}

// note notes the outcome of fetching a version from source i: any answer
// of the source's own (found, 404 or 410, an invalid module) ends its run
// of failures, and any but 404 or 410 its run of misses; a failure that is
// neither the source's (sumd's own KindLocal, the caller's going) nor an
// answer says nothing of it. It reports whether the source's run of
// misses has just reached missRun, which the Fetcher logs: a URL that is
// no GOPROXY base URL misses every version, and when a later source has
// them nothing else shows it. That is no problem of the server's health,
// unlike a source's failures: a proxy holding only the company's modules,
// listed before a public one, misses most versions too. It also reports
// the end of a run of failures the Fetcher warned of, which it logs.
func (h *sourceHealth) note(ctx context.Context, i int, err error) noted {
	h.mu.Lock()
	defer h.mu.Unlock()
	run := &h.runs[i]
	var n noted
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()), kindOf(err) == KindLocal:
		return n
	case isNotFound(err):
		run.misses++
		n.missRunReached = run.misses == missRun
	case err == nil, kindOf(err) == KindInvalid:
		run.misses = 0
	default:
		run.fails++
		run.lastFail = time.Now()
		return n
	}
	if run.warned {
		n.recovered = run.fails
	}
	run.fails, run.warned = 0, false
	return n
}

// warn reports whether the Fetcher is to warn of source i's latest
// failure (noted already): only of the first of a run. A source down
// fails every fetch, thousands a minute under load, and Problems reports
// the run (failRun) while it lasts; the rest are logged at debug level.
func (h *sourceHealth) warn(i int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	run := &h.runs[i]
	if run.warned || run.fails == 0 {
		return false
	}
	run.warned = true
	return true
}

// problems reports the sources that failed failRun or more fetches in a
// row, the last within healthWindow. A source is named by its place in
// the list: its URL may be internal, and anonymous clients read /healthz.
func (h *sourceHealth) problems() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ps []string
	for i, run := range h.runs {
		if run.fails >= failRun && time.Since(run.lastFail) < healthWindow {
			ps = append(ps, fmt.Sprintf("upstream proxy %d of %d (-upstream) failed the last %d fetches asked of it (no answer, a timeout or an error status), the last at %s, and answered none since: new versions that only it has are not recorded; see the server log",
				i+1, len(h.runs), run.fails, run.lastFail.UTC().Format(time.RFC3339)))
		}
	}
	return ps
}
