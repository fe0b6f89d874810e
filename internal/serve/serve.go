// Package serve is the lifecycle of `sumd serve`: it builds the log, the
// HTTP surface and the long-running parts of a server, runs them under one
// errgroup tied to the signal context, and takes them down in a fixed order.
// cmd/sumd only parses flags and hands over what to build.
//
// # Parts
//
// A [Part] is a named long-running function: the sequencer's health watch,
// the OCI syncer, the TUF re-signer and, later, mirror followers. The HTTP
// listeners run beside them in the same group. Every one of them runs until
// the server stops; one that returns before then, with an error or without,
// has died: the server shuts down and [Run] returns an error naming it, so
// that `sumd serve` exits non-zero instead of logging the failure for ever
// while it keeps serving.
//
// # Start order
//
//  0. Bind: every listener's address is bound first, so that a taken port
//     refuses the start before the database is opened or created (opening
//     a large one with -verify full takes minutes). Connections made during
//     the start wait in the kernel's backlog until step 5.
//  1. TUF: the repository is opened and its online metadata re-signed. A
//     repository that cannot be signed refuses the start, before the
//     database is touched, since every client would fail within a day.
//  2. The logs: the credential files are checked, then the mirrors are
//     opened (a mirror that reads its origin with credentials is refused
//     unless every client must authenticate), then [Config.OpenLog] opens
//     the log (and may create it on a first start): a refused mirror
//     leaves no new log behind.
//  3. The HTTP surface: [Config.Surface] builds what the protocol serves (the
//     log, or a recorder fetching from upstream) and the admin API; the OCI
//     syncer is built on the log.
//  4. Listen: the HTTP servers take the bound listeners, then [Config.Ready]
//     learns the URL (the CLI prints the GOSUMDB line, which scripts wait
//     for).
//  5. Run: the listeners and every part, under one errgroup.
//
// A stop (ctx) during the start takes effect once the step in progress
// returns: nothing is announced or served after it, and Run returns nil.
// The verification of the log's open ends at the stop if OpenLog ties
// tlog.Options.Stop to ctx (an open failing with tlog.ErrOpenStopped);
// the open of a mirror is not interrupted, and need not be: it reads the
// head and verifies only the tree's tail (no -verify full), milliseconds
// whatever the mirror's size.
//
// # Shutdown order
//
// Shutdown starts when ctx ends (SIGINT or SIGTERM) or when a part or a
// listener dies:
//
//  1. Stop accepting: every listener closes.
//  2. Drain: requests in flight get up to [Config.ShutdownTimeout] to
//     finish; then their connections are cut and Run reports the failure.
//  3. Stop the parts: their context is cancelled, and Run waits for each to
//     return. They stop after the drain, so that the sequencer's health is
//     still watched while the last requests append.
//  4. Close the mirrors' logs, then what the handlers hold (the TUF
//     repository directory).
//  5. Close the log, last: it commits what is queued and releases the
//     database's lock, so a new process can open it the moment this one exits.
//     A write to the log or a mirror's that failed in doubt after step 3,
//     when no part watches its sequencer any more, is Run's error all the
//     same (stoppedLate).
//
// # Status
//
// Every part may report its state ([Part.Report]) into a [Status], which
// GET /status serves as JSON, the page at / renders (with a search by
// module path and inclusion proofs, see page.go), and /healthz condenses:
// 503 only when the log cannot serve, 200 "degraded: ..." when a part needs
// attention. docs/operations.md is the operator's side of this.
package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/valyala/fasthttp"
	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/tlog"
)

