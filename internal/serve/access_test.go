package serve

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/tlog"
)

// countingOps counts the lookups that reach the ops: with an upstream
// recorder, each could fetch.
type countingOps struct {
	sumdb.ServerOps
	lookups atomic.Int32
}

func (o *countingOps) Lookup(ctx context.Context, m module.Version) (int64, error) {
	o.lookups.Add(1)
	return o.ServerOps.Lookup(ctx, m)
}

// accessConfig is testConfig with basic authentication: reader, a reader
// limited to example.com/team/*, auditor and admin (password: the name).
func accessConfig(t *testing.T) (Config, <-chan string, *testlog.Buffer, string) {
	cfg, urls, logs := testConfig(t)
	var lines []string
	for _, u := range []string{"reader", "team::reader:example.com/team/*", "auditor::auditor", "boss::admin"} {
		name, rest, _ := strings.Cut(u, ":")
		h, _ := bcrypt.GenerateFromPassword([]byte(name), bcrypt.MinCost)
		line := name + ":" + string(h)
		if rest != "" {
			line += rest
		}
		lines = append(lines, line)
	}
	file := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Access = access.Config{Mode: access.ModeBasic, File: file}
	return cfg, urls, logs, file
}

func get(t *testing.T, url, user string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if user != "" {
		req.SetBasicAuth(user, user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// TestAccessHidesRecords: through the whole server, a limited reader's
// lookup of a recorded version outside its patterns is answered exactly as
// an absent version is, and never reaches the ops; an anonymous client
// cannot tell a recorded version from an absent one either.
func TestAccessHidesRecords(t *testing.T) {
	cfg, urls, _, _ := accessConfig(t)
	ops := new(countingOps)
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) {
		ops.ServerOps = l
		_, err := l.Add(context.Background(), gosum.Record{Path: "example.com/secret", Version: "v1.0.0",
			Hash: "h1:" + strings.Repeat("A", 43) + "=", GoMod: "h1:" + strings.Repeat("A", 43) + "="})
		return ops, nil, err
	}
	url := serveTest(t, cfg, urls)

	code, _, body := get(t, url+"/lookup/example.com/secret@v1.0.0", "reader")
	if code != 200 || !strings.Contains(body, "example.com/secret v1.0.0 h1:") {
		t.Fatalf("reader lookup of a recorded version: %d %q", code, body)
	}
	absentCode, absentHeader, absentBody := get(t, url+"/lookup/example.com/absent@v1.0.0", "reader")
	for _, path := range []string{"/lookup/example.com/secret@v1.0.0", "/sumdb/serve.example.com/lookup/example.com/secret@v1.0.0"} {
		code, header, body := get(t, url+path, "team")
		wantBody := strings.Replace(absentBody, "absent", "secret", 1)
		if code != absentCode || body != wantBody || !sameHeaders(header, absentHeader) {
			t.Errorf("team lookup %s: %d %v %q; an absent version: %d %v %q", path, code, header, body, absentCode, absentHeader, wantBody)
		}
	}
	if n := ops.lookups.Load(); n != 2 {
		t.Errorf("%d lookups reached the ops, want 2 (the reader's)", n)
	}
	c1, h1, b1 := get(t, url+"/lookup/example.com/secret@v1.0.0", "")
	c2, h2, b2 := get(t, url+"/lookup/example.com/absent@v1.0.0", "")
	if c1 != 401 || c1 != c2 || b1 != b2 || !sameHeaders(h1, h2) {
		t.Errorf("anonymous lookups of a recorded and an absent version differ: %d %q / %d %q", c1, b1, c2, b2)
	}
}

// sameHeaders compares headers but Date, which may tick between answers.
func sameHeaders(a, b http.Header) bool {
	a, b = a.Clone(), b.Clone()
	a.Del("Date")
	b.Del("Date")
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, ",") != strings.Join(b.Values(k), ",") {
			return false
		}
	}
	return true
}

var listenerURL = regexp.MustCompile(`msg="serving (admin API|metrics) on a listener of its own" url=(\S+)`)

