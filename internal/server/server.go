// Package server is the HTTP face of a sumd checksum database: it speaks the
// GOSUMDB protocol of golang.org/x/mod/sumdb (/latest, /lookup/…, /tile/…) in
// front of a [sumdb.ServerOps], the same small interface x/mod's own server
// uses, but with errors a user can act on, caching headers, request logs and
// metrics.
//
// # Two roots
//
// Every protocol route is served at the root (for GOSUMDB="<name>+<key> <URL>")
// and again under /sumdb/<name>/. The second root lets sumd be listed in
// GOPROXY: without an explicit URL the go command probes each proxy for
// <proxy>/sumdb/<name>/supported and, on a 200, sends all checksum traffic to
// <proxy>/sumdb/<name>/…. For the same reason every path this server does not
// know, module-proxy paths such as /example.com/m/@v/list included, gets a 404:
// when sumd comes first in GOPROXY, that 404 makes the go command fall through
// to the next proxy. A /sumdb/<other>/ prefix gets a 404 too, so that a go
// command configured for another database skips sumd.
//
// # The ops contract
//
// The handler validates every request before it reaches the ops; in particular
// ops only ever see tiles of height 8 whose records all have indexes below 2⁶²,
// and module versions that pass [golang.org/x/mod/module.Check] and are
// canonical. Ops are called concurrently by many requests, each with its
// request's context. They must:
//
//   - Signed: return the latest signed tree head note. Every record Lookup can
//     return must already be covered by a tree head Signed returns, because a
//     lookup answer pairs the record with the note read after it; the handler
//     answers 500 rather than serve a note that does not cover the record.
//   - Lookup: return the record id of module@version, or an error wrapping
//     [io/fs.ErrNotExist] (tested with errors.Is, so wrapping is fine) when the
//     database has no record for it.
//   - ReadRecords: return the records id … id+n-1 exactly as stored (two go.sum
//     lines each), or an error wrapping fs.ErrNotExist when any id lies beyond
//     the tree.
//   - ReadTileData: return the bytes of hash tile t (exactly t.W×32 bytes), or an
//     error wrapping fs.ErrNotExist when the tile does not exist, e.g. a partial
//     tile wider than the current tree. Every width that ever existed must stay
//     servable: clients ask again for partial tiles of old tree sizes. Tiles
//     past the signed tree may be served; their bytes are final anyway.
//
// The handler keeps what ReadRecords and ReadTileData return for full tiles
// and found records (see below): ops must not modify it afterwards.
//
// Any op error that implements interface{ HTTPStatus() int } with a 4xx or 5xx
// status is answered with that status and the error text as the body; producers
// use [StatusError] for that (an upstream proxy reports 410, 502 or 504 this
// way). Other errors are 500 "internal error", with the detail logged only.
//
// # Caching
//
// Full tiles never change, so they are cacheable for a year and marked
// immutable. /latest, lookups, partial tiles and /supported are "public,
// max-age=5": a lookup embeds the current tree head, and a CDN or caching proxy
// in front must not hold a stale head for long (users notice minutes-old heads).
// The bytes of a partial tile are final too, but a client only needs one while
// the tile is at the edge of the tree, so there is nothing to gain from pinning
// it. Errors and /healthz are "no-store", so a 404 for a record or tile that
// appears a second later is never cached.
//
// Behind an access layer that asks every client for credentials
// (Options.Private), "public" becomes "private": RFC 9111 lets a shared
// cache (a CDN, Artifactory, nginx's proxy_cache) store an answer to a
// request with credentials and serve it to anyone when the answer says
// "public", and a limited reader's lookup or an anonymous client would then
// get what only a reader may see.
//
// In memory, the server keeps the answers that never change ready to write,
// headers included: full tiles, and the record part of the lookups of
// recorded versions (the signed tree head that ends a lookup is read for
// each request, after the record). Both are bounded together by
// Options.CacheBytes and evicted least-recently-used first (CLOCK). Partial
// tiles, /latest and versions not found are read from the ops every time.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/tlog"
)

const (
	// maxPathLen caps the URL path; real lookups and tiles are far shorter.
	maxPathLen = 1024
	// maxBodyBytes caps request bodies; no route takes one.
	maxBodyBytes = 1 << 10
)

