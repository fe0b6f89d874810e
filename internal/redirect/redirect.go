// Package redirect is the go command's redirect policy for sumd's HTTP
// clients (module proxies, checksum databases, TUF repositories): no
// redirect from https to another scheme, at most ten, and no credentials
// carried to another origin. net/http alone follows any redirect and keeps
// the Authorization header whenever the host name matches, whatever the
// scheme or port, so a server could send a client's token in clear.
package redirect

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
)

// Max is how many redirects one request follows: the go command's
// limit (cmd/go/internal/web), and net/http's default.
const Max = 10

// ErrInsecure is a redirect from https to another scheme, which
// the go command refuses ("redirected from secure URL … to insecure URL"):
// what comes over plain HTTP must not be recorded for ever, and the
// credentials must not go out in clear.
var ErrInsecure = errors.New("redirected from a secure URL to an insecure one")

// ErrTooMany is a request redirected more than Max times.
var ErrTooMany = fmt.Errorf("stopped after %d redirects", Max)

// Client returns c, or a client of sumd's own if c is nil, with
// Check as its redirect policy unless c has one.
func Client(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	} else {
		c2 := *c
		c = &c2
	}
	if c.CheckRedirect == nil {
		c.CheckRedirect = Check
	}
	return c
}

// Check is the go command's redirect policy (cmd/go/internal/web's
// securityPreservingHTTPClient): no redirect from https to another scheme,
// at most Max. It also drops the credentials sumd added when the
// redirect leaves the origin (scheme, host or port) they were meant for:
// net/http keeps the Authorization header whenever the host name matches,
// whatever the scheme or port.
func Check(req *http.Request, via []*http.Request) error {
	first, last := via[0].URL, via[len(via)-1].URL
	if first.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: from %s to %s", ErrInsecure, last.Redacted(), req.URL.Redacted())
	}
	if len(via) >= Max {
		return ErrTooMany
	}
	if origin(req.URL) != origin(first) {
		req.Header.Del("Authorization")
	}
	return nil
}

// origin is u's scheme, host and port, the port made explicit.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port)
}
