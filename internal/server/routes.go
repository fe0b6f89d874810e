package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/tlog"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// Route labels for metrics and logs: a small fixed set, never raw paths.
const (
	routeLatest    = "latest"
	routeLookup    = "lookup"
	routeTile      = "tile"
	routeDataTile  = "data_tile"
	routeSupported = "supported"
	routeHealthz   = "healthz"
	routeMetrics   = "metrics"
	routePage      = "page"
	routeVersion   = "version"
	routeOther     = "other"
)

var allRoutes = []string{
	routeLatest, routeLookup, routeTile, routeDataTile,
	routeSupported, routeHealthz, routeMetrics, routePage, routeVersion, routeOther,
}

var errNotProxy = &httpError{http.StatusNotFound,
	"not found: this is a checksum database (GOSUMDB), not a module proxy"}

// latest serves the signed tree head.
func (s *Server) latest(ctx context.Context, _ string) (*reply, error) {
	signed, err := s.ops.Signed(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read signed tree head: %w", err)
	}
	return &reply{ctype: hdrTextPlain, cache: s.hdrShort, body: signed}, nil
}

// lookup serves /lookup/<escaped path>@<escaped version>: the record's id and
// text, then a signed tree head covering it, byte for byte as x/mod does. The
// record part of a found version is cached (it never changes); the signed
// tree head is read for every request, after the record.
func (s *Server) lookup(ctx context.Context, arg string) (*reply, error) {
	e, ok := s.cache.get(routeLookup, arg)
	if ok {
		s.metrics.cacheHit(routeLookup)
	} else {
		s.metrics.cacheMiss(routeLookup)
		m, err := ParseLookup(arg)
		if err != nil {
			return nil, err
		}
		id, err := s.ops.Lookup(ctx, m)
		if err != nil {
			return nil, notFound(fmt.Errorf("failed to look up %s@%s: %w", m.Path, m.Version, err), noRecord(s.name, m))
		}
		msg, err := s.record(ctx, id, m)
		if err != nil {
			return nil, err
		}
		e = s.cache.put(routeLookup, arg, id, &reply{ctype: hdrTextPlain, cache: s.hdrShort, body: msg})
	}
	signed, err := s.ops.Signed(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read signed tree head: %w", err)
	}
	if err := s.checkCovers(signed, e.id); err != nil {
		return nil, err
	}
	rp := replies.Get().(*reply)
	*rp = e.reply
	rp.tail = signed
	rp.pooled = true
	return rp, nil
}

// replies recycles the lookups' answers (the cached record with the head
// read for the request): the caller releases each once it is written.
var replies = sync.Pool{New: func() any { return new(reply) }}

// release returns rp to the pool if it came from there. Call it once rp is
// written: nothing may read it after.
func release(rp *reply) {
	if rp != nil && rp.pooled {
		*rp = reply{} // keeps no head alive
		replies.Put(rp)
	}
}

// noRecord is the message of a lookup of a version database name does not
// hold.
func noRecord(name string, m module.Version) string {
	return fmt.Sprintf("not found: %s@%s: no record in checksum database %s", m.Path, m.Version, name)
}

// WriteNoRecord answers a lookup of m exactly as a Server of database name
// answers one for a version it does not hold: status, headers and body. An
// access layer uses it to hide from a client the versions it may not see.
func WriteNoRecord(w http.ResponseWriter, name string, m module.Version) {
	write(w, http.StatusNotFound, textPlain, cacheNone, []byte(oneLine(noRecord(name, m))+"\n"))
}

