// Package access is the one access layer in front of every route of
// `sumd serve`: it authenticates the client, decides whether its role may
// use the route, and only then lets the request reach a handler. No handler
// checks credentials itself.
//
// # Roles
//
// A credential names one role; each role may do what the ones before it may:
//
//	reader   /latest, /lookup/…, hash tiles, /sumdb/<name>/supported, /tuf/…:
//	         all the go command needs. A reader may be limited to module path
//	         patterns (GOPRIVATE syntax): a lookup outside them answers 404
//	         as a version the log does not hold answers without -upstream,
//	         and reaches no handler, so it never triggers an upstream fetch.
//	auditor  + data tiles (every record of the log: sumd verify -full, sumd
//	         mirror), the status page (/, /module, /record), /status, /metrics
//	admin    + /admin/ (writes)
//
// /healthz needs nothing, so load balancers can probe it; credentials sent
// there are checked only to tell its handler who asks (serve shows the
// problems of a degraded server to those who may read the status), a
// password only if another route verified it already (no bcrypt check),
// and refused ones are ignored. Any other path
// needs a reader: an unauthenticated client learns nothing, not even which
// paths exist.
//
// # Credentials
//
// Mode none (the default) is sumd without authentication: every client is
// the credential "anonymous" with the auditor role, and only /admin/ needs
// a credential. With mode basic (an htpasswd file of bcrypt hashes) or
// bearer (a file of named tokens), or with client certificates (a map of
// certificate subjects, see [Config.CertFile]), every route but /healthz
// needs a credential. The admin token (sumd serve -admin-token-file) is a
// credential named "admin-token" with the admin role in every mode. See
// files.go for the file formats.
//
// A client without credentials gets 401 with WWW-Authenticate (403 when
// only client certificates are accepted, since HTTP has no challenge for
// them: an Authorization header that is not the admin token counts as
// none there); wrong credentials get 401, never without a challenge (403
// where there is none); a role too weak for the route gets 403;
// all before anything about the request is revealed. A request that a
// browser says a page of another site made gets 403 before any of that,
// unless it is a link followed (site.go). Secrets are compared
// in constant time. Credential files are re-read when stat shows they
// changed (checked at most once a second) and, like every secret of sumd
// (internal/secret), refused while other users may access them (a file
// that turns bad refuses every credential it held until it is fixed, and
// the status says so).
//
// # Cost
//
// bcrypt is slow on purpose (tens of milliseconds). A verified user name
// and password are remembered by an HMAC of them under a key made at start,
// never in the clear, so that a go command's burst of tile requests pays
// bcrypt once: the requests of the burst that arrive before the first check
// ends share its run, rather than queue for one each. At most GOMAXPROCS-1
// bcrypt checks (at least one) run at once, so that anonymous guessing
// cannot take every core: one is left for the requests of users already
// verified.
package access

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumd-project/sumd/internal/admin"
)

// A Role is what a credential may do. Each role includes the ones below it.
type Role int

const (
	RoleNone Role = iota // no role: only /healthz
	Reader               // the go command's reads
	Auditor              // + every record (data tiles) and the server's status
	Admin                // + writes
)

func (r Role) String() string {
	switch r {
	case Reader:
		return "reader"
	case Auditor:
		return "auditor"
	case Admin:
		return "admin"
	}
	return "none"
}