// Cache-Control values; see the package doc for why.
const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheShort     = "public, max-age=5"
	cacheNone      = "no-store"

	// The same, for Options.Private.
	cacheImmutablePrivate = "private, max-age=31536000, immutable"
	cacheShortPrivate     = "private, max-age=5"
)

const (
	textPlain   = "text/plain; charset=utf-8"
	octetStream = "application/octet-stream"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Logger receives one record per request; nil means slog.Default().
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is served at /metrics;
	// nil means no metrics and no /metrics route.
	Registry *prometheus.Registry
	// MetricsElsewhere keeps /metrics off this handler (a 404) although
	// Registry is set: the server serves it on a listener of its own.
	MetricsElsewhere bool
	// Ready reports whether the database can serve; /healthz answers 503
	// with the error text while it returns an error. nil means always ready.
	Ready func(ctx context.Context) error
	// Degraded, if set, lists what is wrong beside serving (a TUF timestamp
	// about to expire, a failing sync): /healthz then answers 200
	// "degraded: <problems>". /healthz needs no credential: ctx is the
	// request's, whose principal (internal/access) says what its client
	// may be told.
	Degraded func(ctx context.Context) []string
	// Pages are operator pages served at the root beside the protocol, by
	// exact path ("/", "/status"): GET and HEAD only, with the request log,
	// the metrics (route "page") and the body cap of every route. A path of
	// the form of a module proxy request (/<module>/@v/...) must not be one,
	// so that the go command falls through to its next proxy.
	Pages map[string]http.Handler
	// Mounts are handlers served at the root below a path prefix of the
	// form "/<name>/" ("/tuf/": a TUF repository), with the request log,
	// the metrics (route <name>, which no other route may be called) and
	// the body cap of every route: GET and HEAD only, as Pages. Like the
	// pages, they are not served by ServeFast.
	Mounts map[string]http.Handler
	// Version is the server's version, served at /version; "" means no
	// /version route.
	Version string
	// Private says that every client sends credentials (an access layer in
	// front asks for them): answers are then Cache-Control "private", which
	// shared caches do not keep (see Caching above).
	Private bool
	// CacheBytes bounds the memory holding answers that never change, full
	// tiles and found records, ready to serve (see cache): 0 means
	// DefaultCacheBytes, a negative value no cache.
	CacheBytes int64
}

// A Server serves checksum database name over HTTP. It is safe for
// concurrent use.
type Server struct {
	name     string
	prefix   string // "/sumdb/<name>/": the GOPROXY root
	ops      sumdb.ServerOps
	log      *slog.Logger
	ready    func(context.Context) error
	degraded func(context.Context) []string
	pages    map[string]http.Handler
	mounts   []mount // Options.Mounts
	// Cache-Control of immutable and short-lived answers: shared values
	// (hdrImmutable, hdrShort or their private forms), never modified.
	hdrImmutable, hdrShort []string
	version                string
	metrics                *metrics                  // nil without Options.Registry
	scrape                 bool                      // serve /metrics
	cache                  *cache                    // nil: no cache
	files                  *bodyFiles                // copies of large cached bodies for sendfile; nil: none
	head                   atomic.Pointer[sizedHead] // the last signed tree head a lookup checked
}

// New returns the handler for checksum database name (the name in GOSUMDB,
// such as sum.example.com), serving ops. It registers its metrics on
// opts.Registry; a second Server on the same registry shares them.
func New(name string, ops sumdb.ServerOps, opts Options) *Server {
	s := &Server{
		name:     name,
		prefix:   "/sumdb/" + name + "/",
		ops:      ops,
		log:      opts.Logger,
		ready:    opts.Ready,
		degraded: opts.Degraded,
		pages:    opts.Pages,
		mounts:   mounts(opts.Mounts),
		version:  opts.Version,
		metrics:  newMetrics(opts.Registry),
		scrape:   opts.Registry != nil && !opts.MetricsElsewhere,

		hdrImmutable: hdrImmutable,
		hdrShort:     hdrShort,
	}
	if opts.Private {
		s.hdrImmutable, s.hdrShort = hdrImmutablePrivate, hdrShortPrivate
	}
	for _, m := range s.mounts {
		s.metrics.addRoute(m.label)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	cacheBytes := opts.CacheBytes
	if cacheBytes == 0 {
		cacheBytes = DefaultCacheBytes
	}
	s.cache = newCache(cacheBytes)
	if s.cache != nil {
		s.files = newBodyFiles(cacheBytes, s.log)
		if s.files != nil {
			// A Server has no Close: its memory files close with it.
			runtime.AddCleanup(s, (*bodyFiles).retire, s.files)
		}
	}
	s.metrics.watchCache(s.cache, s.files, name)
	return s
}

var _ http.Handler = (*Server)(nil)

// recorders recycles the per-request recorders: a cached full tile
// allocates nothing of ours beyond what net/http does (nor does a cached
// lookup: its answer, the record and the signed head, comes from the
// replies pool).
var recorders = sync.Pool{New: func() any { return new(recorder) }}

// ServeHTTP runs one request and records it in the log and the metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Body != nil && r.Body != http.NoBody {
		// No route takes a body. http.MaxBytesHandler would copy every
		// request to cap one; only requests that carry one pay for it.
		r2 := *r
		r2.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		r = &r2
	}
	rec := recorders.Get().(*recorder)
	*rec = recorder{ResponseWriter: w}
	label := s.dispatch(rec, r)
	s.observe(r, rec, label, time.Since(start))
	*rec = recorder{}
	recorders.Put(rec)
}

