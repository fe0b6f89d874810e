package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Access configures who may use `sumd serve` (internal/access): how
// clients authenticate, and the listeners that keep writes and metrics off
// the main one. docs/access.md has the roles and the file formats.
type Access struct {
	ReadAuth       string `flag:"read-auth" arg:"MODE" help:"how clients authenticate: none (anyone reads; /admin/ needs the admin token), basic (-read-auth-file is an htpasswd file of bcrypt hashes) or bearer (it holds named tokens); then every route but /healthz needs a credential of a role (docs/access.md)"`
	ReadAuthFile   string `flag:"read-auth-file" secret:"true" arg:"FILE" help:"credentials of -read-auth, lines NAME:SECRET[:ROLE[:PATTERNS]]: re-read when changed, refused if other users may read it"`
	TLSClientCA    string `flag:"tls-client-ca" arg:"FILE" help:"PEM certificates of the CAs that issue client certificates (mutual TLS, for module proxies in front of sumd; the go command cannot present one; sumd's own clients, status, add -server, backup -server, tuf gosumdb, verify, mirror and restore -from, present -client-cert); needs -tls-cert and -tls-client-roles; read again when it changes, no restart needed"`
	TLSClientAuth  string `flag:"tls-client-auth" arg:"MODE" help:"with -tls-client-ca: require (every client presents a certificate) or verify-if-given (the others use -read-auth credentials)"`
	TLSClientRoles string `flag:"tls-client-roles" arg:"FILE" help:"maps client certificate subjects to credentials, lines NAME:SUBJECT:ROLE[:PATTERNS] (SUBJECT as in CN=proxy.corp.example,O=Corp)"`
	AdminListen    string `flag:"admin-listen" arg:"HOST:PORT" help:"serve the /admin/ API on this address alone (an internal interface) instead of -listen"`
	MetricsListen  string `flag:"metrics-listen" arg:"HOST:PORT" help:"serve /metrics on this address alone instead of -listen"`
	ReadListen     string `flag:"read-listen" arg:"HOST:PORT" help:"serve what the go command reads (lookups, tiles, /latest, /sumdb/NAME/supported of the log and each mirror, /healthz and /version) on this address too, on a leaner HTTP/1.1 server: hash tiles near a static file server's speed, about half the CPU per lookup (docs/operations.md); not with -read-auth or client certificates"`
	AllowedHosts   string `flag:"allowed-hosts" arg:"NAMES" help:"host names clients reach sumd by (sumd.corp.example,*.sumd.corp.example): a request naming another host in its Host header gets 421, which stops web pages an employee opens from reading an internal sumd through DNS rebinding; IP addresses and localhost are always accepted; empty: any host"`
}

// ParseAllowedHosts parses Access.AllowedHosts: comma-separated host names,
// each optionally starting with "*." (any name under it), lowercased and
// without a trailing dot.
func ParseAllowedHosts(list string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
		if h == "" {
			continue
		}
		name := strings.TrimPrefix(h, "*.")
		if !validHostName(name) {
			return nil, fmt.Errorf("allowed-hosts: %q is not a host name (want names such as sumd.corp.example or *.corp.example, no scheme, port or path)", redactValue(h))
		}
		out = append(out, h)
	}
	return out, nil
}

// validHostName reports whether s is a DNS name: dot-separated labels of
// letters, digits, hyphens and underscores, none empty or over 63 bytes.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Values of Access.ReadAuth and Access.TLSClientAuth.
const (
	ReadAuthNone         = "none"
	ReadAuthBasic        = "basic"
	ReadAuthBearer       = "bearer"
	ClientAuthRequire    = "require"
	ClientAuthIfGiven    = "verify-if-given"
	defaultTLSClientAuth = ClientAuthRequire
)

func defaultAccess() Access {
	return Access{ReadAuth: ReadAuthNone, TLSClientAuth: defaultTLSClientAuth}
}