// ParseRole parses "reader", "auditor" or "admin".
func ParseRole(s string) (Role, error) {
	for _, r := range []Role{Reader, Auditor, Admin} {
		if s == r.String() {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q: want reader, auditor or admin", s)
}

// A Principal is the client a request was authenticated as. Requests share
// principals: never modify one.
type Principal struct {
	// Name is the credential's name in the operator's file (user name,
	// token name or certificate name), "admin-token", or "anonymous" in
	// mode none. Logs and metrics use it; it is never a secret.
	Name     string
	Role     Role
	Patterns string // module path patterns (GOPRIVATE syntax) a reader is limited to; "" means all
	Method   string // "basic", "bearer", "certificate", "admin-token" or "none"
}

// Names of principals that are not in any file; files may not use them.
const (
	anonymousName  = "anonymous"
	adminTokenName = "admin-token"
	invalidName    = "invalid" // metric label of requests with wrong credentials
)

type principalKey struct{}

// NewContext returns ctx carrying p, as the access layer gives a request
// it lets through: for tests of handlers that look at their client.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal the access layer put in a request's
// context.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Mode is how clients authenticate with HTTP credentials.
type Mode string

const (
	ModeNone   Mode = "none"   // no HTTP credentials: everyone reads
	ModeBasic  Mode = "basic"  // user names and bcrypt hashes (htpasswd)
	ModeBearer Mode = "bearer" // named tokens
)

// Config configures a Layer.
type Config struct {
	Mode Mode
	// File is the htpasswd file (basic) or the token file (bearer).
	File string
	// CertFile maps the subjects of verified client certificates to
	// credentials; "" accepts no certificate. The TLS configuration (which
	// CA, whether a certificate is required) is the listener's.
	CertFile string
	// AdminTokenFile holds the admin API's bearer token; "" means none.
	AdminTokenFile string
	// AdminAPI says whether the server serves /admin/: without it, /admin/
	// paths are ordinary unknown paths (a reader gets the server's 404).
	AdminAPI bool
	// AllowedHosts are the host names requests may name (lowercase,
	// "*.name" for any name under name); IP addresses and localhost are
	// always answered, other hosts get 421 before anything else (see
	// allowedHost). None: any host.
	AllowedHosts []string
	// Databases are the names of the checksum databases served, the
	// server's own first: /sumdb/<name>/… routes are classified like the
	// root's, and a lookup a reader may not see answers 404 naming it.
	Databases []string

	Logger   *slog.Logger          // nil: slog.Default()
	Registry prometheus.Registerer // nil: no metrics
}

// Required reports whether a layer of cfg asks every client for a
// credential (Layer.Required), without reading a file: a server decides
// with it, before it opens any database, whether it may serve a mirror
// that reads its origin with credentials.
func (cfg Config) Required() bool {
	return cfg.Mode == ModeBasic || cfg.Mode == ModeBearer || cfg.CertFile != ""
}

// A Layer is the access layer. It is safe for concurrent use.
type Layer struct {
	cfg      Config
	required bool // every route but /healthz needs a credential
	basic    *basicStore
	bearer   *watched[tokenFile]
	certs    *watched[certFile]
	admin    *watched[string]
	metrics  *metrics
	log      *slog.Logger
}

// New reads every file of cfg once and returns the layer, or an error
// naming the first file that cannot be used: a server must not start with
// credentials it cannot check.
func New(cfg Config) (*Layer, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.Databases) == 0 {
		return nil, errors.New("access: no database name")
	}
	l := &Layer{cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Registry)}
	switch cfg.Mode {
	case ModeNone, "":
	case ModeBasic:
		l.basic = newBasicStore(cfg.File, l.metrics, cfg.Logger)
	case ModeBearer:
		l.bearer = newLineFile(cfg.File, parseTokenFile, cfg.Logger)
	default:
		return nil, fmt.Errorf("unknown access mode %q: want none, basic or bearer", cfg.Mode)
	}
	if cfg.CertFile != "" {
		l.certs = newLineFile(cfg.CertFile, parseCertFile, cfg.Logger)
	}
	if cfg.AdminTokenFile != "" {
		l.admin = newWatched(cfg.AdminTokenFile, admin.ParseToken, cfg.Logger)
	}
	l.required = cfg.Required()
	if err := l.check(); err != nil {
		return nil, err
	}
	return l, nil
}