// dispatch checks the request's size and method, then runs its route and
// returns the route's metric label.
func (s *Server) dispatch(w *recorder, r *http.Request) string {
	rt, rp, err := s.answer(r.Context(), r.Method, r.URL.Path, r.URL.RawPath)
	switch {
	case err != nil:
		s.fail(w, err)
	case rp != nil:
		writeReply(w, rp)
		release(rp)
	case rt.page != nil:
		rt.page.ServeHTTP(w, r)
	default:
		rt.raw(w, r)
	}
	return rt.label
}

// answer is what ServeHTTP and ServeFast share: it checks a request's size
// and method and runs its route. It returns the route and, for a protocol
// route or a refused request, the reply or the error to answer; with
// neither, the route is a page or a raw handler, which the caller runs.
func (s *Server) answer(ctx context.Context, method, path, rawPath string) (route, *reply, error) {
	if len(path) > maxPathLen || len(rawPath) > maxPathLen {
		return route{label: routeOther}, nil, &httpError{http.StatusRequestURITooLong, "request path longer than 1024 bytes"}
	}
	rt := s.resolve(path)
	if method != http.MethodGet && method != http.MethodHead {
		return rt, nil, &httpError{http.StatusMethodNotAllowed, "method " + oneLine(method) + " not allowed: use GET or HEAD"}
	}
	if rt.fn == nil {
		return rt, nil, nil
	}
	rp, err := rt.fn(s, ctx, rt.arg)
	return rt, rp, err
}

// A route is what resolve found for a path: a handlerFunc and its
// argument, an http.Handler, or a function of the recorder.
type route struct {
	label string
	fn    handlerFunc
	arg   string
	page  http.Handler
	raw   func(*recorder, *http.Request)
}

// resolve maps a URL path to its route. The protocol routes exist at both
// roots; /supported only under /sumdb/<name>/, and the operator routes
// /healthz, /metrics and /version only at the root.
func (s *Server) resolve(path string) route {
	rest, under := strings.CutPrefix(path, s.prefix)
	if under {
		rest = path[len(s.prefix)-1:] // keep the "/" before rest
	} else if strings.HasPrefix(path, "/sumdb/") {
		return route{label: routeOther, raw: s.wrongDatabase}
	}
	switch {
	case rest == "/latest":
		return route{label: routeLatest, fn: (*Server).latest}
	case strings.HasPrefix(rest, "/lookup/"):
		return route{label: routeLookup, fn: (*Server).lookup, arg: rest[len("/lookup/"):]}
	case strings.HasPrefix(rest, "/tile/"):
		return route{label: tileRoute(rest), fn: (*Server).tile, arg: rest[1:]}
	case under && rest == "/supported":
		return route{label: routeSupported, fn: (*Server).supported}
	case !under && rest == "/healthz":
		return route{label: routeHealthz, fn: (*Server).healthz}
	case !under && rest == "/version" && s.version != "":
		return route{label: routeVersion, fn: (*Server).versionText}
	case !under && rest == "/metrics" && s.scrape:
		return route{label: routeMetrics, page: s.metrics.handler}
	case !under && s.pages[rest] != nil:
		return route{label: routePage, page: s.pages[rest]}
	}
	for _, m := range s.mounts {
		if !under && strings.HasPrefix(rest, m.prefix) {
			return route{label: m.label, page: m.h}
		}
	}
	return route{label: routeOther, raw: s.notProxy}
}

