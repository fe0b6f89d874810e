package access

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/server"
)

// A denial is a refused request: its status, the reason as the metrics
// count it, and the one-line message the client sees.
type denial struct {
	status int
	reason string
	msg    string
	absent *module.Version // a lookup answered as a version the log does not hold
}

// Denial reasons, the label values of sumd_access_denied_total.
const (
	reasonNoCredentials = "no_credentials"
	reasonWrong         = "wrong_credentials"
	reasonScheme        = "unsupported_scheme"
	reasonQuery         = "credentials_in_query"
	reasonCertificate   = "unmapped_certificate"
	reasonRole          = "role"
	reasonPatterns      = "patterns"
	reasonBusy          = "busy"
	reasonCrossSite     = "cross_site"
)

var allReasons = []string{reasonNoCredentials, reasonWrong, reasonScheme, reasonQuery,
	reasonCertificate, reasonRole, reasonPatterns, reasonBusy, reasonCrossSite}

var errWrong = &denial{http.StatusUnauthorized, reasonWrong, "wrong credentials (user name, password or token)", nil}

// anonymous is every client of a server without authentication;
// adminPrincipal whoever presents the admin token.
var (
	anonymous      = &Principal{Name: anonymousName, Role: Auditor, Method: "none"}
	adminPrincipal = &Principal{Name: adminTokenName, Role: Admin, Method: "admin-token"}
)

// authenticate returns the principal r authenticates as, nil for a client
// without credentials, or a denial for credentials that are refused.
func (l *Layer) authenticate(r *http.Request, n need) (*Principal, *denial) {
	if !l.required && n.role <= Auditor {
		return anonymous, nil // mode none: the server as it always was
	}
	if queryCredentials(r.URL.RawQuery) {
		return nil, &denial{http.StatusUnauthorized, reasonQuery,
			"credentials in the URL query are refused: send them in the Authorization header (for the go command, a .netrc entry)", nil}
	}
	if h := r.Header.Get("Authorization"); h != "" {
		p, d := l.fromHeader(r, h, n)
		if d != nil && l.basic == nil && l.bearer == nil && (verified(r) || len(l.challenges(n)) == 0) {
			// This server takes no password or token but the admin
			// token, which this is not: the header is for a proxy in
			// front (nginx forwards its auth_basic users' own), which
			// authenticates itself by its certificate. Without one, the
			// request is one without credentials: a 401 for the header
			// would have no scheme to challenge (RFC 9110 §15.5.2
			// requires one), but where the admin token is asked for
			// (/admin/), a wrong one gets its 401 and Bearer challenge.
			return l.fromCertificate(r, n)
		}
		return p, d
	}
	return l.fromCertificate(r, n)
}

// plainHTTP reports whether r came over plain HTTP, for a 401's text only:
// a client with a .netrc entry whose GOSUMDB has an http:// URL sends no
// credentials, and must be told that the URL is what to change. Behind a
// proxy that terminates TLS every request is plain, so one the proxy says
// it took over HTTPS is not; the header decides no access, so trusting it
// here costs nothing but a hint, and a proxy that sets none gets the hint,
// whose "came over plain HTTP" is then sumd's side of it.
func plainHTTP(r *http.Request) bool {
	return r.TLS == nil && !strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// verified reports whether r came with a verified client certificate.
func verified(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// queryCredentials reports whether a query string carries what looks like
// a credential. It is refused rather than ignored: URLs end up in logs,
// proxies and browser histories, so the client must be told to stop.
func queryCredentials(raw string) bool {
	// Every key counts, however the query is split: url.ParseQuery drops
	// the pairs that hold a ";" (?access_token=abc;), which other parsers
	// (proxies, frameworks, logs) split on, so it would miss them.
	for pair := range strings.FieldsFuncSeq(raw, func(r rune) bool { return r == '&' || r == ';' }) {
		k, _, _ := strings.Cut(pair, "=")
		if unescaped, err := url.QueryUnescape(k); err == nil {
			k = unescaped
		}
		switch strings.ToLower(k) {
		case "access_token", "token", "auth", "authorization", "password", "passwd", "key", "api_key", "apikey":
			return true
		}
	}
	return false
}

// fromHeader checks the Authorization header of a request that needs n:
// Basic (a user and password, or any user and a token as the password, as
// netrc can only send basic credentials) or Bearer (a token).
func (l *Layer) fromHeader(r *http.Request, h string, n need) (*Principal, *denial) {
	scheme, rest, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Basic"):
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, &denial{http.StatusUnauthorized, reasonWrong, "malformed basic credentials", nil}
		}
		if p := l.token(pass); p != nil {
			return p, nil
		}
		if l.basic == nil {
			return nil, errWrong
		}
		if n.role == RoleNone {
			return l.basic.remembered(user, pass), nil // see Layer.open
		}
		return l.basic.check(r.Context(), user, pass)
	case strings.EqualFold(scheme, "Bearer"):
		if p := l.token(strings.TrimSpace(rest)); p != nil {
			return p, nil
		}
		return nil, errWrong
	}
	if len(scheme) > 32 {
		scheme = scheme[:32]
	}
	return nil, &denial{http.StatusUnauthorized, reasonScheme,
		fmt.Sprintf("unsupported authorization scheme %s: use Basic or Bearer", strconv.QuoteToASCII(scheme)), nil}
}