// record reads and formats record id, which Lookup just said exists for m,
// so even fs.ErrNotExist is an internal error here.
func (s *Server) record(ctx context.Context, id int64, m module.Version) ([]byte, error) {
	records, err := s.ops.ReadRecords(ctx, id, 1)
	if err != nil {
		return nil, fmt.Errorf("failed to read record %d: %w", id, err)
	}
	if len(records) != 1 {
		return nil, fmt.Errorf("ReadRecords(%d, 1) returned %d records", id, len(records))
	}
	// The index named id for m: a record of another version means a
	// damaged or edited index. Reading the record proved it sound, not
	// that it is m's; one line compared per uncached lookup says that. (A
	// tlog.Log's Lookup checks it too, where it is logged and counted and
	// the store's cache can drop the entry; this is for any other ops.)
	if !isRecordOf(records[0], m) {
		line, _, _ := bytes.Cut(records[0], []byte("\n"))
		return nil, fmt.Errorf("the index names record %d for %s@%s, a record of %q: the database was damaged or changed behind sumd's back", id, m.Path, m.Version, line)
	}
	msg, err := tlog.FormatRecord(id, records[0])
	if err != nil {
		return nil, fmt.Errorf("failed to format record %d: %w", id, err)
	}
	return msg, nil
}

// isRecordOf reports whether text, a record, is m's: its first line is
// "<path> <version> h1:…".
func isRecordOf(text []byte, m module.Version) bool {
	// The first two fields of the first line, as the log indexes a record
	// (tlog's recordKey): a mirror's origin may separate them otherwise
	// than by one space.
	line, _, _ := bytes.Cut(text, []byte("\n"))
	f := bytes.Fields(line)
	return len(f) >= 2 && string(f[0]) == m.Path && string(f[1]) == m.Version
}

// ParseLookup parses the argument of a lookup, "<escaped path>@<escaped
// version>", the rest of the path after /lookup/. Like x/mod's server it
// accepts only exact versions, so a query such as @latest is an error (a
// 400 from the Server).
func ParseLookup(arg string) (module.Version, error) {
	escPath, escVers, ok := strings.Cut(arg, "@")
	if !ok {
		return module.Version{}, badRequest("invalid lookup %q: want /lookup/<module path>@<version>", arg)
	}
	path, err := module.UnescapePath(escPath)
	if err != nil {
		return module.Version{}, badRequest("invalid lookup: %v", err)
	}
	vers, err := module.UnescapeVersion(escVers)
	if err != nil {
		return module.Version{}, badRequest("invalid lookup: %v", err)
	}
	if err := checkVersion(vers); err != nil {
		return module.Version{}, badRequest("invalid lookup %s@%q: %v", path, vers, err)
	}
	if err := module.Check(path, vers); err != nil {
		return module.Version{}, badRequest("invalid lookup: %v", err)
	}
	return module.Version{Path: path, Version: vers}, nil
}

// checkVersion accepts exactly what the go command looks up: a canonical
// semantic version, prerelease or pseudo-version, optionally +incompatible.
func checkVersion(v string) error {
	if !semver.IsValid(v) {
		return errors.New("not a semantic version; lookups need an exact version such as v1.2.3, not a query")
	}
	build := semver.Build(v)
	if build != "" && build != "+incompatible" || semver.Canonical(v)+build != v {
		return errors.New("not a canonical version: want vMAJOR.MINOR.PATCH[-PRERELEASE][+incompatible]")
	}
	return nil
}

// checkCovers checks that the signed tree head covers record id. The ops
// contract promises it; checking is cheap and turns a broken promise into a
// logged 500 rather than a puzzling verification failure in every client.
// The size of the last head checked is remembered: heads change far less
// often than lookups arrive.
func (s *Server) checkCovers(signed []byte, id int64) error {
	h := s.head.Load()
	if h == nil || !bytes.Equal(h.signed, signed) {
		n, err := treeSize(signed)
		if err != nil {
			return err
		}
		h = &sizedHead{signed, n}
		s.head.Store(h)
	}
	if id < 0 || id >= h.n {
		return fmt.Errorf("record %d is not covered by the signed tree of size %d", id, h.n)
	}
	return nil
}

// A sizedHead is a signed tree head and the size of its tree.
type sizedHead struct {
	signed []byte // must not be modified
	n      int64
}

// treeSize returns the size of the tree a signed tree head signs. Its
// signatures are not checked, but a head with none, which Ops must never
// return, is refused rather than served.
func treeSize(signed []byte) (int64, error) {
	if !bytes.Contains(signed, []byte("\n\n")) {
		return 0, errors.New("signed tree head has no signature block")
	}
	tree, err := itlog.ParseHeadTree(signed)
	if err != nil {
		return 0, fmt.Errorf("failed to parse signed tree head: %w", err)
	}
	return tree.N, nil
}

