package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
)

// maxRemoteBody caps one answer of the checksum database: lookups and tiles
// are a few KiB, and common clients read through 1 MiB.
const maxRemoteBody = 1 << 20

// errRemoteTimeout marks a database request that timed out.
var errRemoteTimeout = errors.New("no answer within the timeout")

// errNotSupported is the discovery's failure when no upstream proxy serves
// the database: a configuration problem, which clients may be told.
var errNotSupported = errors.New("no upstream proxy supports it")

// sumdbRemote reads from the upstream checksum database, at its configured
// URL or through the first upstream proxy that supports it.
type sumdbRemote struct {
	name    string
	url     string // configured base URL, or ""
	auth    Auth   // for url
	sources []Source
	timeout time.Duration
	client  opener
	log     *slog.Logger

	// lock, a one-slot channel, guards found and serializes discovery.
	// It is not a sync.Mutex so that a check waits for another's
	// discovery (network requests, up to a timeout each) only as long as
	// its own context lasts: an abandoned flight must give back its fetch
	// slot at once.
	lock  chan struct{}
	found *Source // the discovered base, with its source's auth and separator
	// failure is the failure of the last discovery that ran to its end,
	// guarded by lock; failures counts them, read before waiting for lock
	// to learn whether one ended during the wait (see base).
	failure  error
	failures atomic.Uint64
}

func newSumdbRemote(name string, opts CheckerOptions) (*sumdbRemote, error) {
	r := &sumdbRemote{
		name: name, url: strings.TrimSuffix(opts.URL, "/"), auth: opts.Auth,
		timeout: opts.Timeout, client: opener{client: opts.HTTPClient}, log: opts.Logger,
		lock: make(chan struct{}, 1),
	}
	for _, src := range opts.Sources {
		if strings.HasPrefix(src.URL, "http") {
			r.sources = append(r.sources, src)
		}
	}
	if r.url == "" && len(r.sources) == 0 {
		return nil, fmt.Errorf("cross-check with %s needs its URL or an http(s) upstream proxy to reach it through", name)
	}
	if err := opts.Auth.check(); err != nil {
		return nil, fmt.Errorf("cross-check auth: %w", err)
	}
	return r, nil
}

// read returns the body of a 200 answer to GET <base><path>. Non-200
// answers are *statusError; a timeout wraps errRemoteTimeout. A failure
// through a discovered source that "|" follows is tried once more through
// the source a new discovery finds (see failOver). If that fails too, a
// first failure that was no outage (misbehaving: a refusal of sumd's
// credentials, say) is returned over a later outage, as discover does:
// it must fail closed whatever the policy and whatever later sources do.
// Not over ctx's end, though: the second try, cut short, might have found
// a source that answers, and the check is the caller's to abandon, not
// the first source's to refuse (failOver does not try again once ctx is
// done, for the same reason).
func (r *sumdbRemote) read(ctx context.Context, path string) ([]byte, error) {
	base, err := r.base(ctx)
	if err != nil {
		return nil, err
	}
	data, err := r.get(ctx, base.URL+path, base.Auth)
	if err == nil || !r.failOver(ctx, base, err) {
		return data, err
	}
	data, again := r.readAgain(ctx, path)
	if again != nil && misbehaving(err) && !misbehaving(again) && ctx.Err() == nil {
		return nil, err
	}
	return data, again
}

// readAgain is read's second try, through the source discovered anew.
func (r *sumdbRemote) readAgain(ctx context.Context, path string) ([]byte, error) {
	base, err := r.base(ctx)
	if err != nil {
		return nil, err
	}
	return r.get(ctx, base.URL+path, base.Auth)
}

