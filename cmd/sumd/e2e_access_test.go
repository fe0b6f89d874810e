package main

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testcert"
	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// An accessSite is a sumd serving HTTPS with basic authentication and
// recording from an upstream proxy: the users of htpasswd are dev (a
// reader), team (a reader limited to example.com/plain), auditor and boss
// (an admin), each with the password <name>-pw.
type accessSite struct {
	dir, vkey, proxyURL string
	ca                  *testcert.CA
	s                   *sumdServer
	host                string // 127.0.0.1:PORT
}

func newAccessSite(t *testing.T, extra ...string) *accessSite {
	htpasswd := testenv.LookPath(t, "htpasswd")
	a := &accessSite{dir: t.TempDir(), ca: testcert.New(t)}
	var err error
	a.proxyURL, err = testproxy.Build(filepath.Join(a.dir, "proxy"), special)
	if err != nil {
		t.Fatal(err)
	}
	a.vkey = strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(a.dir, "keys")))
	file := filepath.Join(a.dir, "htpasswd")
	for i, u := range []string{"dev", "team", "auditor", "boss"} {
		args := []string{"-B", "-b", file, u, u + "-pw"}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(htpasswd, args...).CombinedOutput(); err != nil {
			t.Fatalf("htpasswd: %v\n%s", err, out)
		}
	}
	// Roles and patterns follow the hash, as the file format documents.
	data, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for i, suffix := range []string{"", ":reader:example.com/plain", ":auditor", ":admin"} {
		lines[i] += suffix
	}
	writeFile(t, file, []byte(strings.Join(lines, "\n")+"\n"))
	os.Chmod(file, 0o600)
	srv := a.ca.Server(t)
	a.s = startServer(t, append([]string{"-create", "-db", filepath.Join(a.dir, "sumd.db"), "-key", filepath.Join(a.dir, "keys", e2eName+".key"),
		"-tls-cert", srv.CertFile, "-tls-key", srv.KeyFile, "-read-auth", "basic", "-read-auth-file", file,
		"-upstream", a.proxyURL}, extra...)...)
	a.host = strings.TrimPrefix(a.s.url, "https://")
	return a
}

// netrc writes a .netrc with user's credentials for the server.
func (a *accessSite) netrc(t *testing.T, user string) string {
	return writeFile(t, filepath.Join(a.dir, user+".netrc"), fmt.Appendf(nil, "machine %s login %s password %s-pw\n", a.host, user, user))
}

// password writes user's password to a file, for -auth basic:USER:FILE.
func (a *accessSite) password(t *testing.T, user string) string {
	f := writeFile(t, filepath.Join(a.dir, user+".pw"), []byte(user+"-pw\n"))
	os.Chmod(f, 0o600)
	return f
}

// goCmd is the go command trusting the site's CA, with netrc as its
// .netrc, and GOSUMDB and GOPROXY as given.
func (a *accessSite) goCmd(t *testing.T, netrc, gosumdb, goproxy string) *testproxy.Go {
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+goproxy, "GOSUMDB="+gosumdb, "SSL_CERT_FILE="+a.ca.File, "NETRC="+netrc)
	return g
}

// client is an HTTP client trusting the site, as user (or anonymous).
func (a *accessSite) get(t *testing.T, path, user string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", a.s.url+path, nil)
	if user != "" {
		req.SetBasicAuth(user, user+"-pw")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: a.ca.Pool()}}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestGoCommandAuth is the proof of authenticated reads with the real go