// Check reads every file of cfg once and refuses what New refuses, without
// building a layer: no metrics are registered and nothing is logged. A
// server checks its credentials with it before it opens, or creates, a
// database; cfg.Databases may still be unknown then.
func Check(cfg Config) error {
	cfg.Databases = []string{"check"}
	cfg.Registry = nil
	cfg.Logger = slog.New(slog.DiscardHandler)
	_, err := New(cfg)
	return err
}

// check reads every file; the parsers refuse an empty -read-auth file
// (errNoCredentials).
func (l *Layer) check() error {
	var errs []error
	if l.basic != nil {
		_, err := l.basic.file.load()
		errs = append(errs, missing("read-auth-file", err))
	}
	if l.bearer != nil {
		_, err := l.bearer.load()
		errs = append(errs, missing("read-auth-file", err))
	}
	if l.certs != nil {
		_, err := l.certs.load()
		errs = append(errs, missing("tls-client-roles", err))
	}
	if l.admin != nil {
		_, err := l.admin.load()
		errs = append(errs, missing("admin-token-file", err))
	}
	return errors.Join(errs...)
}

// missing names the option of a file that is not there, which err does
// not (secret.NotExistError).
func missing(option string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", option, err)
	}
	return err
}

// Refresh reads again the credential files that changed, so that a file
// turning unusable shows in Problems (and the log) even while no client
// presents a credential from it. The server calls it every few seconds.
func (l *Layer) Refresh() {
	if l.basic != nil {
		l.basic.file.load()
	}
	if l.bearer != nil {
		l.bearer.load()
	}
	if l.certs != nil {
		l.certs.load()
	}
	if l.admin != nil {
		l.admin.load()
	}
}

// Problems lists the credential files that cannot be used as last read,
// for the server's status, which anonymous clients may see (/healthz): it
// names no path and no error, which the server log has.
func (l *Layer) Problems() []string {
	var out []string
	add := func(what string, err error) {
		if err != nil {
			out = append(out, what+" cannot be used, so every credential in it is refused (see the server log)")
		}
	}
	if l.basic != nil {
		_, err := l.basic.file.cached()
		add("the password file", err)
	}
	if l.bearer != nil {
		_, err := l.bearer.cached()
		add("the token file", err)
	}
	if l.certs != nil {
		_, err := l.certs.cached()
		add("the client certificate map", err)
	}
	if l.admin != nil {
		_, err := l.admin.cached()
		add("the admin token file", err)
	}
	return out
}

// Describe says how clients authenticate, for the start-up log.
func (l *Layer) Describe() string {
	var ways []string
	if l.basic != nil {
		ways = append(ways, "basic ("+l.cfg.File+")")
	}
	if l.bearer != nil {
		ways = append(ways, "bearer ("+l.cfg.File+")")
	}
	if l.certs != nil {
		ways = append(ways, "client certificates ("+l.cfg.CertFile+")")
	}
	if !l.required {
		ways = append(ways, "none: anyone reads")
	}
	return strings.Join(ways, ", ")
}

// DescribeAdmin says who may use the admin API, for the start-up log: "off",
// or the credentials that may. A credential file serves the API even while
// none of its credentials has the admin role, since the file is read again
// when it changes: the log says so, as a bare "on" looked like a mistake.
func (l *Layer) DescribeAdmin() string {
	if !l.cfg.AdminAPI {
		return "off"
	}
	const reread = " (read again when it changes: an admin added there needs no restart)"
	var who []string
	if l.admin != nil {
		who = append(who, "the admin token ("+l.cfg.AdminTokenFile+")")
	}
	if l.basic != nil || l.bearer != nil {
		who = append(who, "credentials with the admin role in "+l.cfg.File+reread)
	}
	if l.certs != nil {
		who = append(who, "client certificates with the admin role in "+l.cfg.CertFile+reread)
	}
	if len(who) == 0 {
		return "on"
	}
	return strings.Join(who, ", ")
}

// Required reports whether every route but /healthz needs a credential:
// the answers behind the layer are then one reader's, which no shared
// cache may keep for others (server.Options.Private).
func (l *Layer) Required() bool { return l.required }

