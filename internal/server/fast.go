package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// ServeFast answers request c, whose target's path and raw path, parsed
// as net/http parses them (url.URL's Path and RawPath), are path and
// rawPath, on a read listener (package serve's
// -read-listen): a second listener on fasthttp, which costs about half of
// net/http's CPU per request (scripts/benchcompare measures both). It answers the protocol routes, /supported, /healthz and
// /version exactly as ServeHTTP answers them — status, headers and body,
// from the same route functions and the same cache (TestFastMatchesHTTP) —
// and every other path, the operator pages and /metrics included, with the
// 404 of a path the server does not know: they stay on the main listener.
// The ops are called with ctx, which the caller gives the values its
// request logs need; it is not cancelled when the client goes away, only
// when the caller cancels it (serve's read listener does once a shutdown
// has cut the connection).
//
// Answers are counted in the metrics and logged as ServeHTTP's are, but
// their duration ends before fasthttp sends the answer, which it does once
// ServeFast returns and tells no one of: timing the send would take a
// hijack (no keep-alive) or a wrapped body stream (no sendfile, an
// allocation per request). docs/operations.md says so.
func (s *Server) ServeFast(ctx context.Context, c *fasthttp.RequestCtx, path, rawPath string) {
	start := time.Now()
	label, status, err := s.dispatchFast(ctx, c, path, rawPath)
	d := time.Since(start)
	if s.metrics != nil {
		s.metrics.count(label, status, d)
	}
	s.logLine(ctx, label, status, fastBytes(c), err, d, func() (string, string, string) {
		return string(c.Method()), path, c.RemoteAddr().String()
	})
}

// fastBytes is the size of the answer's body, as the recorder counts it
// for ServeHTTP (net/http's Write reports a HEAD answer's body written
// too, though it sends none).
func fastBytes(c *fasthttp.RequestCtx) int64 {
	if c.Response.IsBodyStream() {
		// Sent from a memory file (sendfile.go): Body would read it all.
		return int64(c.Response.Header.ContentLength())
	}
	return int64(len(c.Response.Body()))
}

// dispatchFast is dispatch for ServeFast: it returns the route's metric
// label, the status answered and, for an error answer, the error to log.
func (s *Server) dispatchFast(ctx context.Context, c *fasthttp.RequestCtx, path, rawPath string) (string, int, error) {
	// path is a string of its own: route arguments become cache keys.
	rt, rp, err := s.answer(ctx, string(c.Method()), path, rawPath)
	if err == nil && rp == nil {
		// The operator pages and /metrics are the main listener's; here
		// they are unknown paths, as any the server does not know.
		rt.label, err = routeOther, errNotProxy
		if strings.HasPrefix(path, "/sumdb/") && !strings.HasPrefix(path, s.prefix) {
			err = s.wrongDatabaseError(path)
		}
	}
	if err != nil {
		return s.failFast(c, rt.label, err)
	}
	h := &c.Response.Header
	h.SetContentType(rp.ctype[0])
	h.Set("Cache-Control", rp.cache[0])
	h.Set("X-Content-Type-Options", hdrNosniff[0])
	if rp.tail == nil {
		if !s.sendFromFile(c, rp) {
			// Cached bodies are final (see reply): fasthttp only reads them.
			c.Response.SetBodyRaw(rp.body)
		}
	} else {
		c.Response.AppendBody(rp.body)
		c.Response.AppendBody(rp.tail)
	}
	if c.IsHead() {
		// fasthttp leaves out a Content-Length of 0 from a HEAD answer;
		// net/http's, and so ServeHTTP's, has it.
		h.SetContentLength(len(rp.body) + len(rp.tail))
	}
	release(rp) // the body is fasthttp's copy, or cached
	return rt.label, http.StatusOK, nil
}

// failFast is fail for ServeFast: it answers err, and returns label, the
// status and err for dispatchFast to return.
func (s *Server) failFast(c *fasthttp.RequestCtx, label string, err error) (string, int, error) {
	status, msg := classify(err)
	h := &c.Response.Header
	switch status { // as fail
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", "1")
	case http.StatusMethodNotAllowed:
		h.Set("Allow", "GET, HEAD")
	}
	h.SetContentType(textPlain)
	h.Set("Cache-Control", cacheNone)
	h.Set("X-Content-Type-Options", hdrNosniff[0])
	c.SetStatusCode(status)
	c.Response.SetBodyString(msg + "\n")
	return label, status, err
}
