package serve

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	pathpkg "path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/sumd-project/sumd/internal/access"
)

// The read listener (-read-listen) serves only what the go command reads:
// the checksum database protocol of the own log and of every mirror, and
// /healthz for load balancers. It is a second listener on fasthttp rather
// than net/http: on the same two cores, with the load generator beside
// it, net/http spends about 10 µs of CPU on the bare request and answer,
// fasthttp about 5, and nginx serves a file in about 8. The main listener
// keeps everything else (the status, /admin/, /tuf/, /metrics) on
// net/http, with HTTP/2 and the access layer in front.
//
// To every well-formed request the answers are the main listener's, byte
// for byte but the Date (server.Server.ServeFast, from the same route
// functions and caches; a path not in clean form gets the main listener's
// redirect), and for HTTP/1.0 the status line's version and Connection
// header (fasthttp answers HTTP/1.1, as RFC 9110 allows). Malformed HTTP
// is refused in fasthttp's words, not net/http's, and some of it
// otherwise (docs/operations.md lists what differs).
// There is no access layer on it: Run refuses it on a server that asks
// clients for credentials, whose anonymous clients may read nothing;
// without credentials anyone reads every route it serves anyway. It
// answers 421 to a host -allowed-hosts does not name, and 403 to a request
// a browser marks as another site's, as the layer does.
// HTTP/1.1 only, with TLS if the server has it.

// readSurface is the handler of a read listener.
type readSurface struct {
	layer *access.Layer
	dbs   *databases // shared with the main listener
}

// serve answers c. The routes' context is ctx, which the listener
// cancels when it cuts the connections a drain left (see shutdown), as
// net/http cancels a request's when its connection closes: a request
// still running then stops what it waits for (a store, an upstream fetch)
// instead of going on past the close of the log.
//
// The checks run in the main listener's order: the framing and the
// parsing of the target (net/http refuses them before any handler), the
// target's form (refuseOddTargets), then the host and a browser's word
// that another site sent it (the access layer), then a path not in clean
// form (the ServeMux behind the layer), so that both answer a request
// alike.
func (rs *readSurface) serve(ctx context.Context, c *fasthttp.RequestCtx) {
	if badTransferEncoding(c.Request.Header.RawHeaders()) {
		// RFC 9112 §6.3: without chunked last, the body's length is not
		// known; fasthttp goes by Content-Length (and hides the header), a
		// proxy in front perhaps otherwise: request smuggling. 501, as
		// net/http answers on the main listener (RFC 9112 §6.1: a
		// transfer coding the server does not understand).
		c.SetConnectionClose()
		fastText(c, http.StatusNotImplemented, textBadTransferEncoding)
		return
	}
	if fastOddTarget(c) {
		return
	}
	path, rawPath, clean, ok := rs.target(c)
	if !ok {
		return
	}
	if rs.layer.Misdirected(string(c.Host())) {
		c.Response.Header.Set("Cache-Control", "no-store")
		fastText(c, http.StatusMisdirectedRequest, access.MisdirectedText)
		return
	}
	if h := &c.Request.Header; len(h.Peek("Sec-Fetch-Site")) > 0 &&
		rs.layer.CrossSite(string(h.Peek("Sec-Fetch-Site")), string(h.Peek("Sec-Fetch-Mode")), string(h.Peek("Sec-Fetch-Dest")), string(c.Method())) {
		rs.refuseCrossSite(c)
		return
	}
	if clean != nil {
		redirect(http.RedirectHandler(clean.String(), http.StatusTemporaryRedirect))(c)
		return
	}
	rs.dbs.pick(path).ServeFast(access.AnonymousAt(ctx, c.RemoteAddr()), c, path, rawPath)
}

// refuseCrossSite answers a request the layer's CrossSite refused (and
// counted), and logs the refusal in the words the layer logs it on the
// main listener: an operator searching the log for "access denied" finds
// a page that probes sumd through either listener.
func (rs *readSurface) refuseCrossSite(c *fasthttp.RequestCtx) {
	rs.layer.LogCrossSite(context.Background(), requestPath(c.Request.Header.RequestURI()), c.RemoteAddr().String())
	c.Response.Header.Set("Cache-Control", "no-store")
	fastText(c, http.StatusForbidden, access.CrossSiteText)
}