// TestSeparateListeners: with -admin-listen and -metrics-listen, the admin
// API and the metrics are served there alone, behind the same access
// layer, and no longer on the main listener. The layer judges every path
// first, so another path gets the listener's 404 only with the credential
// it would need on the main listener, and a 401 or 403 without
// (docs/access.md says so).
func TestSeparateListeners(t *testing.T) {
	cfg, urls, logs, _ := accessConfig(t)
	cfg.AdminListen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	adm := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "admin handler\n") })
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) { return l, adm, nil }
	url := serveTest(t, cfg, urls)
	found := map[string]string{}
	for _, m := range listenerURL.FindAllStringSubmatch(logs.String(), -1) {
		found[m[1]] = m[2]
	}
	adminURL, metricsURL := found["admin API"], found["metrics"]
	if adminURL == "" || metricsURL == "" {
		t.Fatalf("no listener URLs in the log:\n%s", logs)
	}
	for _, c := range []struct {
		url, user string
		code      int
		text      string
	}{
		{adminURL + "/admin/fetch", "boss", 200, "admin handler"},
		{adminURL + "/admin/fetch", "auditor", 403, "the admin API needs the admin role"},
		{adminURL + "/admin/fetch", "", 401, "credentials required"},
		{adminURL + "/latest", "boss", 404, "this listener serves /admin/ only"},
		{adminURL + "/healthz", "", 404, "this listener serves /admin/ only"},
		{adminURL + "/latest", "", 401, "credentials required"},
		{adminURL + "/status", "reader", 403, "the status page needs the auditor role"},
		{metricsURL + "/latest", "", 401, "credentials required"},
		{metricsURL + "/tile/8/data/000", "reader", 403, "data tiles need the auditor role"},
		{metricsURL + "/metrics", "auditor", 200, "sumd_access_denied_total"},
		{metricsURL + "/metrics", "reader", 403, "the metrics need the auditor role"},
		{metricsURL + "/latest", "auditor", 404, "this listener serves /metrics only"},
		{url + "/admin/fetch", "boss", 404, "not a module proxy"},
		{url + "/metrics", "boss", 404, "not a module proxy"},
		{url + "/latest", "reader", 200, "go.sum database tree"},
		{url + "/healthz", "", 200, "ok"},
	} {
		if code, _, body := get(t, c.url, c.user); code != c.code || !strings.Contains(body, c.text) {
			t.Errorf("GET %s as %q: %d %q, want %d %q", c.url, c.user, code, body, c.code, c.text)
		}
	}
}

// TestSeparateListenersNotFound: the admin and metrics listeners answer a
// path not theirs as the main listener answers one it does not know, with
// Cache-Control no-store, also where no credentials are asked for (the
// access layer then sets no "private"): a cache must not keep a 404 that
// the operator's next configuration may turn into an answer.
func TestSeparateListenersNotFound(t *testing.T) {
	cfg, urls, logs := testConfig(t)
	cfg.AdminListen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	adm := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "admin handler\n") })
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) { return l, adm, nil }
	url := serveTest(t, cfg, urls)
	found := map[string]string{}
	for _, m := range listenerURL.FindAllStringSubmatch(logs.String(), -1) {
		found[m[1]] = m[2]
	}
	if found["admin API"] == "" || found["metrics"] == "" {
		t.Fatalf("no listener URLs in the log:\n%s", logs)
	}
	for _, u := range []string{url + "/nonesuch", found["admin API"] + "/latest", found["metrics"] + "/latest"} {
		if code, h, body := get(t, u, ""); code != 404 || h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d, Cache-Control %q, %q; want 404 no-store", u, code, h.Get("Cache-Control"), body)
		}
	}
}

// TestAccessStatus: a credential file that turns unusable refuses its
// credentials and shows in /healthz as degraded in the access part, naming
// no path, even when no client presented a credential since; fixing it
// clears both.
func TestAccessStatus(t *testing.T) {
	defer func(d time.Duration) { accessRefresh = d }(accessRefresh)
	accessRefresh = 50 * time.Millisecond
	cfg, urls, _, file := accessConfig(t)
	url := serveTest(t, cfg, urls)
	if code, _, _ := get(t, url+"/latest", "reader"); code != 200 {
		t.Fatalf("reader: %d", code)
	}
	os.Chmod(file, 0o644)
	// The file is stat'ed at most once a second. /healthz names the
	// part only to anonymous clients, and no credential of the file works.
	body := waitFor(t, url+"/healthz", "degraded: access (")
	if strings.Contains(body, file) {
		t.Errorf("/healthz = %q names the file's path", body)
	}
	if code, _, _ := get(t, url+"/latest", "reader"); code != 401 {
		t.Errorf("reader with a world-readable password file: %d, want 401", code)
	}
	os.Chmod(file, 0o600)
	waitFor(t, url+"/healthz", "ok\n")
	if code, _, _ := get(t, url+"/latest", "reader"); code != 200 {
		t.Errorf("reader after the fix: %d", code)
	}
}