// Config is what Run builds. The caller has validated every option; what
// can still fail (files, keys, the database, the port) fails in Run. Errors
// that come with a hint for the operator (what to do about them) have a
// method Hint() string; sumd prints it after the error.
type Config struct {
	Logger   *slog.Logger
	Registry *prometheus.Registry // served at /metrics; see NewRegistry

	Listen        string      // address of the HTTP listener
	AdminListen   string      // address of a listener serving /admin/ alone; "": /admin/ is on Listen
	MetricsListen string      // address of a listener serving /metrics alone; "": /metrics is on Listen
	ReadListen    string      // address of a second listener serving only the protocol, on fasthttp (read.go); "": none
	TLS           *tls.Config // nil: plain HTTP, on every listener
	// TLSProblems, if set, reports the certificate's problems (expiring,
	// renewed files that cannot be loaded) for the status.
	TLSProblems ProblemReporter
	// ClientCAs, if set, is the pool of -tls-client-ca, read again when
	// its file changes: each TLS listener verifies client certificates
	// (as TLS.ClientAuth asks) with the pool current at the handshake,
	// not TLS.ClientCAs, and its problems show in the status.
	ClientCAs       ClientCAs
	RequestTimeout  time.Duration // read and write deadline of one request
	ShutdownTimeout time.Duration // how long requests in flight may take after a stop
	// MaxConnections caps the connections each listener serves at once
	// (connlimit.go); 0: DefaultMaxConnections.
	MaxConnections int
	// UpstreamParallel is the most upstream fetches the Surface makes at
	// once (-upstream-parallel; 0: none), for the check of the limit on
	// open files (nofile.go): each holds connections and a temporary zip.
	UpstreamParallel int
	CacheBytes       int64 // memory for full tiles and found records; 0: no cache (unlike server.Options, where 0 is the default)

	// OpenLog opens the log. Run calls it once, after TUF is ready, and
	// closes the log last. If it ties tlog.Options.Stop to Run's ctx, an
	// open a stop ended (tlog.ErrOpenStopped) is a stop during the start. nil: a mirror-only server, whose first mirror
	// is served at the root paths too (and its log takes the own log's
	// place in the status and the page).
	OpenLog func() (*tlog.Log, error)
	// Mirrors are the mirrored logs served beside the own log.
	Mirrors []Mirror
	// DBFile is the database file OpenLog opens, if the log is in a file:
	// the server stops if it is removed or replaced while served.
	DBFile string
	// MirrorFiles are the bbolt files of Mirrors, and MinFreeDisk the
	// space (bytes) their stores and DBFile's keep free: below it the
	// status says degraded (no floor: 0 or less; the free space is
	// exported as a metric either way).
	MirrorFiles []string
	MinFreeDisk int64
	// Surface returns what the protocol serves on top of l (l itself, or a
	// recorder fetching unknown versions from upstream; nil for a
	// mirror-only server: its first mirror, forwarding lookups to its
	// origin) and the /admin/ API handler (nil: no admin API).
	Surface func(l *tlog.Log) (ops sumdb.ServerOps, admin http.Handler, err error)
	TUF     *TUF  // nil: no /tuf/
	Sync    *Sync // nil: no OCI sync

	// Access configures the access layer in front of every route; Run
	// fills in its Databases, AdminAPI, Logger and Registry. The zero
	// value is a server without authentication but for the admin API.
	Access access.Config

	// Version is sumd's version, shown in the status and served at
	// /version ("": no /version route).
	Version string

	// PublicURL is the URL clients reach the server at, for the page's
	// GOSUMDB line ("": the scheme and host a request reached it at).
	// X-Forwarded-* headers are not trusted for it: any client sends them.
	PublicURL string

	// Ready, if set, is called once the listener accepts connections, with
	// the URL it serves at.
	Ready func(l *tlog.Log, url string)
}

// A ProblemReporter is a Surface's ops with problems of its own for the
// status and /healthz (degraded): the upstream recorder's failures of the
// temporary directory. Problems must be quick and name no path or
// address (anonymous clients read /healthz).
type ProblemReporter interface{ Problems() []string }

// ClientCAs is a pool of CA certificates that may change
// (tlscert.CAPool): Pool returns the current one, the same pointer until
// it changes.
type ClientCAs interface {
	Pool() *x509.CertPool
	ProblemReporter
}

// problemsPart shows pr's problems under part; it runs nothing.
func problemsPart(part string, pr ProblemReporter) Part {
	return Part{
		Name: part,
		Run:  func(ctx context.Context) error { <-ctx.Done(); return nil },
		Report: func(s *Status) {
			for _, p := range pr.Problems() {
				s.problem(part, "%s", p)
			}
		},
	}
}