// requestPath is the path of request target uri as net/http parses it,
// for a log line: uri itself if net/http would refuse it (the main
// listener answers such a request 400 before any handler sees it).
func requestPath(uri []byte) string {
	if path, _, ok := plainTarget(uri); ok {
		return path
	}
	if u, err := url.ParseRequestURI(string(uri)); err == nil {
		return u.Path
	}
	return string(uri)
}

// target parses the request target as net/http does
// (url.ParseRequestURI), so that the routes see the path the main
// listener's handlers see rather than fasthttp's, which is decoded and
// cleaned, fragment cut. It returns the parsed URL's Path and RawPath,
// and for a path not in clean form ("//latest", "/tile/8/0/../0/000") the
// URL of the 307 to the clean one that the main listener's ServeMux
// answers, built by the same code (so even its escaping of an escaped
// path, golang/go#79897, is the same). A target net/http refuses gets its
// 400 and the connection closed, as net/http answers it before any
// handler, and target returns false.
func (rs *readSurface) target(c *fasthttp.RequestCtx) (path, rawPath string, clean *url.URL, ok bool) {
	uri := c.Request.Header.RequestURI()
	if path, rawPath, ok := plainTarget(uri); ok {
		return path, rawPath, nil, true
	}
	u, err := url.ParseRequestURI(string(uri))
	if err != nil {
		c.SetConnectionClose()
		fastText(c, http.StatusBadRequest, "bad request: malformed request target\n")
		return "", "", nil, false
	}
	escaped := u.EscapedPath()
	if cp := cleanPath(escaped); cp != escaped {
		return u.Path, u.RawPath, &url.URL{Path: cp, RawQuery: u.RawQuery}, true
	}
	return u.Path, u.RawPath, nil, true
}

// plainTarget returns what url.ParseRequestURI makes of the targets the go
// command sends — a path in clean form with no query, no percent-escapes
// and only characters a path may hold as they are — without building a
// URL: the Path and RawPath url.URL would hold. Any other target is
// parsed by url.ParseRequestURI (FuzzPlainTarget holds the two to the same
// answers).
func plainTarget(uri []byte) (path, rawPath string, ok bool) {
	if len(uri) == 0 || uri[0] != '/' {
		return "", "", false
	}
	escapes := false // a character url.URL.EscapedPath escapes
	for _, c := range uri {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-_.~/@+,:;=$&", c) >= 0:
		case c == '!': // the go command's escape of a capital letter
			escapes = true
		default:
			return "", "", false
		}
	}
	path = string(uri)
	if cleanPath(path) != path {
		return "", "", false
	}
	if escapes {
		// net/url keeps the path as sent, which it would have escaped.
		return path, path, true
	}
	return path, "", true
}

// redirect serves net/http's redirect handler h on fasthttp, so that the
// answer is net/http's own.
func redirect(h http.Handler) fasthttp.RequestHandler { return fasthttpadaptor.NewFastHTTPHandler(h) }

// cleanPath is net/http's ServeMux's: path.Clean, keeping a trailing
// slash, with a leading one.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := pathpkg.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		if len(p) == len(np)+1 && strings.HasPrefix(p, np) {
			np = p
		} else {
			np += "/"
		}
	}
	return np
}

// textBadTransferEncoding answers a Transfer-Encoding other than chunked.
const textBadTransferEncoding = "not implemented: unsupported Transfer-Encoding\n"

// badTransferEncoding reports whether raw request headers name a
// Transfer-Encoding other than chunked alone.
func badTransferEncoding(raw []byte) bool {
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\n"))
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Transfer-Encoding")) && !bytes.EqualFold(bytes.TrimSpace(v), []byte("chunked")) {
			return true
		}
	}
	return false
}

// fastText answers a one-line text/plain error.
func fastText(c *fasthttp.RequestCtx, status int, msg string) {
	c.Response.Header.SetContentType("text/plain; charset=utf-8")
	c.Response.Header.Set("X-Content-Type-Options", "nosniff")
	c.SetStatusCode(status)
	c.Response.SetBodyString(msg)
}