// waitFor polls url anonymously until its body contains want.
func waitFor(t *testing.T, url, want string) string {
	t.Helper()
	return waitForAs(t, url, "", want)
}

// waitForAs is waitFor as user (get).
func waitForAs(t *testing.T, url, user, want string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, body := get(t, url, user)
		if strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, want %q within 5s", url, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAdminOff: without the admin API, a request to it is a 404 saying the
// API is off and how it is turned on, not the protocol handler's answer to
// a malformed request (a POST was a 405 "use GET or HEAD").
func TestAdminOff(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	url := serveTest(t, cfg, urls)
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, url+"/admin/add", strings.NewReader("example.com/m v1.0.0 h1:x\n"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || !strings.Contains(string(body), "the admin API is not enabled on this server") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s /admin/add: %d %q (%s), want a 404 saying the admin API is not enabled", method, resp.StatusCode, body, resp.Header.Get("Content-Type"))
		}
	}
	if code, _, body := get(t, url+"/latest", ""); code != 200 || !strings.Contains(body, "go.sum database tree") {
		t.Errorf("GET /latest: %d %q", code, body)
	}
}

// TestAccessPrivateCache: behind credentials, every cacheable answer of the
// server's own log and of its mirrors is Cache-Control private, so that a
// shared cache in front never gives one reader's answer to another client;
// without credentials, answers stay public.
func TestAccessPrivateCache(t *testing.T) {
	cfg, urls, _, _ := accessConfig(t)
	cfg.Mirrors = []Mirror{headedMirror(t, "corp.example")}
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) {
		_, err := l.Add(context.Background(), gosum.Record{Path: "example.com/team/a", Version: "v1.0.0",
			Hash: "h1:" + strings.Repeat("A", 43) + "=", GoMod: "h1:" + strings.Repeat("A", 43) + "="})
		return l, nil, err
	}
	url := serveTest(t, cfg, urls)
	for _, path := range []string{"/latest", "/lookup/example.com/team/a@v1.0.0", "/tile/8/0/000.p/1",
		"/sumdb/serve.example.com/lookup/example.com/team/a@v1.0.0", "/sumdb/corp.example/supported", "/sumdb/corp.example/latest"} {
		code, h, body := get(t, url+path, "team")
		if cc := h.Get("Cache-Control"); code != 200 || !strings.HasPrefix(cc, "private,") {
			t.Errorf("GET %s as a reader: %d %q, Cache-Control %q; want 200, private", path, code, body, cc)
		}
	}

	cfg, urls, _ = testConfig(t)
	cfg.Mirrors = []Mirror{headedMirror(t, "corp.example")}
	url = serveTest(t, cfg, urls)
	for _, path := range []string{"/latest", "/sumdb/corp.example/supported", "/sumdb/corp.example/latest"} {
		if _, h, _ := get(t, url+path, ""); !strings.HasPrefix(h.Get("Cache-Control"), "public,") {
			t.Errorf("GET %s without an access layer: Cache-Control %q, want public", path, h.Get("Cache-Control"))
		}
	}
}

