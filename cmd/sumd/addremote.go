package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/upstream"
)

// addRemote adds a module version through the admin API of a running sumd:
// fetched from its upstream (MODULE@VERSION alone) or uploaded (with a
// directory or zip).
func addRemote(cfg *config.Add, args []string, stdout io.Writer) error {
	const usageHint = "use: sumd add -server URL [-token-file FILE | -auth AUTH] MODULE@VERSION [DIR|ZIP], or -gosum FILE|DIR"
	if cfg.ProxyDir != "" {
		return usageError(errors.New("-proxy-dir works on the database file, not with -server"), "publish the module in your module proxy, or stop the server and run sumd add -proxy-dir DIR on its database")
	}
	if len(args) != 1 && len(args) != 2 {
		return usageError(fmt.Errorf("want MODULE@VERSION and optionally a directory or zip, got %d arguments", len(args)), usageHint)
	}
	c, err := adminClient(cfg)
	if err != nil {
		return err
	}
	m, err := parseModuleArg(args[0])
	if err != nil {
		return err
	}
	var res *admin.Result
	if len(args) == 1 {
		res, err = c.Fetch(context.Background(), m)
	} else {
		res, err = upload(c, m, args[1])
	}
	if err != nil {
		return remoteError(err)
	}
	verb := "recorded"
	if res.Present {
		verb = "already recorded, with the same hashes," // else a 409
	}
	fmt.Fprintf(stdout, "%s %s as record %d (%s)\n", m, verb, res.ID, treeSizeNote(res.TreeSize))
	return nil
}

// treeSizeNote says the size of the tree holding what was added: 0 is a
// server's answer that stored the records but could not read its signed
// head (the admin API leaves tree_size out then).
func treeSizeNote(size int64) string {
	if size == 0 {
		return "tree size not known: the server stored the records but could not read its signed head"
	}
	return fmt.Sprintf("tree size %d", size)
}

// adminClient returns the client of the server's admin API, with the
// admin token of -token-file, or else the credentials of -auth (an admin's,
// for a server with -read-auth; default: the go command's .netrc).
func adminClient(cfg *config.Add) (*admin.Client, error) {
	return adminClientOf(cfg.Server, cfg.TokenFile, cfg.Auth, cfg.ClientCert, cfg.InsecureHTTP.InsecureHTTP)
}

// adminClientOf is adminClient for any command with -server, -token-file,
// -auth, -client-cert and -insecure-http.
func adminClientOf(server, tokenFile, authSpec string, cc config.ClientCert, insecure bool) (*admin.Client, error) {
	if err := checkServerURL(server); err != nil {
		return nil, err
	}
	c := &admin.Client{URL: strings.TrimSuffix(server, "/")}
	cert, err := clientCert(cc)
	if err != nil {
		return nil, err
	}
	// The admin client follows no redirect: a certificate goes to the
	// server's host alone. Without one, the transport still notes a
	// server that asks for one (certHint).
	c.HTTPClient = &http.Client{Transport: certTransport(cert, hostOf(server))}
	switch {
	case tokenFile != "" && authSpec != "":
		return nil, usageError(errors.New("-token-file and -auth both name the credentials"), "pass the admin token with -token-file, or an admin's credentials with -auth")
	case tokenFile != "":
		if err := checkTransport(server, "the admin token", insecure); err != nil {
			return nil, err
		}
		token, err := admin.ReadTokenFile(tokenFile)
		if err != nil {
			return nil, withHint(namedFile("token-file", err), secretHint(err, "pass the file holding the admin token the server reads (its -admin-token-file)"))
		}
		c.Token = token
		return c, nil
	}
	auth, err := clientAuth(authSpec)
	if err != nil {
		return nil, err
	}
	c.Auth = auth.Apply
	// Explicit credentials only: the .netrc by default sends none over
	// plain HTTP, and asks for no opt-in.
	if authSpec != "" && auth.Kind != upstream.AuthNone {
		if err := checkTransport(server, "the -auth credentials", insecure); err != nil {
			return nil, err
		}
		if insecure {
			c.Auth = insecureApply(auth)
		}
	}
	return c, nil
}

