package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"time"

	"github.com/sumd-project/sumd/internal/redirect"
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

// authClient returns an HTTP client sending a's credentials to the host of
// base, and to no other, following redirects as the go command does (none
// from https to http, where they would go out in clear).
func authClient(a upstream.ClientCreds, base string, timeout time.Duration) *http.Client {
	host := ""
	if u, err := url.Parse(base); err == nil {
		host = u.Host
	}
	return &http.Client{Timeout: timeout, Transport: a.Transport(http.DefaultTransport, host), CheckRedirect: redirect.Check}
}

// refusedHint explains a 401 or 403 of a sumd server to one of our clients.
func refusedHint(status int, needs string) string {
	if status == http.StatusUnauthorized {
		return "the server needs credentials: pass -auth basic:USER:FILE or bearer:FILE, or add the host to the .netrc the go command reads"
	}
	return "the server refused these credentials: " + needs
}

// certHint is the hint for err when the server's TLS certificate did not
// verify, "" otherwise: checking the URL does not help there. A private
// CA or a self-signed certificate is the usual cause; sumd trusts what the
// go command trusts, the system's roots or SSL_CERT_FILE.
func certHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	switch {
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