// validate reports every problem of a, one per line; listen and tlsCert
// are the server's.
func (a *Access) validate(listen, tlsCert string) error {
	var errs []error
	switch a.ReadAuth {
	case ReadAuthNone, "":
		if a.ReadAuthFile != "" {
			errs = append(errs, errors.New("read-auth-file is set, but read-auth is none: set -read-auth basic or bearer"))
		}
	case ReadAuthBasic, ReadAuthBearer:
		if a.ReadAuthFile == "" {
			errs = append(errs, fmt.Errorf("read-auth %s needs -read-auth-file: the file of credentials", a.ReadAuth))
		}
	default:
		errs = append(errs, fmt.Errorf("invalid read-auth %q: want none, basic or bearer", a.ReadAuth))
	}
	if a.TLSClientAuth != "" && a.TLSClientAuth != ClientAuthRequire && a.TLSClientAuth != ClientAuthIfGiven {
		errs = append(errs, fmt.Errorf("invalid tls-client-auth %q: want require or verify-if-given", a.TLSClientAuth))
	}
	switch {
	case a.TLSClientCA != "" && tlsCert == "":
		errs = append(errs, errors.New("tls-client-ca needs -tls-cert and -tls-key: client certificates are part of TLS"))
	case a.TLSClientCA != "" && a.TLSClientRoles == "":
		errs = append(errs, errors.New("tls-client-ca needs -tls-client-roles: the map from certificate subjects to roles"))
	case a.TLSClientCA == "" && a.TLSClientRoles != "":
		errs = append(errs, errors.New("tls-client-roles needs -tls-client-ca: the CAs whose client certificates to trust"))
	}
	if _, err := ParseAllowedHosts(a.AllowedHosts); err != nil {
		errs = append(errs, err)
	}
	if a.ReadListen != "" && (a.ReadAuth == ReadAuthBasic || a.ReadAuth == ReadAuthBearer || a.TLSClientCA != "") {
		errs = append(errs, errors.New("read-listen serves everyone without credentials: not with -read-auth basic or bearer, or client certificates (remove -read-listen)"))
	}
	earlier := []string{listen}
	for _, l := range []struct{ flag, addr string }{{"admin-listen", a.AdminListen}, {"metrics-listen", a.MetricsListen}, {"read-listen", a.ReadListen}} {
		taken := slices.Contains(earlier, l.addr)
		earlier = append(earlier, l.addr)
		switch {
		case l.addr == "":
		case strings.HasSuffix(l.addr, ":0"): // any free port: never another's
		case taken:
			errs = append(errs, fmt.Errorf("%s %s is another listener's address: give each its own", l.flag, l.addr))
		default:
			if err := checkListen(l.addr); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", l.flag, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ClientAuth is the credentials sumd's clients send to a sumd server.
type ClientAuth struct {
	Auth string `flag:"auth" secret:"true" arg:"AUTH" help:"credentials for the server: none, basic:USER:PASSWORD_FILE, bearer:TOKEN_FILE or netrc[:FILE]; default: the .netrc the go command reads ($NETRC or ~/.netrc), if any"`
}

// ClientCert is the client certificate sumd's clients present to a server
// of sumd serve -tls-client-ca, which asks for one in the TLS handshake
// (and under -tls-client-auth require completes none without it).
type ClientCert struct {
	ClientCert string `flag:"client-cert" arg:"FILE" help:"PEM client certificate (its chain after it) to present to a server of sumd serve -tls-client-ca, with -client-key; presented to the URL's host alone, never to an https:// HTTPS_PROXY that asks nor to a host a redirect leads to; none: present none (sumd mirror forgets the one it remembers)"`
	ClientKey  string `flag:"client-key" secret:"true" arg:"FILE" help:"PEM private key of -client-cert: refused if other users may read it"`
}

// ClientCertNone is -client-cert none: no certificate, as -auth none is
// no credentials; a mirror that remembers one forgets it.
const ClientCertNone = "none"

// Presents reports whether c names a certificate to present.
func (c *ClientCert) Presents() bool { return c.ClientCert != "" && c.ClientCert != ClientCertNone }

// Validate reports a certificate without its key or a key without its
// certificate: each is useless alone.
func (c *ClientCert) Validate() error {
	switch {
	case c.ClientCert == ClientCertNone && c.ClientKey != "":
		return errors.New("client-key does not go with -client-cert none: none presents no certificate")
	case c.Presents() && c.ClientKey == "":
		return errors.New("client-cert needs -client-key: the certificate's private key")
	case c.ClientCert == "" && c.ClientKey != "":
		return errors.New("client-key needs -client-cert: the certificate of the key")
	}
	return nil
}
