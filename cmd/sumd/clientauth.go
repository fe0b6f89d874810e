package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/redirect"
	"github.com/sumd-project/sumd/internal/tlscert"
	"github.com/sumd-project/sumd/internal/upstream"
)

// clientAuth parses -auth for a client of the sumd server at base: the
// credentials sent as the go command sends them (default: its .netrc).
func clientAuth(spec string) (upstream.ClientCreds, error) {
	a, err := upstream.ClientAuth(spec)
	if err != nil {
		return upstream.ClientCreds{}, usageError(fmt.Errorf("auth: %w", err), secretHint(err,
			"use none, basic:USER:PASSWORD_FILE, bearer:TOKEN_FILE or netrc[:FILE]; without -auth, the .netrc the go command reads"))
	}
	return a, nil
}

// authError is the usage error for option, a credentials option (-auth,
// -upstream-auth, -recheck-auth) that could not be read: a password or
// token file other users may read gets the chmod hint of every secret.
func authError(option string, err error) error {
	return usageError(fmt.Errorf("%s: %w", option, err), secretHint(err, "use none, basic:USER:FILE, bearer:FILE, netrc[:FILE], or HOST=AUTH,HOST=AUTH"))
}

// authClient returns an HTTP client sending a's credentials, and cert if
// not nil, to the host of base, and to no other, following redirects as
// the go command does (none from https to http, where they would go out
// in clear). A server that asks for a certificate and drops the
// connection gets a hint naming -client-cert (certHint).
func authClient(a upstream.ClientCreds, cert *tlscert.Reloader, base string, timeout time.Duration) *http.Client {
	c, _ := authCertClient(a, cert, base, timeout)
	return c
}

// authCertClient is authClient, and its transport of the host of base,
// which says whether cert was presented there (a server without
// -tls-client-ca never asks for it).
func authCertClient(a upstream.ClientCreds, cert *tlscert.Reloader, base string, timeout time.Duration) (*http.Client, *hostTransport) {
	host := hostOf(base)
	ct := certTransport(cert, host)
	return &http.Client{Timeout: timeout, Transport: a.Transport(ct, host), CheckRedirect: redirect.Check}, ct
}

// hostOf is the host:port of the URL base, "" if it does not parse, with
// an empty port dropped ("host:" is host), as net/http drops it from a
// request's host (NewRequest): else no request would match it.
func hostOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	if strings.LastIndex(u.Host, ":") > strings.LastIndex(u.Host, "]") {
		return strings.TrimSuffix(u.Host, ":")
	}
	return u.Host
}

// clientCert loads the pair of -client-cert and -client-key, nil if
// neither is set or -client-cert is none. The key is a secret like the
// signing key: refused if other users may access it. The pair is read
// again when its files change (tlscert.Reloader), logged to
// slog.Default(): a client that runs as long as the process presents a
// renewed certificate without a restart.
func clientCert(c config.ClientCert) (*tlscert.Reloader, error) {
	return loggedClientCert(c, slog.Default())
}

// loggedClientCert is clientCert logging a renewal, or renewed files
// that cannot be used, to logger.
func loggedClientCert(c config.ClientCert, logger *slog.Logger) (*tlscert.Reloader, error) {
	if !c.Presents() {
		return nil, nil
	}
	// Read once: the error names the file that could not be read.
	r, err := tlscert.NewClient(c.ClientCert, c.ClientKey, logger)
	var fe *tlscert.FileError
	switch {
	case errors.As(err, &fe) && !fe.Key:
		return nil, usageError(fmt.Errorf("client-cert: %w", fe.Err), "give the PEM file of the client certificate the server's -tls-client-ca issued")
	case errors.As(err, &fe):
		return nil, usageError(namedFile("client-key", fe.Err), secretHint(fe.Err, "give the PEM file of -client-cert's private key"))
	case err != nil:
		return nil, usageError(fmt.Errorf("failed to load -client-cert and -client-key: %w", err), "give a PEM certificate and the PEM private key of that certificate")
	}
	return r, nil
}