// A Part is a named long-running part of a server.
type Part struct {
	Name string // what the logs and errors call it: "OCI sync", "TUF re-signer"
	// Run runs the part until ctx is done, then returns. A return before
	// ctx is done, even a nil one, means the part died and stops the server.
	Run func(ctx context.Context) error
	// Hint says what the operator should do when the part dies.
	Hint string
	// Report, if set, adds the part's section and problems to a status
	// being gathered. It is called from request handlers, concurrently
	// with Run: it must be safe for that, quick, and bounded in work.
	Report func(s *Status)
}

// Run builds the server cfg describes, serves until ctx ends or a part
// dies, and shuts down in the order of the package doc. It returns nil
// after a clean stop on ctx, and otherwise the first failure.
func Run(ctx context.Context, cfg Config) (err error) {
	var b builder
	defer func() { err = errors.Join(err, b.close(err)) }()
	bound, err := bindAll(cfg)
	if err != nil {
		return err
	}
	checkFileLimit(cfg, fileLimit)
	servers, parts, err := b.build(ctx, cfg, bound)
	if err != nil {
		bound.close()
		if errors.Is(err, errStopped) {
			cfg.Logger.Info("stopped before serving")
			return nil
		}
		return err
	}
	return runGroup(ctx, servers, parts, cfg.ShutdownTimeout, cfg.Logger)
}

// errStopped is a start cut short by ctx: the open of a mirror, or of
// the log without tlog.Options.Stop, cannot be interrupted, but once it
// returns nothing more is built, nothing is announced (Ready) and Run
// returns nil, as after a clean stop.
var errStopped = errors.New("stopped during the start")

// A builder builds a server and remembers what to close.
type builder struct {
	closers []func() error // run last to first
	log     *tlog.Log      // closed after them all
	watched []watchedLog   // every log opened, checked once all are closed
}

// A watchedLog is a log opened for the server (its own, a mirror's), with
// the name of its sequencer and the hint for its death in Run's errors.
type watchedLog struct {
	l          *tlog.Log
	what, hint string
}

func (b *builder) onClose(f func() error) { b.closers = append(b.closers, f) }

// watch remembers l for stoppedLate.
func (b *builder) watch(l *tlog.Log, what, hint string) {
	b.watched = append(b.watched, watchedLog{l, what, hint})
}

// close runs steps 4 and 5 of the shutdown order; runErr is what Run
// returns so far.
func (b *builder) close(runErr error) error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	if b.log != nil {
		if err := b.log.Close(); err != nil {
			errs = append(errs, fmt.Errorf("failed to close the log: %w", err))
		}
	}
	for _, w := range b.watched {
		errs = append(errs, stoppedLate(w, runErr))
	}
	return errors.Join(errs...)
}

// stoppedLate returns the fatal error that stopped w's log, unless runErr
// reports it already (a part watching the log did: the sequencer's health
// part, a mirror's part). Those parts stop watching with the others, after
// the drain, but writes still commit after that: a part's last write as it
// stops (a sync pass's add, a mirror's round), those of handlers the drain
// cut, and what Close commits from the queue. One that fails in doubt
// stops the log as any other does, and sumd serve must exit with the
// status of that failure (1, or 3 for a store rolled back under the log),
// not 0 as after a clean stop.
func stoppedLate(w watchedLog, runErr error) error {
	err := w.l.Err()
	if !errors.Is(err, tlog.ErrFatal) || errors.Is(runErr, err) {
		return nil
	}
	err = fmt.Errorf("%s stopped during the shutdown: %w", w.what, err)
	if hinted := (interface{ Hint() string })(nil); !errors.As(err, &hinted) {
		err = withHint(err, w.hint)
	}
	return err
}