// WithoutAdmin returns the layer for a listener that does not serve the
// admin API (it has its own): /admin/ paths there are unknown paths. The
// two share their files, caches and metrics.
func (l *Layer) WithoutAdmin() *Layer {
	c := *l
	c.cfg.AdminAPI = false
	return &c
}

// adminOff reports whether the admin API is off for now: its only
// credential is the admin token, and the token file cannot be used. Every
// /admin/ path then answers admin.NotEnabled's 404, as without the layer,
// rather than telling the holder of the right token that it is wrong. A
// request without credentials reads no file (what load found last).
func (l *Layer) adminOff(r *http.Request) bool {
	if l.required || l.admin == nil {
		return false // other credentials may hold the admin role
	}
	load := l.admin.load
	if r.Header.Get("Authorization") == "" {
		load = l.admin.cached
	}
	_, err := load()
	return err != nil
}

// open returns r, a request for a route that needs no credential
// (/healthz), with the principal its credentials authenticate, if any, in
// its context: the route answers everyone, but tells those who may read
// the status more (serve's health). Credentials refused are ignored, not
// answered nor logged: the route answers as to a client without any; a
// wrong token is counted all the same, so that a flood of them shows. A
// password is recognised only if another route verified it (remembered):
// a bcrypt check here would take one from the budget the other routes
// share, for an answer that differs only in its detail. A request without
// credentials, a load balancer's probe, costs nothing more.
func (l *Layer) open(r *http.Request, n need) *http.Request {
	if l.required && r.Header.Get("Authorization") == "" && !verified(r) {
		return r
	}
	p, d := l.authenticate(r, n)
	if d != nil && d.reason == reasonWrong {
		l.metrics.deny(reasonWrong)
	}
	if d != nil || p == nil {
		return r
	}
	return r.WithContext(withPrincipal(r.Context(), p, r.RemoteAddr))
}

// hdrPrivate is the Cache-Control of an answer behind credentials whose
// handler sets none; shared by every request, never modified (net/http's
// Set and Add replace it or copy it).
var hdrPrivate = []string{"private"}

// Wrap returns h behind the layer.
func (l *Layer) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.serve(w, r, h)
	})
}

// serve runs one request through the layer: classify the route, find the
// principal, check its role and patterns, then call h.
func (l *Layer) serve(w http.ResponseWriter, r *http.Request, h http.Handler) {
	if !allowedHost(l.cfg.AllowedHosts, r.Host) {
		l.metrics.misdirected()
		misdirected(w)
		return
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && crossSite(site, r.Header.Get("Sec-Fetch-Mode"), r.Header.Get("Sec-Fetch-Dest"), r.Method) {
		l.deny(w, r, need{}, nil, errCrossSite) // counts it
		return
	}
	n := l.classify(r.URL.Path)
	if n.role == RoleNone {
		h.ServeHTTP(w, l.open(r, n))
		return
	}
	if n.role == Admin {
		cw := &adminWriter{ResponseWriter: w, code: http.StatusOK, credential: anonymousName}
		defer func() { l.metrics.admin(cw.credential, n.adminRoute, cw.code) }()
		w = cw
		if l.adminOff(r) {
			admin.NotEnabled.ServeHTTP(w, r)
			return
		}
	}
	p, d := l.authenticate(r, n)
	if d == nil {
		d = l.authorize(r, p, n)
	}
	if d != nil {
		l.deny(w, r, n, p, d)
		return
	}
	setCredential(w, p.Name)
	if l.required {
		// Every answer behind credentials is one client's. Handlers that
		// set Cache-Control replace this; the others (the search's
		// redirect to a record, /metrics, ServeMux's redirects) would
		// leave it to a shared cache's defaults, and nginx's
		// proxy_cache_valid, which ignores Authorization, keeps such an
		// answer for the next client whatever its role.
		w.Header()["Cache-Control"] = hdrPrivate
	}
	h.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p, r.RemoteAddr)))
}