// supported answers the go command's GOPROXY probe for this database: 200,
// or 404 while it holds no signed tree head (a mirror whose first sync has
// not finished). A 200 makes the go command send all of this database's
// traffic here for the rest of its run; a 404 lets it try the next proxy
// in GOPROXY instead of failing every lookup. Any other failure of Signed
// (a store's outage) still answers 200: the go command's error then names
// this server, rather than it silently going elsewhere for a passing fault.
func (s *Server) supported(ctx context.Context, _ string) (*reply, error) {
	if _, err := s.ops.Signed(ctx); errors.Is(err, fs.ErrNotExist) {
		return nil, &httpError{http.StatusNotFound, "not supported here yet: " + err.Error()}
	}
	return &reply{ctype: hdrTextPlain, cache: s.hdrShort, body: nil}, nil
}

// healthz reports whether the database can serve: 503 if it cannot, else
// 200, "ok" or "degraded: " and what is wrong beside serving. Degraded is
// not a 503: load balancers and Kubernetes readiness probes would take the
// server out of rotation for something that does not stop it serving
// lookups, and with a single server that is an outage.
func (s *Server) healthz(ctx context.Context, _ string) (*reply, error) {
	if s.ready != nil {
		if err := s.ready(ctx); err != nil {
			return nil, &httpError{http.StatusServiceUnavailable, "not ready: " + err.Error()}
		}
	}
	if s.degraded != nil {
		if problems := s.degraded(ctx); len(problems) > 0 {
			return &reply{ctype: hdrTextPlain, cache: hdrNone, body: []byte(oneLine("degraded: "+strings.Join(problems, "; ")) + "\n")}, nil
		}
	}
	return &reply{ctype: hdrTextPlain, cache: hdrNone, body: []byte("ok\n")}, nil
}

// versionText serves the server's version, one line, for operators and
// monitoring (the same value as sumd_build_info's version label).
func (s *Server) versionText(context.Context, string) (*reply, error) {
	return &reply{ctype: hdrTextPlain, cache: hdrNone, body: []byte(s.version + "\n")}, nil
}

// notProxy answers every unknown path, module-proxy paths included: the 404
// lets a go command with sumd first in GOPROXY fall through to the next proxy.
func (s *Server) notProxy(w *recorder, _ *http.Request) {
	s.fail(w, errNotProxy)
}

// wrongDatabase answers /sumdb/<other>/…: a 404, so that a go command looking
// for another database through GOPROXY moves on to the next proxy.
func (s *Server) wrongDatabase(w *recorder, r *http.Request) {
	s.fail(w, s.wrongDatabaseError(r.URL.Path))
}

// wrongDatabaseError is the error wrongDatabase answers for path.
func (s *Server) wrongDatabaseError(path string) error {
	other := foreignName(path)
	if other == s.name { // "/sumdb/<name>" with no route after it
		return errNotProxy
	}
	return &httpError{http.StatusNotFound,
		fmt.Sprintf("not found: this checksum database is %s, not %q", s.name, other)}
}

// foreignName extracts <name> from /sumdb/<name>/<route>. Names may contain
// slashes, so it cuts before the first known route.
func foreignName(path string) string {
	rest := strings.TrimPrefix(path, "/sumdb/")
	end := len(rest)
	for _, route := range []string{"/supported", "/latest", "/lookup/", "/tile/"} {
		if i := strings.Index(rest, route); i >= 0 && i < end {
			end = i
		}
	}
	return strings.TrimSuffix(rest[:end], "/")
}

// notFound turns an ops error wrapping fs.ErrNotExist into a 404 with msg,
// unless the error names its own status.
func notFound(err error, msg string) error {
	var hs interface{ HTTPStatus() int }
	if errors.Is(err, fs.ErrNotExist) && !errors.As(err, &hs) {
		return &httpError{http.StatusNotFound, msg}
	}
	return err
}

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}