// build runs start steps 1 to 4 of the package doc, or stops after a step
// with errStopped once ctx is done.
func (b *builder) build(ctx context.Context, cfg Config, bound *bound) ([]*listener, []Part, error) {
	var parts []Part
	t, err := openTUF(cfg.TUF, cfg.Registry, cfg.Logger)
	if err != nil {
		return nil, nil, err
	}
	if t != nil {
		b.onClose(t.handler.Close)
		parts = append(parts, t.part())
	}
	// The credential files are read before the log is opened, or created
	// on a first start, and read again by the access layer built below,
	// once the names of the databases served are known.
	if err := access.Check(cfg.Access); err != nil {
		return nil, nil, accessError(err)
	}
	mirrors, mparts, err := b.openMirrors(cfg)
	if err != nil {
		return nil, nil, err
	}
	if ctx.Err() != nil {
		return nil, nil, errStopped
	}
	var l *tlog.Log
	if cfg.OpenLog != nil {
		if l, err = cfg.OpenLog(); err != nil {
			if errors.Is(err, tlog.ErrOpenStopped) && ctx.Err() != nil {
				return nil, nil, errStopped // the stop cut the verification short
			}
			return nil, nil, err
		}
		b.log = l
		b.watch(l, "the log's sequencer", sequencerHint)
		if err := ownMirror(mirrors, l.Name()); err != nil {
			return nil, nil, err
		}
		if t != nil {
			t.expect(l.Name(), l.VerifierKeys())
		}
	}
	if ctx.Err() != nil {
		return nil, nil, errStopped
	}
	parts = append(parts, mparts...)
	var rootOps sumdb.ServerOps
	switch {
	case l == nil && len(mirrors) == 0:
		return nil, nil, errNoLog
	case l == nil: // mirror-only: the first mirror is at the root too
		l, rootOps, mirrors = mirrors[0].Log(), mirrors[0].Ops(), mirrors[1:]
	}
	databases := []string{l.Name()}
	for _, f := range mirrors {
		databases = append(databases, f.Name())
	}
	if p, ok := healthPart(l); ok {
		parts = append(parts, p)
	}
	if cfg.DBFile != "" {
		p, err := guardPart(cfg.DBFile)
		if err != nil {
			return nil, nil, err
		}
		parts = append(parts, p)
	}
	if files := diskFiles(cfg); len(files) > 0 {
		var reg prometheus.Registerer // nil: none (a nil *Registry is not)
		if cfg.Registry != nil {
			reg = cfg.Registry
		}
		parts = append(parts, diskPart(files, cfg.MinFreeDisk, reg, cfg.Logger, tlog.FreeSpace))
	}
	hist, err := loadHistory(context.Background(), l, cfg.Logger, time.Now)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the status history: %w", err)
	}
	parts = append(parts, hist.part())
	ops, adm, err := cfg.Surface(l)
	if err != nil {
		return nil, nil, err
	}
	if ops == nil {
		ops = rootOps
	}
	if pr, ok := ops.(ProblemReporter); ok {
		parts = append(parts, problemsPart("upstream", pr))
	}
	if cfg.TLSProblems != nil {
		parts = append(parts, problemsPart("tls", cfg.TLSProblems))
	}
	if cfg.ClientCAs != nil {
		parts = append(parts, problemsPart("tls-client-ca", cfg.ClientCAs))
	}
	if adm == nil && cfg.AdminListen != "" {
		// The CLI's configuration refuses this before anything is bound
		// or opened (config.Serve.Validate); a socket bound for no
		// handler must not be served by http.DefaultServeMux.
		return nil, nil, errors.New("serve: AdminListen is set, but Surface returned no admin API")
	}
	layer, accessPart, err := newAccess(&cfg, databases, adm != nil)
	if err != nil {
		return nil, nil, err
	}
	parts = append(parts, accessPart)
	if cfg.ReadListen != "" && layer.Required() {
		// The CLI's configuration refuses this too (config.Serve.Validate).
		return nil, nil, withHint(errors.New("-read-listen serves without the access layer, but this server asks its clients for credentials"),
			"remove -read-listen, or -read-auth and the client certificate roles")
	}
	if cfg.Sync != nil {
		p, err := cfg.Sync.part(l, cfg.Logger)
		if err != nil {
			return nil, nil, err
		}
		parts = append(parts, p)
	}
	status := &board{log: l, parts: parts, reg: cfg.Registry, version: cfg.Version, started: time.Now()}
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(newHealthCollector(status)); err != nil {
			return nil, nil, fmt.Errorf("failed to export the health as metrics: %w", err)
		}
	}
	if ctx.Err() != nil {
		return nil, nil, errStopped
	}
	servers := listenAll(cfg, bound, routes(&cfg, l, ops, adm, t, status, mirrors, layer))
	cfg.Logger.Info("serving checksum database", "name", l.Name(), "url", servers[0].url, "tree_size", treeSize(l), "admin", adm != nil, "mirrors", len(cfg.Mirrors))
	if cfg.Ready != nil {
		cfg.Ready(l, servers[0].url)
	}
	return servers, parts, nil
}