// token returns the principal whose token tok is: a bearer token of the
// token file, or the admin token. Both comparisons are of SHA-256 digests
// in constant time, which hides the tokens' lengths too.
func (l *Layer) token(tok string) *Principal {
	if tok == "" {
		return nil
	}
	d := sha256.Sum256([]byte(tok))
	if l.bearer != nil {
		if f, err := l.bearer.load(); err == nil {
			if c := f.tokens[d]; c != nil {
				want := sha256.Sum256([]byte(c.secret))
				if subtle.ConstantTimeCompare(d[:], want[:]) == 1 {
					return c.p
				}
			}
		}
	}
	if l.admin != nil {
		if admin, err := l.admin.load(); err == nil {
			want := sha256.Sum256([]byte(admin))
			if subtle.ConstantTimeCompare(d[:], want[:]) == 1 {
				return adminPrincipal
			}
		}
	}
	return nil
}

// fromCertificate maps the verified client certificate, if any, for a
// request that needs n. The TLS handshake has verified it (chain to
// -tls-client-ca, validity dates, client-auth usage); an expired or
// untrusted one never gets here. A refusal is logged with the subject,
// which the "access denied" line does not name, but not on a route open to
// all (/healthz), which ignores it: a load balancer probing with a
// certificate of its own would write a line every few seconds.
func (l *Layer) fromCertificate(r *http.Request, n need) (*Principal, *denial) {
	if l.certs == nil || !verified(r) {
		return nil, nil
	}
	cert := r.TLS.VerifiedChains[0][0]
	subject := cert.Subject.String()
	if err := checkSubject(cert); err != nil {
		if n.role != RoleNone {
			l.log.InfoContext(r.Context(), "client certificate refused", "subject", subject, "err", err, "remote", r.RemoteAddr)
		}
		return nil, &denial{http.StatusForbidden, reasonCertificate, "the client certificate's subject is ambiguous: " + err.Error(), nil}
	}
	f, err := l.certs.load()
	if err == nil {
		if c := f.subjects[subject]; c != nil {
			return c.p, nil
		}
	}
	if n.role != RoleNone {
		l.log.InfoContext(r.Context(), "client certificate not in the role map", "subject", subject, "remote", r.RemoteAddr)
	}
	return nil, &denial{http.StatusForbidden, reasonCertificate, "the client certificate is not mapped to a role", nil}
}

// checkSubject refuses a subject that pkix.Name, and so the form it
// prints (the role map's key), does not show whole: it keeps one value of
// the attributes it holds as a string, CN and serialNumber, the last, so a
// subject holding CN=replica-1 and CN=intruder would print as the subject
// holding CN=replica-1 alone.
func checkSubject(cert *x509.Certificate) error {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(cert.RawSubject, &rdns); err != nil || len(rest) != 0 {
		return errors.New("it cannot be parsed")
	}
	seen := map[string]bool{}
	for _, rdn := range rdns {
		for _, atv := range rdn {
			if !atv.Type.Equal(oidCommonName) && !atv.Type.Equal(oidSerialNumber) {
				continue
			}
			if seen[atv.Type.String()] {
				return fmt.Errorf("attribute %s appears more than once", atv.Type)
			}
			seen[atv.Type.String()] = true
		}
	}
	return nil
}

// The attributes pkix.Name keeps one value of.
var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}
)

// authorize checks that p may make a request, r, that needs n. A nil p has
// no credentials.
func (l *Layer) authorize(r *http.Request, p *Principal, n need) *denial {
	if p == nil && !l.required {
		p = anonymous
	}
	switch {
	case (p == nil || p == anonymous && p.Role < n.role) && len(l.challenges(n)) == 0:
		// Only client certificates are accepted: HTTP has no challenge
		// for them, so this is not a 401.
		return &denial{http.StatusForbidden, reasonNoCredentials, "a client certificate is required", nil}
	case (p == nil || p == anonymous && p.Role < n.role) && n.role == Admin:
		return &denial{http.StatusUnauthorized, reasonNoCredentials,
			"credentials required: send an admin token (Authorization: Bearer TOKEN; sumd's -token-file) or an admin's credentials", nil}
	case (p == nil || p == anonymous && p.Role < n.role) && plainHTTP(r):
		return &denial{http.StatusUnauthorized, reasonNoCredentials,
			"credentials required: add this host to your .netrc, and use an https:// URL in GOSUMDB: this request came over plain HTTP, and the go command sends credentials over HTTPS only", nil}
	case p == nil || p == anonymous && p.Role < n.role:
		return &denial{http.StatusUnauthorized, reasonNoCredentials,
			"credentials required: add this host to your .netrc (the go command sends them over HTTPS only)", nil}
	case p.Role < n.role:
		return &denial{http.StatusForbidden, reasonRole,
			fmt.Sprintf("%s the %s role; credential %s has the %s role", n.subject, n.role, p.Name, p.Role), nil}
	}
	return l.limit(p, n)
}