// TestAccessNestedNames serves databases whose names nest: its own log
// corp.example/sumd between the mirrors corp.example and
// corp.example/sumd/eu. Every /sumdb/ path reaches the database of the
// longest name it starts with, and the access layer judges it as that
// database's: a reader gets no data tile of the nested mirror, and a
// limited reader's lookup there outside its patterns is the layer's 404.
func TestAccessNestedNames(t *testing.T) {
	cfg, urls, logs, _ := accessConfig(t)
	skey, _, err := tlog.GenerateKey("corp.example/sumd")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	cfg.OpenLog = func() (*tlog.Log, error) {
		return tlog.Open(cfg.DBFile, tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: logs.Logger()})
	}
	cfg.Mirrors = []Mirror{offlineMirror(t, "corp.example"), offlineMirror(t, "corp.example/sumd/eu")}
	url := serveTest(t, cfg, urls)
	for _, c := range []struct{ path, user, want string }{
		{"/sumdb/corp.example/sumd/latest", "reader", "200 go.sum database tree"},
		{"/sumdb/corp.example/latest", "reader", "503 the mirror of corp.example holds"},
		{"/sumdb/corp.example/sumd/eu/latest", "reader", "503 the mirror of corp.example/sumd/eu holds"},
		{"/sumdb/corp.example/sumd/eu/tile/8/data/000.p/1", "reader", "403 data tiles need the auditor role"},
		{"/sumdb/corp.example/sumd/tile/8/data/000.p/1", "reader", "403 data tiles need the auditor role"},
		{"/sumdb/corp.example/sumd/eu/lookup/example.com/other@v1.0.0", "team",
			"404 not found: example.com/other@v1.0.0: no record in checksum database corp.example/sumd/eu"},
	} {
		code, _, body := get(t, url+c.path, c.user)
		if got := fmt.Sprint(code, " ", body); !strings.HasPrefix(got, c.want) {
			t.Errorf("GET %s as %s = %q, want %q…", c.path, c.user, got, c.want)
		}
	}
}

// TestAccessPrivateEveryAnswer: behind credentials, an answer whose
// handler sets no Cache-Control (the search's redirect to a record,
// /metrics, a redirect to a path's clean form) is private too. A shared
// cache told to keep answers without one (nginx's proxy_cache_valid,
// which ignores the request's Authorization) gave an auditor's redirect
// from /module?path=P@V to record?id=N, which tells that P@V is recorded,
// to anonymous clients.
func TestAccessPrivateEveryAnswer(t *testing.T) {
	cfg, urls, _, _ := accessConfig(t)
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) {
		_, err := l.Add(context.Background(), gosum.Record{Path: "example.com/secret", Version: "v1.0.0",
			Hash: "h1:" + strings.Repeat("A", 43) + "=", GoMod: "h1:" + strings.Repeat("A", 43) + "="})
		return l, nil, err
	}
	url := serveTest(t, cfg, urls)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/module?path=example.com/secret@v1.0.0", "/metrics", "/lookup//example.com/secret@v1.0.0", "/", "/latest"} {
		req, _ := http.NewRequest("GET", url+path, nil)
		req.SetBasicAuth("auditor", "auditor")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "private") && cc != "no-store" {
			t.Errorf("GET %s as an auditor: %d, Cache-Control %q; want private or no-store", path, resp.StatusCode, cc)
		}
	}
}

// unreachableMirror is headedMirror following an origin that answers every
// request 500: each round fails, and the mirror reports a problem.
func unreachableMirror(t *testing.T, name string) Mirror {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	t.Cleanup(origin.Close)
	c, err := sumdbclient.New(origin.URL, sumdbclient.Options{Backoff: time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return mirrorFollowing(t, name, c)
}

// TestHealthzDetail: behind credentials, /healthz tells a client that may
// not read /status (anonymous, a reader, credentials refused) the state
// and the kinds of part with a problem, with the status code an auditor
// gets, but not the problems, which name mirrored databases; an auditor
// gets them. Without credentials anyone reads /status, and /healthz keeps
// them for everyone.
func TestHealthzDetail(t *testing.T) {
	const detail = "degraded: mirror corp.example: the origin answered 500"
	cfg, urls, _, _ := accessConfig(t)
	cfg.Mirrors = []Mirror{unreachableMirror(t, "corp.example")}
	url := serveTest(t, cfg, urls)
	get(t, url+"/status", "auditor") // /healthz recognises only a password verified elsewhere
	waitForAs(t, url+"/healthz", "auditor", detail)
	for _, user := range []string{"", "reader", "wrong"} {
		code, h, body := get(t, url+"/healthz", user)
		if code != 200 || !strings.HasPrefix(body, "degraded: mirror ") || strings.Contains(body, "corp.example") || strings.Contains(body, "500") || h.Get("WWW-Authenticate") != "" {
			t.Errorf("/healthz as %q = %d %q, want 200 degraded naming the part's kind only", user, code, body)
		}
	}

	cfg, urls, _ = testConfig(t)
	cfg.Mirrors = []Mirror{unreachableMirror(t, "corp.example")}
	url = serveTest(t, cfg, urls)
	waitFor(t, url+"/healthz", detail)
}