// bound are the sockets of step 0, bound before anything else is built:
// the main listener's always, the admin API's and the metrics' when their
// flags name an address.
type bound struct{ main, admin, metrics, read net.Listener }

// bindAll binds cfg's addresses. If one cannot bind, those bound are
// closed.
func bindAll(cfg Config) (*bound, error) {
	var b bound
	for _, x := range []struct {
		addr, flag string
		ln         *net.Listener
	}{{cfg.Listen, "-listen", &b.main}, {cfg.AdminListen, "-admin-listen", &b.admin}, {cfg.MetricsListen, "-metrics-listen", &b.metrics}, {cfg.ReadListen, "-read-listen", &b.read}} {
		if x.addr == "" && x.ln != &b.main {
			continue
		}
		ln, err := net.Listen("tcp", x.addr)
		if err != nil {
			b.close()
			return nil, withHint(fmt.Errorf("failed to listen: %w", err), "pick a free address with "+x.flag+" HOST:PORT")
		}
		*x.ln = ln
	}
	return &b, nil
}

// close closes the sockets no HTTP server took.
func (b *bound) close() {
	for _, ln := range []net.Listener{b.main, b.admin, b.metrics, b.read} {
		if ln != nil {
			ln.Close()
		}
	}
}

// listenAll gives the bound sockets to the HTTP servers of s, the main one
// first. Each bound socket has a handler: build refuses -admin-listen
// without an admin API, and routes serves metrics wherever
// -metrics-listen is.
func listenAll(cfg Config, b *bound, s surface) []*listener {
	binds := []struct {
		ln   *net.Listener
		what string
		h    http.Handler
	}{{&b.main, "", s.main}, {&b.admin, "admin API", s.admin}, {&b.metrics, "metrics", s.metrics}}
	var out []*listener
	for _, x := range binds {
		ln := *x.ln
		*x.ln = nil // the server owns it now
		if ln == nil {
			continue
		}
		srv := listen(cfg, ln, x.h)
		if x.what != "" {
			cfg.Logger.Info("serving "+x.what+" on a listener of its own", "url", srv.url)
		}
		out = append(out, srv)
	}
	if b.read != nil {
		srv := listenRead(cfg, b.read, s.read)
		b.read = nil
		cfg.Logger.Info("serving the checksum database protocol on a read listener too", "url", srv.url)
		out = append(out, srv)
	}
	return out
}

// A listener is the HTTP server on its bound socket: net/http's, or for
// the read listener fasthttp's (read.go).
type listener struct {
	srv   *http.Server
	fast  *fasthttp.Server
	conns *connSet    // the fast server's connections
	fresh *freshConns // the net/http server's connections before a request
	ln    net.Listener
	url   string
	// cancel ends the context of the fast server's requests (read.go)
	// once the shutdown has cut their connections.
	cancel context.CancelFunc
}

// listen prepares the HTTP server for h on ln.
func listen(cfg Config, ln net.Listener, h http.Handler) *listener {
	if cfg.TLS == nil {
		ln = coalescingListener{Listener: ln}
	}
	limit := newConnLimit(cfg.MaxConnections, cfg.Logger)
	ln = &limitListener{Listener: ln, limit: limit}
	fresh := &freshConns{conns: map[net.Conn]struct{}{}}
	return &listener{
		ln:    ln,
		url:   publicURL(ln.Addr(), cfg.TLS != nil),
		fresh: fresh,
		srv: &http.Server{
			ConnState: func(c net.Conn, state http.ConnState) {
				limit.httpState(c, state)
				fresh.track(c, state)
			},
			Handler:   closeOnError(refuseOddTargets(h)),
			TLSConfig: listenerTLS(cfg, "h2", "http/1.1"),
			// `OPTIONS *` goes to refuseOddTargets too.
			DisableGeneralOptionsHandler: true,
			// A client has readTimeout to send its request, headers and
			// body: one trickling a body holds a connection for seconds,
			// not for the request timeout. (Once the body is read,
			// net/http clears the read deadline while the handler runs.)
			// The admin API extends it for authenticated uploads.
			ReadHeaderTimeout: readTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      cfg.RequestTimeout,
			IdleTimeout:       idleTimeout,
			// 16 KiB in all, as the read listener's ReadBufferSize:
			// net/http allows 4 KiB more than MaxHeaderBytes.
			MaxHeaderBytes: 12 << 10,
			ErrorLog:       log.New(httpLogger{cfg.Logger}, "", 0),
		},
	}
}