// certTransport returns a transport presenting cert (nil: none), when the
// server asks for one, to host (host:port) alone. A TLS client sends its
// certificate to whichever server asks in the handshake: a transport of
// its own for host keeps it from a host a redirect leads to, as the
// credentials are (upstream.ClientCreds).
func certTransport(cert *tlscert.Reloader, host string) *hostTransport {
	return hostCertTransport(http.DefaultTransport.(*http.Transport), cert, host)
}

// sumdbCertTransport is sumdbclient.Options.Transport for a client of the
// database at base presenting cert (nil: none, but a server asking for
// one gets certHint's hint): certTransport over the client's own.
func sumdbCertTransport(cert *tlscert.Reloader, base string) func(*http.Transport) http.RoundTripper {
	host := hostOf(base)
	return func(tr *http.Transport) http.RoundTripper { return hostCertTransport(tr, cert, host) }
}

// hostCertTransport is certTransport over base, which carries the
// requests to other hosts, and a clone of it those to host.
func hostCertTransport(base *http.Transport, cert *tlscert.Reloader, host string) *hostTransport {
	t := &hostTransport{host: host, other: base, given: cert != nil}
	tr := base.Clone()
	// base's TLS settings, if any, kept: sumd sets none (the system's
	// roots, or SSL_CERT_FILE, as without a certificate); a test sets
	// its CA's.
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = new(tls.Config)
	}
	tr.TLSClientConfig.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		t.asked.Store(true)
		if cert == nil {
			return new(tls.Certificate), nil // none: the server decides
		}
		return cert.GetClientCertificate(cri)
	}
	tr.DialTLSContext = proxyHopTLS(tr, host)
	t.own = tr
	return t
}

// proxyHopTLS is a transport's DialTLSContext that presents no client
// certificate to an https:// proxy (HTTPS_PROXY). net/http makes the first
// TLS hop of a connection with it, to the origin or, through an https://
// proxy, to the proxy, and the origin's behind the proxy's tunnel (CONNECT)
// with TLSClientConfig: without it, TLSClientConfig's certificate went to
// a proxy that asked too. So the hop presents it only when it reaches
// host (host:port, or host for port 443) itself. The rest is as net/http
// makes the hop: tr's dialer, TLS settings and handshake timeout.
func proxyHopTLS(tr *http.Transport, host string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	origin := dialAddr(host)
	dial := tr.DialContext
	if dial == nil {
		dial = new(net.Dialer).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := tr.TLSClientConfig.Clone()
		if !strings.EqualFold(addr, origin) {
			cfg.GetClientCertificate = nil // a proxy: presents none
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		if tr.TLSHandshakeTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, tr.TLSHandshakeTimeout)
			defer cancel()
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return tc, nil
	}
}

// dialAddr is the address net/http dials for an https:// URL's host
// (its canonicalAddr): the name in its ASCII form (an internationalized
// one's xn-- labels) and the port, 443 if none is given or it is empty
// ("host:"). A hop is told to reach the origin by that address alone.
func dialAddr(host string) string {
	u := &url.URL{Host: host}
	name, port := u.Hostname(), u.Port()
	if !isASCII(name) {
		if a, err := idna.Lookup.ToASCII(name); err == nil {
			name = a
		}
	}
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(name, port)
}

// isASCII reports whether s is all ASCII, which net/http leaves as it is.
func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hostTransport sends the requests for host through own, the others
// through other, and notes whether host asked for a client certificate.
type hostTransport struct {
	host       string
	own, other http.RoundTripper
	given      bool        // own presents a certificate
	asked      atomic.Bool // a handshake with host asked for one
	// answered: host has answered a request, so it took the handshake
	// with this certificate (or none); a connection it drops later is a
	// restart or a fault, not a refusal. Else a server that asks every
	// client (-tls-client-auth verify-if-given) would have every dropped
	// connection blamed on -client-cert.
	answered atomic.Bool
}