// fastRequestError answers a request fasthttp could not read, as
// net/http answers one: 431 for headers over the limit, 408 for a client
// too slow to send them, 400 otherwise; never echoing the request.
func fastRequestError(c *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.As(err, &small):
		fastText(c, http.StatusRequestHeaderFieldsTooLarge, "request headers too large\n")
	case errors.As(err, &ne) && ne.Timeout():
		fastText(c, http.StatusRequestTimeout, "request timeout: the request was not sent in time\n")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		fastText(c, http.StatusRequestEntityTooLarge, "request body too large: no route of this listener takes one\n")
	case errors.Is(err, fasthttp.ErrUnsupportedTransferEncoding):
		// fasthttp's own refusal (a coding neither chunked nor identity,
		// two Transfer-Encoding fields): as serve's check answers, and
		// net/http on the main listener. It closes the connection.
		fastText(c, http.StatusNotImplemented, textBadTransferEncoding)
	default:
		fastText(c, http.StatusBadRequest, "bad request: malformed HTTP/1.1 request\n")
	}
}

// listenRead prepares the read listener of rs on ln.
func listenRead(cfg Config, ln net.Listener, rs *readSurface) *listener {
	url := publicURL(ln.Addr(), cfg.TLS != nil)
	conns := &connSet{conns: map[net.Conn]fasthttp.ConnState{}}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, listenerTLS(cfg, "http/1.1")) // fasthttp speaks no HTTP/2
	}
	limit := newConnLimit(cfg.MaxConnections, cfg.Logger)
	ln = &readSocket{Listener: &limitListener{Listener: ln, limit: limit}, log: cfg.Logger}
	ctx, cancel := context.WithCancel(context.Background())
	return &listener{
		ln:     ln,
		url:    url,
		conns:  conns,
		cancel: cancel,
		fast: &fasthttp.Server{
			Handler:      func(c *fasthttp.RequestCtx) { rs.serve(ctx, c) },
			ErrorHandler: fastRequestError,
			ConnState: func(c net.Conn, state fasthttp.ConnState) {
				limit.fastState(c, state)
				conns.track(c, state)
			},
			// The limit waits before fasthttp's own would answer 503
			// (text/plain, and the connection closed), which is only a
			// backstop: a worker is freed just after its connection's
			// StateClosed, so a connection admitted then may meet it.
			Concurrency: limit.max,
			// As the main listener: 10 s for the request (no route
			// takes a body, so that is its headers), 16 KiB of headers,
			// RequestTimeout to write the answer, idleTimeout idle.
			ReadTimeout:                  readTimeout,
			WriteTimeout:                 cfg.RequestTimeout,
			IdleTimeout:                  idleTimeout,
			ReadBufferSize:               16 << 10,
			MaxRequestBodySize:           1 << 10,
			NoDefaultServerHeader:        true,
			NoDefaultContentType:         true,
			DisablePreParseMultipartForm: true,
			CloseOnShutdown:              true,
			SecureErrorLogMessage:        true,
			Logger:                       fastLogger{cfg.Logger},
		},
	}
}

// readTimeout is how long a client has to send its request, headers and
// body, on every listener. Tests shorten it.
var readTimeout = 10 * time.Second

// idleTimeout is how long every listener keeps a keep-alive connection
// after its last answer: above the 60 s that load balancers keep an idle
// connection to a backend by default (AWS ALB; nginx's upstream
// keepalive_timeout), so that the balancer closes it and never sends a
// request on one sumd is closing (a 502); the go command reuses a
// connection within seconds anyway. It was 120 s: idle clients held twice
// the memory and descriptors. Tests shorten it.
var idleTimeout = 65 * time.Second

// fastLogger takes fasthttp's log lines: failures to serve one connection
// at Debug, since any anonymous client can cause one with a malformed
// request (net/http does not log those at all), the rest (the connection
// limit reached, accept failures) at Warn.
type fastLogger struct{ l *slog.Logger }