// listenerTLS returns a copy of cfg.TLS for one listener (nil: plain
// HTTP), offering protos (ALPN): a config of its own, as ServeTLS sets
// HTTP/2 up on its server's (NextProtos, PreferServerCipherSuites) when
// the listeners start together. The main listeners offer what ServeTLS
// would set up. With cfg.ClientCAs, each handshake gets this config with
// the current pool of client certificate CAs (GetConfigForClient), so
// that a changed -tls-client-ca needs no restart; the config returned is
// used as is, which is why protos are set here.
func listenerTLS(cfg Config, protos ...string) *tls.Config {
	if cfg.TLS == nil {
		return nil
	}
	tc := cfg.TLS.Clone()
	tc.NextProtos = protos
	if cfg.ClientCAs != nil {
		tc.GetConfigForClient = currentCAs(tc, cfg.ClientCAs)
	}
	return tc
}

// currentCAs returns a GetConfigForClient giving a copy of base with the
// current pool of cas, made again only when the pool changes. base is
// copied now, before the server writes to its own config.
func currentCAs(base *tls.Config, cas ClientCAs) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	base = base.Clone()
	var last atomic.Pointer[tls.Config]
	return func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool := cas.Pool()
		if c := last.Load(); c != nil && c.ClientCAs == pool {
			return c, nil
		}
		c := base.Clone()
		c.ClientCAs = pool
		last.Store(c)
		return c, nil
	}
}

// httpLogger takes net/http's log lines: a failed TLS handshake at Info,
// as the request log has a client's errors, since any client causes one
// by connecting and going away without it (a load balancer's TCP check, a
// port scan), yet a client certificate refused there is the operator's to
// see; the rest (a handler's panic, accept failures) at Warn.
type httpLogger struct{ l *slog.Logger }

func (h httpLogger) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelInfo
	}
	h.l.Log(context.Background(), level, msg)
	return len(p), nil
}

// serve serves until Shutdown (nil) or a failure of the listener.
func (l *listener) serve() error {
	var err error
	switch {
	case l.fast != nil:
		err = l.fast.Serve(l.ln) // nil after Shutdown
	case l.srv.TLSConfig != nil:
		err = l.srv.ServeTLS(l.ln, "", "") // the certificate is in TLSConfig
	default:
		err = l.srv.Serve(l.ln)
	}
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("server stopped: %w", err)
}

// shutdown stops accepting and drains requests in flight for up to timeout,
// then cuts the connections left.
func (l *listener) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	if l.fast != nil {
		// Closing the socket first ends a Serve that has not started yet
		// (see readSocket); fasthttp's Shutdown then drains the rest.
		l.ln.Close()
		l.conns.cutFresh()
		if err = l.fast.ShutdownWithContext(ctx); err != nil {
			l.conns.cut()
		}
		l.cancel()
	} else {
		l.fresh.cutFresh()
		if err = l.srv.Shutdown(ctx); err != nil {
			l.srv.Close()
		}
	}
	if err != nil {
		return withHint(fmt.Errorf("failed to shut down gracefully: %w", err),
			fmt.Sprintf("requests still running after -shutdown-timeout (%s) were cut; every record acknowledged before is stored; raise -shutdown-timeout if clients need longer (uploads)", timeout))
	}
	return nil
}

// NewRegistry returns a private Prometheus registry with the process, Go
// runtime and build info collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg
}

func treeSize(l *tlog.Log) int64 {
	t, _ := l.Tree(context.Background())
	return t.N
}