// failOver reports whether err, src's failure to answer a read, calls for
// discovering the database again, and if so forgets src. GOPROXY passes
// over a source that fails when "|" follows it, and the go command
// discovers at each run; sumd runs for months, and must not keep a source
// that went down, failing every cross-check (or, failing open, recording
// unchecked) while the next one serves. A 404 or 410 is an answer, not a
// failure; ctx's end is no failure of src.
func (r *sumdbRemote) failOver(ctx context.Context, src Source, err error) bool {
	if r.url != "" || !src.FallBackOnError || isNotFound(err) || ctx.Err() != nil {
		return false
	}
	select {
	case r.lock <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-r.lock }()
	if r.found != nil && r.found.URL == src.URL {
		r.found = nil // another check may have found a new source already
		r.log.WarnContext(ctx, "cross-check: the upstream proxy serving the checksum database failed; looking for it again after \"|\"",
			"sumdb", r.name, "source", src.URL, "err", err)
	}
	return true
}

// get reads u within the timeout and the size limit.
func (r *sumdbRemote) get(ctx context.Context, u string, auth Auth) ([]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	body, _, err := r.client.get(rctx, u, auth)
	var data []byte
	if err == nil {
		data, err = io.ReadAll(io.LimitReader(body, maxRemoteBody+1))
		body.Close()
	}
	switch {
	case err == nil && len(data) > maxRemoteBody:
		return nil, fmt.Errorf("GET %s: %w: answer larger than %d bytes", u, errMisbehaving, maxRemoteBody)
	case err != nil && ctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("GET %s: %w (%s)", u, errRemoteTimeout, r.timeout)
	}
	return data, err
}

// base returns the database's base URL and the credentials for it.
func (r *sumdbRemote) base(ctx context.Context) (Source, error) {
	if r.url != "" {
		return Source{URL: r.url, Auth: r.auth}, nil
	}
	// A free lock is taken whatever ctx says, as the mutex was: select
	// picks at random among ready cases, and a check whose context ended
	// while it ran (a client gone during a commit) must still get the
	// answer a discovery already found. Only waiting stops with ctx.
	seen := r.failures.Load()
	select {
	case r.lock <- struct{}{}:
	default:
		select {
		case r.lock <- struct{}{}:
		case <-ctx.Done():
			return Source{}, ctx.Err()
		}
	}
	defer func() { <-r.lock }()
	if r.found != nil {
		return *r.found, nil
	}
	if r.failures.Load() != seen {
		// A discovery failed while this check waited for it: it is
		// this check's answer, as fresh as its own would be. Probing
		// again, each waiting check in its turn, would have the nth of
		// n checks wait n discoveries (a timeout per hanging source
		// each) with its fetch slot held, past the fetch's deadline
		// even under FailOpen, and send n probes to a source in
		// trouble.
		return Source{}, r.failure
	}
	src, err := r.discover(ctx)
	if err != nil {
		if ctx.Err() == nil {
			// Not remembered beyond the checks waiting now: the
			// next check probes again. One cut short by its caller's
			// going says nothing of the sources: they probe again.
			r.failure = err
			r.failures.Add(1)
		}
		return Source{}, err
	}
	r.found = &src
	return src, nil
}

// discover probes the proxies as the go command does (GOPROXY's rules,
// modfetch.TryProxies): the first whose /sumdb/<name>/supported answers
// 200 is used; 404 and 410 move on, and so does any other failure of a
// source followed by "|", while after "," it ends the probe. If none
// answers 200, a failure beats "not supported": an outage is not a
// configuration without the database. The last one is returned, as in
// the go command, unless an earlier one was no outage (misbehaving: a
// refusal of sumd's credentials, say), which must fail closed whatever
// the policy and whatever later sources do.
func (r *sumdbRemote) discover(ctx context.Context) (Source, error) {
	var failed error
	for _, src := range r.sources {
		base := src.URL + "/sumdb/" + r.name
		_, err := r.get(ctx, base+"/supported", src.Auth)
		switch {
		case err == nil:
			return Source{URL: base, Auth: src.Auth, FallBackOnError: src.FallBackOnError}, nil
		case isNotFound(err):
			continue
		}
		if failed == nil || !misbehaving(failed) {
			failed = fmt.Errorf("failed to probe %s for checksum database %s: %w", src.URL, r.name, err)
		}
		if !src.FallBackOnError || ctx.Err() != nil {
			break
		}
	}
	if failed != nil {
		return Source{}, failed
	}
	return Source{}, fmt.Errorf("%w (GET <proxy>/sumdb/%s/supported)", errNotSupported, r.name)
}