// A mount is a handler of Options.Mounts.
type mount struct {
	prefix string // "/<label>/"
	label  string
	h      http.Handler
}

// mounts checks Options.Mounts: a prefix of another form, or whose label
// is another route's, is a programming error.
func mounts(hs map[string]http.Handler) []mount {
	var ms []mount
	for prefix, h := range hs {
		label := strings.Trim(prefix, "/")
		if prefix != "/"+label+"/" || label == "" || strings.Contains(label, "/") || label == "sumdb" || slices.Contains(allRoutes, label) {
			panic(fmt.Sprintf("server: mount %q: want a prefix /<name>/ whose name is no route's", prefix))
		}
		ms = append(ms, mount{prefix: prefix, label: label, h: h})
	}
	return ms
}

// A reply is a successful response. Its header values may be shared
// between replies and must not be modified.
type reply struct {
	ctype  []string // Content-Type
	cache  []string // Cache-Control
	length []string // Content-Length of body if precomputed (cached), else nil
	body   []byte
	tail   []byte    // written after body (a lookup's signed tree head), or nil
	file   *fileSlot // where a cached body of sendfileMin bytes or more is copied for sendfile, else nil
	pooled bool      // from the replies pool: release it once written
}

// A handlerFunc serves one route; arg is the rest of the path after the
// route's prefix. Errors are turned into responses by [Server.fail]. It is
// a method expression, not a method value, which would be allocated for
// every request.
type handlerFunc func(s *Server, ctx context.Context, arg string) (*reply, error)

// write sends a complete response. The explicit Content-Length makes HEAD
// answers match GET ones.
func write(w http.ResponseWriter, status int, ctype, cache string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", cache)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}

// fail sends err as a one-line text/plain error and keeps err for the request
// log. Errors that are neither an httpError nor carry an HTTP status are
// internal: the client sees only "internal error", or for data damaged in
// the database (tlog.ErrCorrupt) sumdbclient.DamagedText; the log sees the
// detail.
func (s *Server) fail(w *recorder, err error) {
	status, msg := classify(err)
	w.err = err
	switch status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1") // a full sequencer queue drains in well under a second
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", "GET, HEAD")
	}
	write(w, status, textPlain, cacheNone, []byte(msg+"\n"))
}

// classify returns the status and client-safe message for err.
func classify(err error) (int, string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, oneLine(he.msg)
	}
	var hs interface {
		error
		HTTPStatus() int
	}
	if errors.As(err, &hs) {
		if st := hs.HTTPStatus(); st >= 400 && st <= 599 {
			return st, oneLine(hs.Error())
		}
	}
	if errors.Is(err, tlog.ErrCorrupt) {
		// Damage is a finding an auditor must tell from an outage (sumd
		// verify -full), in a fixed text: the error names ids and paths.
		return http.StatusInternalServerError, sumdbclient.DamagedText
	}
	return http.StatusInternalServerError, "internal error"
}

// httpError is an error response whose message is safe to show to clients.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// StatusError is an error that tells the Server which HTTP status to answer
// with. Producers of [sumdb.ServerOps] errors use it for failures that are
// not "not found", such as an upstream proxy's 410, 502 or 504. Its Error
// text is shown to the go command's user as is, so make it one useful line.
type StatusError struct {
	Status int   // an HTTP status, 400–599
	Err    error // the reason, shown to the client
}

var _ interface {
	error
	HTTPStatus() int
} = (*StatusError)(nil)

func (e *StatusError) Error() string {
	if e.Err == nil {
		return http.StatusText(e.Status)
	}
	return e.Err.Error()
}

func (e *StatusError) Unwrap() error   { return e.Err }
func (e *StatusError) HTTPStatus() int { return e.Status }

// OneLine makes s safe for a one-line log value or text/plain error: see
// oneLine.
func OneLine(s string) string { return oneLine(s) }

// oneLine makes s safe for a one-line text/plain error body: control
// characters become spaces, and long messages are cut well inside the ~650
// bytes the go command shows, between two characters: a cut through one
// would show as U+FFFD.
func oneLine(s string) string {
	const max = 500
	if len(s) > max {
		n := max
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