var _ http.RoundTripper = (*hostTransport)(nil)

// presented reports whether the certificate was presented to host: given,
// and asked for in a handshake.
func (t *hostTransport) presented() bool { return t.given && t.asked.Load() }

func (t *hostTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host {
		return t.other.RoundTrip(req)
	}
	resp, err := t.own.RoundTrip(req)
	if err == nil {
		t.answered.Store(true)
	}
	if err != nil && t.asked.Load() && !t.answered.Load() && droppedAfterHandshake(err) {
		return nil, &clientCertError{err: err, given: t.given}
	}
	return resp, err
}

// droppedAfterHandshake reports whether err is the server ending the
// connection once the handshake is done: its alert, or a write or read
// of the request that met the connection it closed after sending it
// (which of them the client sees is a race), or over HTTP/2 the
// connection's setup failing so, which net/http reports by this text
// alone, without the cause.
func droppedAfterHandshake(err error) bool {
	return remoteAlert(err) != "" || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "http2: client conn could not be established")
}

// A clientCertError is a request a server that asked for a client
// certificate failed by ending the connection: under TLS 1.3 the server
// checks the certificate (or its absence) after the client's handshake
// is done, so the client learns of a refusal only on the request.
type clientCertError struct {
	err   error
	given bool // -client-cert was presented
}

func (e *clientCertError) Error() string { return e.err.Error() }
func (e *clientCertError) Unwrap() error { return e.err }

// refusedHint explains a 401 or 403 of a sumd server to one of our clients.
func refusedHint(status int, needs string) string {
	if status == http.StatusUnauthorized {
		return "the server needs credentials: pass -auth basic:USER:FILE or bearer:FILE, or add the host to the .netrc the go command reads"
	}
	return "the server refused these credentials: " + needs
}

// certHint is the hint for err when the server's TLS certificate did not
// verify, or the server wanted a client certificate or refused ours, ""
// otherwise: checking the URL does not help there. A private CA or a
// self-signed certificate is the usual cause; sumd trusts what the go
// command trusts, the system's roots or SSL_CERT_FILE.
func certHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var cc *clientCertError
	switch {
	case errors.As(err, &cc) && !cc.given:
		// sumd serve -tls-client-auth require, to a client that
		// presented none.
		return "the server asks for a client certificate: pass one its -tls-client-ca issued with -client-cert FILE -client-key FILE"
	case errors.As(err, &cc):
		return "the server refused the client certificate: check that a CA of its -tls-client-ca issued -client-cert, for client authentication, and that it has not expired"
	case errors.As(err, &unknown) && (runtime.GOOS == "darwin" || runtime.GOOS == "windows"):
		// Go verifies with the platform's verifier there, which
		// SSL_CERT_FILE does not reach.
		return "the server's TLS certificate is not signed by a CA this system trusts: add its CA (or the server's own certificate, if self-signed) to the system's trust store, as the go command needs too"
	case errors.As(err, &unknown):
		return "the server's TLS certificate is not signed by a CA this system trusts: trust its CA with SSL_CERT_FILE=ca.pem " +
			"(its PEM certificate, or the server's own if self-signed), as the go command does"
	case errors.As(err, &verify):
		return "the server's TLS certificate did not verify (expired, or not issued for the host of the URL): check the URL's host and the server's -tls-cert"
	}
	return ""
}

// remoteAlert is the description of the TLS alert the server sent, as
// crypto/tls words it ("certificate required"), if err is one; else "".
// crypto/tls reports a received alert as a *net.OpError whose Op is
// "remote error", around a value of an unexported type.
func remoteAlert(err error) string {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return ""
	}
	return strings.TrimPrefix(op.Err.Error(), "tls: ")
}