// insecureApply is auth.Apply for a server that -insecure-http lets have
// them over plain HTTP. Apply refuses explicit credentials over http:// to
// another host, as the go command does, and knows no opt-in: they are
// added to a copy of the request made https://, and copied from it (Apply
// sets the Authorization header alone).
func insecureApply(auth upstream.ClientCreds) func(*http.Request) error {
	return func(req *http.Request) error {
		if req.URL.Scheme != "http" {
			return auth.Apply(req)
		}
		r := req.Clone(req.Context())
		r.URL.Scheme = "https"
		if err := auth.Apply(r); err != nil {
			return err
		}
		if v := r.Header.Get("Authorization"); v != "" {
			req.Header.Set("Authorization", v)
		}
		return nil
	}
}

// checkServerURL refuses a -server that is not the base URL of a sumd:
// http:// or https://, a host, and no query or fragment (the API's paths
// are appended to it). Such a value (a host:port as -listen takes) failed
// only at the first request, with net/url's or net/http's words, and for
// sumd add -gosum after the files were sorted.
func checkServerURL(server string) error {
	const hint = "give the base URL of the running sumd serve, e.g. -server https://sumd.corp.example (or http://127.0.0.1:8080 on this machine)"
	u, err := url.Parse(server)
	switch {
	case err != nil:
		return usageError(errors.New("-server is not a URL"), hint) // the value is not repeated: it may hold a password
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return usageError(fmt.Errorf("-server %q is not an http:// or https:// URL with a host", u.Redacted()), hint)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return usageError(fmt.Errorf("-server %q has a ?query or #fragment, where the admin API's paths are appended", u.Redacted()), hint)
	}
	return nil
}

// checkTransport refuses to send what (the admin token, -auth's
// credentials) to server over plain HTTP unless it is on this machine (a
// loopback address) or insecure (-insecure-http) says the network is
// trusted: anyone on the way could read them, and with them record
// versions. It is asked before anything is read or sent: -auth's were
// refused only at the first request (upstream.ClientCreds.Apply), and for
// sumd add -gosum after the files were sorted.
func checkTransport(server, what string, insecure bool) error {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "http" || insecure || isLoopbackHost(u.Hostname()) {
		return nil // a bad URL is checkServerURL's to refuse
	}
	return usageError(fmt.Errorf("refusing to send %s to %s in clear (-server is http://)", what, u.Host),
		"use https:// (sumd serve -tls-cert, or a TLS proxy in front of it); on a network you trust, pass -insecure-http")
}

// isLoopbackHost reports whether host names this machine: localhost or a
// loopback address.
func isLoopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// upload sends a module zip, zipping a directory first as the go command
// would.
func upload(c *admin.Client, m module.Version, src string) (*admin.Result, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, withHint(fmt.Errorf("failed to read module source: %w", err), "give a module directory (holding go.mod) or a module zip")
	}
	zipPath := src
	if fi.IsDir() {
		tmp, err := os.MkdirTemp("", "sumd-upload-*")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		zipPath = filepath.Join(tmp, "module.zip")
		if err := zipDir(m, src, zipPath); err != nil {
			return nil, withHint(err, "nothing was added; the go command would refuse this module too")
		}
	}
	return c.Upload(context.Background(), m, zipPath, "")
}

func zipDir(m module.Version, dir, zipPath string) error {
	f, err := os.Create(zipPath)
	if err != nil {
		return err
	}
	if err := modzip.CreateFromDir(f, m, dir); err != nil {
		f.Close()
		return fmt.Errorf("failed to zip %s: %w", dir, err)
	}
	return f.Close()
}

// parseModuleArg parses and checks MODULE@VERSION.
func parseModuleArg(arg string) (module.Version, error) {
	path, version, ok := strings.Cut(arg, "@")
	if !ok {
		return module.Version{}, usageError(fmt.Errorf("%q is not MODULE@VERSION", arg), "e.g. sumd add example.com/m@v1.2.3 ./m")
	}
	if err := gosum.CheckNewModule(path, version); err != nil {
		return module.Version{}, withHint(err, "give the module path from go.mod and a canonical version such as v1.2.3")
	}
	return module.Version{Path: path, Version: version}, nil
}