// limit answers a limited reader's lookup outside its patterns as the
// server answers a version the log does not hold, so that the reader cannot
// tell the two apart, and before any handler could fetch it upstream. A
// path the server would refuse as malformed goes on to get its 400.
func (l *Layer) limit(p *Principal, n need) *denial {
	if n.lookup == "" || p.Patterns == "" {
		return nil
	}
	m, err := server.ParseLookup(n.lookup)
	if err != nil || module.MatchPrefixPatterns(p.Patterns, m.Path) {
		return nil
	}
	return &denial{http.StatusNotFound, reasonPatterns, "", &m}
}

// logDenied logs a refusal as "access denied", for deny on the main
// listener and LogCrossSite on serve's read listener alike: one line in
// one form, so that an operator's search of the log for a client or a
// reason finds the refusals of both.
func (l *Layer) logDenied(ctx context.Context, path string, status int, reason, credential, remote string) {
	l.log.LogAttrs(ctx, slog.LevelInfo, "access denied", slog.String("path", server.OneLine(path)),
		slog.Int("status", status), slog.String("reason", reason), slog.String("credential", credential),
		slog.String("remote", remote))
}

// deny answers d, logs it and counts it.
func (l *Layer) deny(w http.ResponseWriter, r *http.Request, n need, p *Principal, d *denial) {
	name := anonymousName
	switch {
	case p != nil:
		name = p.Name
	case d.reason != reasonNoCredentials && d.reason != reasonCrossSite:
		name = invalidName
	}
	if d.status == http.StatusUnauthorized && len(l.challenges(n)) == 0 {
		// Only client certificates are accepted (and the credentials
		// were in the query): a 401 must challenge (RFC 9110 §15.5.2),
		// and HTTP has no challenge for a certificate.
		d = &denial{http.StatusForbidden, d.reason, d.msg, nil}
	}
	setCredential(w, name)
	l.metrics.deny(d.reason)
	l.logDenied(r.Context(), r.URL.Path, d.status, d.reason, name, r.RemoteAddr)
	if d.absent != nil {
		server.WriteNoRecord(w, n.db, *d.absent)
		return
	}
	h := w.Header()
	if d.status == http.StatusUnauthorized {
		for _, c := range l.challenges(n) {
			h.Add("WWW-Authenticate", c)
		}
	}
	if d.status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.status)
	fmt.Fprintln(w, d.msg)
}

// challenges are the WWW-Authenticate values of a 401 for n.
func (l *Layer) challenges(n need) []string {
	var cs []string
	if l.basic != nil || l.bearer != nil {
		// Tokens are accepted as basic passwords too: a .netrc can only
		// send basic credentials.
		cs = append(cs, `Basic realm="sumd", charset="UTF-8"`)
	}
	if l.bearer != nil || n.role == Admin && l.admin != nil {
		cs = append(cs, `Bearer realm="sumd"`)
	}
	return cs
}

// AnonymousAt returns ctx as the layer of a server without authentication
// gives it to the handler of a request from remote: a listener the layer
// does not wrap (serve's read listener, refused on a server that asks for
// credentials) calls its handlers with it, so that what they log says who
// caused it, as LogHandler does for every other request. It costs one
// allocation, and the address is formatted only if a log line asks for it,
// which most requests of a read listener never do.
func AnonymousAt(ctx context.Context, remote net.Addr) context.Context {
	return &anonymousCtx{ctx, remote}
}

type anonymousCtx struct {
	context.Context
	remote net.Addr
}

func (c *anonymousCtx) Value(key any) any {
	switch key.(type) {
	case principalKey:
		return anonymous
	case remoteKey:
		return c.remote.String()
	}
	return c.Context.Value(key)
}

// remoteKey holds the client's address in a request's context, for logs.
type remoteKey struct{}

// Remote returns the address of the client whose request's context ctx
// is, as the layer (or AnonymousAt) put it there: the connection's peer,
// http.Request.RemoteAddr. sumd trusts no forwarded-for header, so behind
// a reverse proxy it is the proxy's. "" if ctx is no request's.
func Remote(ctx context.Context) string {
	remote, _ := ctx.Value(remoteKey{}).(string)
	return remote
}

func withPrincipal(ctx context.Context, p *Principal, remote string) context.Context {
	ctx = context.WithValue(ctx, principalKey{}, p)
	return context.WithValue(ctx, remoteKey{}, remote)
}