// command: over HTTPS with credentials from NETRC it verifies downloads,
// directly and through GOPROXY discovery, and without them it fails naming
// the 401. A reader limited to patterns gets 404s outside them that fetch
// nothing; sumd's own clients take credentials the same way.
func TestGoCommandAuth(t *testing.T) {
	a := newAccessSite(t)
	gosumdb := a.vkey + " " + a.s.url
	dev, nobody := a.netrc(t, "dev"), filepath.Join(a.dir, "none.netrc")

	t.Run("direct", func(t *testing.T) {
		download(t, a.goCmd(t, dev, gosumdb, a.proxyURL), special[0], special[1])
		out, err := a.goCmd(t, nobody, gosumdb, a.proxyURL).Run(append([]string{"mod", "download"}, args(special[2])...)...)
		if err == nil || !strings.Contains(out, "401 Unauthorized") || !strings.Contains(out, "credentials required") {
			t.Fatalf("go mod download without credentials: %v\n%s\nwant a failure naming 401 and sumd's reason", err, out)
		}
	})
	t.Run("GOAUTH command", func(t *testing.T) {
		// A credential helper instead of a .netrc, as docs/access.md shows.
		script := writeFile(t, filepath.Join(a.dir, "goauth"), fmt.Appendf(nil,
			"#!/bin/sh\nprintf 'https://%s\\n\\nAuthorization: Basic %s\\n\\n'\n", a.host, base64.StdEncoding.EncodeToString([]byte("dev:dev-pw"))))
		os.Chmod(script, 0o755)
		g := a.goCmd(t, nobody, gosumdb, a.proxyURL)
		g.Env = append(g.Env, "GOAUTH=netrc;"+script)
		download(t, g, special[2])
	})
	t.Run("GOPROXY discovery", func(t *testing.T) {
		// sumd first in GOPROXY, GOSUMDB without a URL: the go command
		// probes /sumdb/<name>/supported with its credentials, then falls
		// through to the real proxy for module files on sumd's 404.
		goproxy := a.s.url + "," + a.proxyURL
		download(t, a.goCmd(t, dev, a.vkey, goproxy), special[0], special[2])
		if !regexp.MustCompile(`path=/sumdb/` + regexp.QuoteMeta(e2eName) + `/lookup/\S+ .* credential=dev`).MatchString(a.s.stderr.String()) {
			t.Errorf("sumd logged no lookup by dev under /sumdb/%s/:\n%s", e2eName, a.s.stderr)
		}
		out, err := a.goCmd(t, nobody, a.vkey, goproxy).Run(append([]string{"mod", "download"}, args(special[3])...)...)
		if err == nil || !strings.Contains(out, "401 Unauthorized") {
			t.Fatalf("go mod download through GOPROXY without credentials: %v\n%s\nwant a failure naming 401", err, out)
		}
	})
	t.Run("limited reader", func(t *testing.T) {
		team := a.netrc(t, "team")
		download(t, a.goCmd(t, team, gosumdb, a.proxyURL), special[0], special[4]) // example.com/plain, example.com/plain/v2
		size := siteTreeSize(t, a)
		// example.com/Upper/m is recorded (by dev, above), example.com/old
		// is not: the team reader cannot tell, and nothing is fetched.
		for _, m := range []testproxy.Module{special[1], special[3]} {
			out, err := a.goCmd(t, team, gosumdb, a.proxyURL).Run(append([]string{"mod", "download"}, args(m)...)...)
			want := "404 Not Found\n\tserver response: not found: " + m.Path + "@" + m.Version + ": no record in checksum database " + e2eName
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("team's go mod download of %s: %v\n%s\nwant %q", m.Path, err, out, want)
			}
		}
		if n := siteTreeSize(t, a); n != size {
			t.Errorf("tree grew from %d to %d on the limited reader's lookups", size, n)
		}
		if regexp.MustCompile(`msg="(recorded from upstream|version not recorded)" module=example.com/old `).MatchString(a.s.stderr.String()) {
			t.Errorf("a limited reader's lookup was fetched upstream:\n%s", a.s.stderr)
		}
	})
	t.Run("refused", func(t *testing.T) {
		data := fmt.Sprintf("/tile/8/data/000.p/%d", siteTreeSize(t, a))
		for _, c := range []struct {
			path, user string
			code       int
			text       string
		}{
			{data, "dev", 403, "data tiles need the auditor role"},
			{data, "team", 403, "data tiles need the auditor role"},
			{data, "auditor", 200, "go.mod h1:"},
			{"/latest?access_token=dev-pw", "", 401, "credentials in the URL query are refused"},
			{"/latest", "", 401, "credentials required"},
			{"/status", "dev", 403, "the status page needs the auditor role"},
			{"/healthz", "", 200, "ok"},
		} {
			if code, body := a.get(t, c.path, c.user); code != c.code || !strings.Contains(body, c.text) {
				t.Errorf("GET %s as %q: %d %q, want %d %q", c.path, c.user, code, body, c.code, c.text)
			}
		}
	})
	t.Run("our clients", func(t *testing.T) {
		env := []string{"SSL_CERT_FILE=" + a.ca.File, "NETRC=" + dev}
		// sumd verify with the reader's .netrc: the signed head and hash
		// tiles are a reader's; -full reads data tiles, an auditor's.
		if out, errOut, code := sumdCode(t, env, "verify", "-url", a.s.url, "-key", a.vkey); code != 0 {
			t.Errorf("verify as a reader: exit %d\n%s%s", code, out, errOut)
		}
		out, errOut, code := sumdCode(t, env, "verify", "-url", a.s.url, "-key", a.vkey, "-full")
		if code != 2 || !strings.Contains(out+errOut, "403 Forbidden: data tiles need the auditor role") || !strings.Contains(errOut, "hint: the server refused these credentials") {
			t.Errorf("verify -full as a reader: exit %d\n%s%s\nwant exit 2 naming the 403", code, out, errOut)
		}
		out, errOut, code = sumdCode(t, env, "verify", "-url", a.s.url, "-key", a.vkey, "-full", "-auth", "basic:auditor:"+a.password(t, "auditor"))
		if code != 0 || !strings.Contains(out, "records   ") {
			t.Errorf("verify -full as an auditor: exit %d\n%s%s", code, out, errOut)
		}
		if _, errOut, code := sumdCode(t, env, "status", "-url", a.s.url); code == 0 || !strings.Contains(errOut, "403") {
			t.Errorf("status as a reader: exit %d\n%s", code, errOut)
		}
		if out, errOut, code := sumdCode(t, env, "status", "-url", a.s.url, "-auth", "basic:auditor:"+a.password(t, "auditor")); code != 0 || !strings.Contains(out, e2eName) {
			t.Errorf("status as an auditor: exit %d\n%s%s", code, out, errOut)
		}

		mod := t.TempDir()
		writeFile(t, filepath.Join(mod, "go.mod"), []byte("module example.com/uploaded\n\ngo 1.21\n"))
		writeFile(t, filepath.Join(mod, "u.go"), []byte("package uploaded\n"))
		if _, errOut, code := sumdCode(t, env, "add", "-server", a.s.url, "example.com/uploaded@v1.0.0", mod); code != 1 || !strings.Contains(errOut, "403") || !strings.Contains(errOut, "hint: these credentials are not an admin's") {
			t.Errorf("add -server as a reader: exit %d\n%s", code, errOut)
		}
		out, errOut, code = sumdCode(t, env, "add", "-server", a.s.url, "-auth", "basic:boss:"+a.password(t, "boss"), "example.com/uploaded@v1.0.0", mod)
		m := regexp.MustCompile(`recorded as record (\d+)`).FindStringSubmatch(out)
		if code != 0 || m == nil {
			t.Fatalf("add -server as an admin: exit %d\n%s%s", code, out, errOut)
		}
		// The audit trail: the write names its credential, the client's
		// address and the record; so does a record added by a lookup.
		trail := regexp.MustCompile(`msg="admin: recorded" path=/admin/upload module=example.com/uploaded version=v1.0.0 id=` + m[1] + ` present=false credential=boss remote=127\.0\.0\.1:\d+`)
		if !trail.MatchString(a.s.stderr.String()) {
			t.Errorf("no audit line for the upload in the server log:\n%s", a.s.stderr)
		}
		if !regexp.MustCompile(`msg="recorded from upstream" module=example.com/plain .* credential=dev remote=127\.0\.0\.1:\d+`).MatchString(a.s.stderr.String()) {
			t.Errorf("no credential on the record added by a lookup:\n%s", a.s.stderr)
		}
		_, metrics := a.get(t, "/metrics", "auditor")
		for _, want := range []string{`sumd_admin_requests_total{credential="boss",outcome="200",route="upload"} 1`,
			`sumd_admin_requests_total{credential="dev",outcome="403",route="upload"} 1`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// siteTreeSize reads the site's tree size as its auditor.
func siteTreeSize(t *testing.T, a *accessSite) int {
	t.Helper()
	_, head := a.get(t, "/latest", "auditor")
	var n int
	fmt.Sscanf(strings.TrimPrefix(head, "go.sum database tree\n"), "%d", &n)
	return n
}

// TestServeMutualTLS: sumd serve with -tls-client-ca authenticates
// proxies and replicas by their certificates (verify-if-given: developers
// keep their tokens); an expired certificate fails the handshake; writes
// and metrics listen apart.
func TestServeMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.New(t)
	srv := ca.Server(t)
	proxy := ca.Client(t, "proxy", pkix.Name{CommonName: "athens.corp.example", Organization: []string{"Corp"}}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	expired := ca.Client(t, "expired", pkix.Name{CommonName: "athens.corp.example", Organization: []string{"Corp"}}, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	roles := writeFile(t, filepath.Join(dir, "roles"), []byte("athens:"+proxy.Subject+":auditor\n"))
	tokens := writeFile(t, filepath.Join(dir, "tokens"), []byte("ci:ci-token-0123456789abcdef\n"))
	os.Chmod(tokens, 0o600)
	os.Chmod(roles, 0o600)
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-tls-cert", srv.CertFile, "-tls-key", srv.KeyFile, "-tls-client-ca", ca.File, "-tls-client-roles", roles,
		"-tls-client-auth", "verify-if-given", "-read-auth", "bearer", "-read-auth-file", tokens, "-metrics-listen", "127.0.0.1:0")
	get := func(url string, cert *testcert.Cert, token string) (int, error) {
		cfg := &tls.Config{RootCAs: ca.Pool()}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{cert.Pair}
		}
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}).Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(s.url+"/tile/8/data/000.p/1", proxy, ""); code != 404 || err != nil {
		// An empty log has no data tile: the 404 is the server's, past the access layer.
		t.Errorf("the proxy's certificate on a data tile: %d %v, want the server's 404", code, err)
	}
	if code, err := get(s.url+"/latest", proxy, ""); code != 200 {
		t.Errorf("the proxy's certificate: %d %v", code, err)
	}
	if _, err := get(s.url+"/latest", expired, ""); err == nil {
		t.Error("an expired client certificate completed the handshake")
	}
	if code, _ := get(s.url+"/latest", nil, "ci-token-0123456789abcdef"); code != 200 {
		t.Errorf("a token without a certificate: %d", code)
	}
	if code, _ := get(s.url+"/latest", nil, ""); code != 401 {
		t.Errorf("no certificate, no token: %d, want 401", code)
	}
	if !strings.Contains(s.stderr.String(), "certificate has expired") {
		t.Errorf("the server log does not say why the handshake failed:\n%s", s.stderr)
	}
	m := regexp.MustCompile(`msg="serving metrics on a listener of its own" url=(\S+)`).FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("no metrics listener in the log:\n%s", s.stderr)
	}
	if code, err := get(m[1]+"/metrics", proxy, ""); code != 200 {
		t.Errorf("/metrics on its listener as an auditor: %d %v", code, err)
	}
	if code, _ := get(s.url+"/metrics", proxy, ""); code != 404 {
		t.Errorf("/metrics on the main listener: %d, want 404", code)
	}
}