func (f fastLogger) Printf(format string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "error when serving connection") {
		level = slog.LevelDebug
	}
	f.l.Log(context.Background(), level, "read listener", "err", msg)
}

// A readSocket is the read listener's socket as fasthttp sees it. It
// mends two ways fasthttp's Serve differs from net/http's:
//
//   - Close is idempotent and ends Serve whenever it is called. fasthttp's
//     Shutdown does nothing before Serve has started (nor stops a Serve
//     started after it), so a stop arriving then left Run waiting for ever
//     with the listener serving; the shutdown closes the socket first.
//   - A temporary Accept error (out of file descriptors, buffers or
//     memory) is retried after a pause, as net/http does, instead of
//     ending Serve, which stopped the whole server.
type readSocket struct {
	net.Listener
	log    *slog.Logger
	once   sync.Once
	closed atomic.Bool
	done   chan struct{} // closed by Close; nil until Accept pauses
	mu     sync.Mutex    // guards done
}

// closing returns a channel closed once Close is called.
func (s *readSocket) closing() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = make(chan struct{})
		if s.closed.Load() {
			close(s.done)
		}
	}
	return s.done
}

func (s *readSocket) Accept() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := s.Listener.Accept()
		if err == nil || s.closed.Load() || !temporary(err) {
			if err != nil && s.closed.Load() {
				err = net.ErrClosed // fasthttp's Serve returns nil on it
			}
			return c, err
		}
		pause = min(max(2*pause, 5*time.Millisecond), time.Second)
		s.log.Warn("read listener: failed to accept a connection; retrying", "err", err, "pause", pause)
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-s.closing(): // a stop does not wait out the pause
			t.Stop()
		}
	}
}

// temporary reports whether an Accept error is one net/http's Serve
// retries: the process or system out of descriptors, buffers or memory.
func temporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *readSocket) Close() error {
	err := net.ErrClosed
	s.once.Do(func() {
		s.closed.Store(true)
		s.mu.Lock()
		if s.done != nil {
			close(s.done)
		}
		s.mu.Unlock()
		err = s.Listener.Close()
	})
	if errors.Is(err, net.ErrClosed) {
		return nil // closed already: by the shutdown, or Serve's end
	}
	return err
}

// A connSet keeps the connections of a fasthttp server until they close,
// so that a shutdown whose drain times out can cut them (fasthttp's
// Shutdown only waits). It learns of them through the server's ConnState
// hook, not by wrapping them: fasthttp writes a large answer's headers and
// body with one writev only to a *net.TCPConn (a fifth of a data tile's
// CPU on this machine).
type connSet struct {
	mu       sync.Mutex
	conns    map[net.Conn]fasthttp.ConnState
	closed   bool // cut: close every connection
	stopping bool // cutFresh: close connections that have not begun a request
}

func (s *connSet) track(c net.Conn, state fasthttp.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case state == fasthttp.StateNew && (s.closed || s.stopping):
		c.Close()
	case state == fasthttp.StateClosed || state == fasthttp.StateHijacked:
		delete(s.conns, c)
	default:
		s.conns[c] = state
	}
}

// cutFresh closes the connections that have not begun a request (a probe,
// a preconnect, a client that sent nothing yet), and those that arrive
// after: a drain would otherwise wait for them for seconds and report a
// request cut where there was none.
func (s *connSet) cutFresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	for c, state := range s.conns {
		if state == fasthttp.StateNew {
			c.Close()
			delete(s.conns, c)
		}
	}
}

// cut closes every connection still open, and those that arrive after.
func (s *connSet) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	clear(s.conns)
}

// freshConns is connSet's cutFresh for a net/http server, whose Shutdown
// counts a connection that has not begun a request as busy for its first
// five seconds.
type freshConns struct {
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	stopping bool
}

func (s *freshConns) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case state == http.StateNew && s.stopping:
		c.Close()
	case state == http.StateNew:
		s.conns[c] = struct{}{}
	default:
		delete(s.conns, c)
	}
}

func (s *freshConns) cutFresh() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
	for c := range s.conns {
		c.Close()
	}
	clear(s.conns)
}
