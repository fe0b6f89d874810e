package upstream

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
)

// ClientCreds are the credentials one of sumd's own clients of a sumd
// server (sumd verify, add -server, status, tuf gosumdb) sends, the way the
// go command sends its own.
type ClientCreds struct {
	Auth
	optional bool // a missing File means no credentials (the default .netrc)
}

// ClientAuth parses the -auth option of sumd's clients as ParseAuth does,
// except that "" is the go command's default: the .netrc file named by
// $NETRC, or ~/.netrc, if there is one.
func ClientAuth(s string) (ClientCreds, error) {
	if s == "" {
		return ClientCreds{Auth: Auth{Kind: AuthNetrc, File: defaultNetrc()}, optional: true}, nil
	}
	a, err := ParseAuth(s)
	if err != nil {
		return ClientCreds{}, err
	}
	return ClientCreds{Auth: a}, a.check()
}

// Apply adds a's credentials to req, reading its file again. Like the go
// command, it sends credentials over HTTPS only, or to a loopback address
// (a server on the same machine): otherwise explicit credentials fail the
// request, and the default .netrc adds nothing.
func (a ClientCreds) Apply(req *http.Request) error {
	if a.Kind == AuthNone {
		return nil
	}
	if req.URL.Scheme != "https" && !isLoopback(req.URL.String()) {
		if a.optional {
			return nil
		}
		return fmt.Errorf("refusing to send %s credentials to %s over plain HTTP: use https://", a.Kind, req.URL.Host)
	}
	err := a.apply(req)
	if a.optional && errors.Is(err, fs.ErrNotExist) {
		return nil // no ~/.netrc: no credentials, as for the go command
	}
	return err
}

// Transport returns base adding a's credentials (Apply) to the requests
// for host, the server's host:port, and to no other: a redirect elsewhere
// must not carry them.
func (a ClientCreds) Transport(base http.RoundTripper, host string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &authTransport{auth: a, base: base, host: host}
}

type authTransport struct {
	auth ClientCreds
	base http.RoundTripper
	host string
}

var _ http.RoundTripper = (*authTransport)(nil)

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host || req.Header.Get("Authorization") != "" {
		return t.base.RoundTrip(req)
	}
	// A RoundTripper must not modify the request it was given.
	req = req.Clone(req.Context())
	if err := t.auth.Apply(req); err != nil {
		return nil, err
	}
	return t.base.RoundTrip(req)
}