// dropped reports whether err is a connection the server closed or reset
// with no answer: the request may have been read, and acted on.
func dropped(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// redirectHint says what to do about a redirect answer of the admin API,
// which the client does not follow; "" if err is not one.
func redirectHint(err error) string {
	var re *admin.RedirectError
	switch {
	case !errors.As(err, &re):
		return ""
	case re.Base != "":
		return "nothing was sent there (the credentials stay with the URL they are for): if you trust it, use " + re.Base + " as -server"
	}
	return "nothing was sent there (the credentials stay with the URL they are for): give the server's own URL as -server"
}

// remoteError explains an admin API failure.
func remoteError(err error) error {
	var ae *admin.Error
	switch {
	case redirectHint(err) != "":
		return withHint(err, redirectHint(err))
	case errors.As(err, new(*clientCertError)):
		// Before dropped: a server of -tls-client-auth require drops
		// the connection of a client without a certificate.
		return withHint(err, certHint(err))
	case dropped(err):
		return withHint(err, "the server dropped the connection after the request was sent (stopped or restarted?): whether it recorded this request's versions is not known; "+
			"once it runs, run the same command again (safe: what was recorded is kept and never added twice)")
	case !errors.As(err, &ae):
		return withHint(err, cmp.Or(certHint(err), "check -server: it must be the URL of a running sumd serve with -admin-token-file"))
	}
	switch ae.Status {
	case http.StatusUnauthorized:
		return withHint(err, "the credentials are missing or wrong: -token-file must hold the server's -admin-token-file, or -auth (or the .netrc) an admin's credentials")
	case http.StatusForbidden:
		return withHint(err, "these credentials are not an admin's: use the admin token (-token-file) or an admin's credentials")
	case http.StatusNotFound:
		if ae.Message == admin.MirrorsOnlyText {
			return withHint(err, "this server serves mirrors only: add to the sumd serve that holds the log (-server is its URL)")
		}
		return withHint(err, "the server's admin API is off, or on its own listener (-admin-listen): start it with -admin-token-file or -read-auth")
	case http.StatusConflict:
		return withHint(err, neverChangesHint)
	case http.StatusNotImplemented:
		return withHint(err, "the server has no -upstream to fetch from: upload the module with sumd add -server URL MODULE@VERSION DIR|ZIP")
	case http.StatusGone:
		return withHint(err, "the server's upstream checksum database disagrees with these hashes or lacks this version (the server cross-checks public modules): find out which is right, and remove the version's lines to add the others")
	case http.StatusUnprocessableEntity:
		return withHint(err, "what was uploaded is not a valid module of this version (the server says why above): a zip's entries must be under MODULE@VERSION/, as golang.org/x/mod/zip makes them, and a go.mod must declare MODULE; from a directory sumd makes the zip, so fix what the reason names there")
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return withHint(err, "the server or its upstream is busy or unreachable (on a 503, fetches and go.sum adds were tried four times); try again later: running the same command again is safe, what was recorded is kept and never added twice")
	case http.StatusInsufficientStorage:
		return withHint(err, "nothing from this request was added: the server's -tmp-dir lacks the room for the uploaded zip (the error says how much); once its operator frees space there, run the same command again")
	case http.StatusInternalServerError:
		return withHint(err, "the server failed (its log says why), maybe after storing: whether this request's versions were recorded is not known; once it runs again, run the same command again (safe: what was recorded is kept and never added twice)")
	}
	if ae.Status >= 500 {
		// Not one of sumd's: a proxy in front answers some (Cloudflare's
		// 524, "a timeout occurred") after sumd took the request, which
		// it may have recorded.
		return withHint(err, "the server, or a proxy in front of it, failed, maybe after the request reached sumd: whether this request's versions were recorded is not known; "+
			"once it runs again, run the same command again (safe: what was recorded is kept and never added twice)")
	}
	return withHint(err, "nothing from this request was added")
}
