package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/tlog"
)

const prefix = "/sumdb/" + testName

// get serves one request straight through s.
func get(s http.Handler, method, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/", nil)
	r.URL.Path = path
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// checkError checks the shape every error response must have.
func checkError(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != textPlain {
		t.Errorf("error Content-Type = %q, want %q", ct, textPlain)
	}
	if cc := w.Header().Get("Cache-Control"); cc != cacheNone {
		t.Errorf("error Cache-Control = %q, want %q", cc, cacheNone)
	}
	body := w.Body.String()
	if strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") {
		t.Errorf("error body %q is not exactly one line", body)
	}
}

func TestRoutes(t *testing.T) {
	f, _ := newFakeOps(t, 300)
	gone := module.Version{Path: "example.com/gone", Version: "v1.0.0"}
	f.errs[gone] = &StatusError{http.StatusGone, errors.New("not found: example.com/gone@v1.0.0: upstream says gone")}
	hidden := module.Version{Path: "example.com/hidden", Version: "v1.0.0"}
	f.errs[hidden] = fmt.Errorf("wrapped: %w", &StatusError{http.StatusGone, fmt.Errorf("hidden: %w", fs.ErrNotExist)})
	s := New(testName, f, Options{Logger: quietLogger, Version: "v1.2.3-test"})

	notProxy := "not found: this is a checksum database (GOSUMDB), not a module proxy\n"
	tests := []struct {
		method, path string
		status       int
		body         string // expected prefix of the body
		ctype, cache string // for 2xx; errors are checked by checkError
	}{
		{"GET", "/latest", 200, "go.sum database tree\n300\n", textPlain, cacheShort},
		{"GET", prefix + "/latest", 200, "go.sum database tree\n300\n", textPlain, cacheShort},
		{"GET", "/lookup/example.com/m10@v1.10.0", 200, "10\nexample.com/m10 v1.10.0 h1:", textPlain, cacheShort},
		{"GET", prefix + "/lookup/example.com/m10@v1.10.0", 200, "10\n", textPlain, cacheShort},
		{"GET", "/lookup/example.com/!upper/!case@v1.0.0-!r!c.1", 200, "1\nexample.com/Upper/Case v1.0.0-RC.1 h1:", textPlain, cacheShort},
		{"GET", "/lookup/example.com/old@v2.0.0+incompatible", 200, "2\n", textPlain, cacheShort},
		{"GET", "/lookup/example.com/pseudo@v0.0.0-20240102030405-abcdefabcdef", 200, "4\n", textPlain, cacheShort},
		{"GET", "/lookup/example.com/m10@v1.11.0", 404, "not found: example.com/m10@v1.11.0: no record in checksum database sum.example.test\n", "", ""},
		{"GET", "/lookup/golang.org/toolchain@v0.0.1-go1.21.0.linux-amd64", 404, "not found: golang.org/toolchain@v0.0.1-go1.21.0.linux-amd64: no record", "", ""},
		{"GET", "/lookup/gopkg.in/yaml.v3@v3.0.1", 404, "not found: gopkg.in/yaml.v3@v3.0.1: no record", "", ""},
		{"GET", "/lookup/example.com/m10@latest", 400, `invalid lookup example.com/m10@"latest": not a semantic version`, "", ""},
		{"GET", "/lookup/example.com/M10@v1.10.0", 400, `invalid lookup: invalid escaped module path "example.com/M10"`, "", ""},
		{"GET", "/lookup/example.com/!!m@v1.0.0", 400, "invalid lookup: invalid escaped module path", "", ""},
		{"GET", "/lookup/example.com/m@v1.0.0-RC", 400, "invalid lookup: invalid escaped version", "", ""},
		{"GET", "/lookup/example.com/m10@v1.10", 400, `invalid lookup example.com/m10@"v1.10": not a canonical version`, "", ""},
		{"GET", "/lookup/example.com/m10@v1.10.0+meta", 400, "invalid lookup", "", ""},
		{"GET", "/lookup/example.com/m10@v1.10.0/go.mod", 400, "invalid lookup", "", ""},
		{"GET", "/lookup/example.com/m@v2.0.0", 400, "invalid lookup: example.com/m@v2.0.0: invalid version: should be v0 or v1, not v2", "", ""},
		{"GET", "/lookup/example.com/m10", 400, `invalid lookup "example.com/m10": want /lookup/<module path>@<version>`, "", ""},
		{"GET", "/lookup/example.com/gone@v1.0.0", 410, "not found: example.com/gone@v1.0.0: upstream says gone\n", "", ""},
		{"GET", "/lookup/example.com/hidden@v1.0.0", 410, "hidden: file does not exist\n", "", ""},
		{"GET", "/tile/8/0/000", 200, "", octetStream, cacheImmutable},
		{"GET", prefix + "/tile/8/0/000", 200, "", octetStream, cacheImmutable},
		{"GET", "/tile/8/0/000.p/10", 200, "", octetStream, cacheShort},
		{"GET", "/tile/8/0/001.p/44", 200, "", octetStream, cacheShort},
		{"GET", "/tile/8/1/000.p/1", 200, "", octetStream, cacheShort},
		{"GET", "/tile/8/0/001.p/45", 404, "not found: tile/8/0/001.p/45: beyond the current tree\n", "", ""},
		{"GET", "/tile/8/0/001", 404, "not found: tile/8/0/001: beyond the current tree\n", "", ""},
		{"GET", "/tile/8/1/000", 404, "not found: tile/8/1/000: beyond the current tree\n", "", ""},
		{"GET", "/tile/4/0/000", 404, "not found: tile/4/0/000: tile height 4 is not served; this database uses height 8\n", "", ""},
		{"GET", "/tile/8/7/000", 404, "not found: tile/8/7/000: beyond any possible tree\n", "", ""},
		{"GET", "/tile/8/0/x009/x223/x372/x036/x854/x775/807", 404, "not found: tile/8/0/x009", "", ""},
		{"GET", "/tile/8/0/abc", 400, `malformed tile path "tile/8/0/abc"`, "", ""},
		{"GET", "/tile/8/0/000.p/256", 400, "malformed tile path", "", ""},
		{"GET", "/tile/8/data/000", 200, "example.com/m0 v1.0.0 h1:", textPlain, cacheImmutable},
		{"GET", prefix + "/tile/8/data/001.p/44", 200, "example.com/m256 v1.256.0 h1:", textPlain, cacheShort},
		{"GET", "/tile/8/data/001.p/45", 404, "not found: tile/8/data/001.p/45: beyond the current tree\n", "", ""},
		{"GET", prefix + "/supported", 200, "", textPlain, cacheShort},
		{"HEAD", prefix + "/supported", 200, "", textPlain, cacheShort},
		{"GET", "/supported", 404, notProxy, "", ""},
		{"GET", "/sumdb/sum.golang.org/supported", 404, "not found: this checksum database is sum.example.test, not \"sum.golang.org\"\n", "", ""},
		{"GET", "/sumdb/corp.example/sumdb/lookup/example.com/m@v1.0.0", 404, "not found: this checksum database is sum.example.test, not \"corp.example/sumdb\"\n", "", ""},
		{"GET", "/sumdb/" + testName, 404, notProxy, "", ""},
		{"GET", prefix + "/", 404, notProxy, "", ""},
		{"GET", prefix + "/healthz", 404, notProxy, "", ""},
		{"GET", "/example.com/m/@v/list", 404, notProxy, "", ""},
		{"GET", "/example.com/m/@v/v1.0.0.mod", 404, notProxy, "", ""},
		{"GET", "/example.com/m/@latest", 404, notProxy, "", ""},
		{"GET", "/", 404, notProxy, "", ""},
		{"GET", "/healthz", 200, "ok\n", textPlain, cacheNone},
		{"GET", "/metrics", 404, notProxy, "", ""}, // no registry, no metrics
		{"GET", "/version", 200, "v1.2.3-test\n", textPlain, cacheNone},
		{"GET", prefix + "/version", 404, notProxy, "", ""},
		{"POST", "/latest", 405, "method POST not allowed: use GET or HEAD\n", "", ""},
		{"PUT", prefix + "/lookup/example.com/m10@v1.10.0", 405, "method PUT not allowed", "", ""},
		{"GET", "/lookup/" + strings.Repeat("a", maxPathLen), 414, "request path longer than 1024 bytes\n", "", ""},
	}
	for _, tt := range tests {
		w := get(s, tt.method, tt.path)
		if w.Code != tt.status || !strings.HasPrefix(w.Body.String(), tt.body) {
			t.Errorf("%s %s = %d %q, want %d %q…", tt.method, tt.path, w.Code, w.Body, tt.status, tt.body)
			continue
		}
		if w.Code >= 400 {
			checkError(t, w)
			continue
		}
		if ct, cc := w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"); ct != tt.ctype || cc != tt.cache {
			t.Errorf("%s %s: Content-Type %q, Cache-Control %q; want %q, %q", tt.method, tt.path, ct, cc, tt.ctype, tt.cache)
		}
	}
	if allow := get(s, "DELETE", "/latest").Header().Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("405 Allow header = %q, want %q", allow, "GET, HEAD")
	}
}

// TestPrivate checks that a server whose clients all send credentials
// marks every cacheable answer private, the second (cached) answer of a
// full tile or lookup too, and that errors stay no-store.
func TestPrivate(t *testing.T) {
	f, _ := newFakeOps(t, 300)
	s := New(testName, f, Options{Logger: quietLogger, Private: true})
	for _, tt := range []struct{ path, cache string }{
		{"/latest", cacheShortPrivate},
		{prefix + "/supported", cacheShortPrivate},
		{"/lookup/example.com/m10@v1.10.0", cacheShortPrivate},
		{prefix + "/lookup/example.com/m10@v1.10.0", cacheShortPrivate},
		{"/tile/8/0/000", cacheImmutablePrivate},
		{"/tile/8/0/001.p/44", cacheShortPrivate},
		{"/tile/8/data/000", cacheImmutablePrivate},
		{prefix + "/tile/8/data/001.p/44", cacheShortPrivate},
		{"/lookup/example.com/nosuch@v1.0.0", cacheNone},
	} {
		for range 2 { // the second answer comes from the cache
			if cc := get(s, "GET", tt.path).Header().Get("Cache-Control"); cc != tt.cache {
				t.Errorf("GET %s: Cache-Control %q, want %q", tt.path, cc, tt.cache)
			}
		}
	}
	// A public server beside it keeps its own values.
	if cc := get(New(testName, f, Options{Logger: quietLogger}), "GET", "/tile/8/0/000").Header().Get("Cache-Control"); cc != cacheImmutable {
		t.Errorf("public server: Cache-Control %q, want %q", cc, cacheImmutable)
	}
}

// TestBodies checks lookups and tiles byte for byte against what x/mod's
// server would send for the same database.
func TestBodies(t *testing.T) {
	f, _ := newFakeOps(t, 300)
	s := New(testName, f, Options{Logger: quietLogger})
	signed, _ := f.Signed(context.Background())

	rec, _ := tlog.FormatRecord(3, f.records[3])
	checkBody(t, s, "/lookup/example.com/new/v3@v3.1.0", append(rec, signed...))

	tile := tlog.Tile{H: 8, L: 0, N: 1, W: 44}
	want, _ := tlog.ReadTileData(tile, hashReader(f.hashes))
	checkBody(t, s, "/"+tile.Path(), want)

	var data []byte
	for _, r := range f.records[256:300] {
		data = append(append(data, r...), '\n')
	}
	checkBody(t, s, "/tile/8/data/001.p/44", data)
}

func checkBody(t *testing.T, s http.Handler, path string, want []byte) {
	t.Helper()
	if w := get(s, "GET", path); w.Code != 200 || !bytes.Equal(w.Body.Bytes(), want) {
		t.Errorf("GET %s = %d\n%q\nwant 200\n%q", path, w.Code, w.Body, want)
	}
}

// TestHead checks over real HTTP that HEAD answers like GET without a body.
func TestHead(t *testing.T) {
	f, _ := newFakeOps(t, 10)
	ts, _ := newTestServer(t, f)
	signed, _ := f.Signed(context.Background())
	resp, err := http.Head(ts.URL + "/latest")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(signed)) {
		t.Errorf("HEAD /latest = %d, %d body bytes, Content-Length %d; want 200, 0, %d",
			resp.StatusCode, len(body), resp.ContentLength, len(signed))
	}
}

func TestHealthz(t *testing.T) {
	f, _ := newFakeOps(t, 1)
	var ready error = errors.New("log not loaded\nyet")
	s := New(testName, f, Options{Logger: quietLogger, Ready: func(context.Context) error { return ready }})
	w := get(s, "GET", "/healthz")
	if w.Code != 503 || w.Body.String() != "not ready: log not loaded yet\n" {
		t.Errorf("/healthz while not ready = %d %q", w.Code, w.Body)
	}
	checkError(t, w)
	ready = nil
	if w := get(s, "GET", "/healthz"); w.Code != 200 || w.Body.String() != "ok\n" {
		t.Errorf("/healthz when ready = %d %q", w.Code, w.Body)
	}
}

// TestHealthzDegraded: problems beside serving are a 200 naming them; a
// log that cannot serve is still a 503, whatever else is wrong.
func TestHealthzDegraded(t *testing.T) {
	f, _ := newFakeOps(t, 1)
	var ready error
	problems := []string{"tuf: the timestamp expires in 1h0m0s", "sync: the last pass\nfailed"}
	s := New(testName, f, Options{Logger: quietLogger,
		Ready:    func(context.Context) error { return ready },
		Degraded: func(context.Context) []string { return problems },
	})
	if w := get(s, "GET", "/healthz"); w.Code != 200 || w.Body.String() != "degraded: tuf: the timestamp expires in 1h0m0s; sync: the last pass failed\n" {
		t.Errorf("/healthz when degraded = %d %q", w.Code, w.Body)
	}
	ready = errors.New("sequencer stopped")
	if w := get(s, "GET", "/healthz"); w.Code != 503 {
		t.Errorf("/healthz when degraded and not ready = %d %q, want 503", w.Code, w.Body)
	}
	ready, problems = nil, nil
	if w := get(s, "GET", "/healthz"); w.Code != 200 || w.Body.String() != "ok\n" {
		t.Errorf("/healthz with no problems = %d %q", w.Code, w.Body)
	}
}

// TestPages: operator pages answer at their exact paths at the root only;
// everything else, module proxy paths included, stays a 404 so that the go
// command falls through to its next proxy.
func TestPages(t *testing.T) {
	f, _ := newFakeOps(t, 1)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page "+r.URL.Path) })
	s := New(testName, f, Options{Logger: quietLogger, Pages: map[string]http.Handler{"/": page, "/status": page}})
	notProxy := "not found: this is a checksum database (GOSUMDB), not a module proxy\n"
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/", 200, "page /"},
		{"GET", "/status", 200, "page /status"},
		{"POST", "/", 405, ""},
		{"GET", "/status/", 404, notProxy},
		{"GET", prefix + "/", 404, notProxy},
		{"GET", prefix + "/status", 404, notProxy},
		{"GET", "/example.com/m/@v/list", 404, notProxy},
		{"GET", "/example.com/m/@latest", 404, notProxy},
	} {
		w := get(s, tc.method, tc.path)
		if w.Code != tc.code || tc.body != "" && w.Body.String() != tc.body {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, w.Code, w.Body, tc.code, tc.body)
		}
	}
}

// brokenOps breaks the ops contract in ways the handler must catch.
type brokenOps struct{ *fakeOps }

func (b brokenOps) Lookup(ctx context.Context, m module.Version) (int64, error) {
	if m.Path == "example.com/broken" {
		return 0, errors.New("disk on fire")
	}
	return 5, nil // a record the signed tree may not cover
}

func (b brokenOps) ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error) {
	return make([]byte, 31), nil
}

func (b brokenOps) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	if id == 0 {
		return nil, nil
	}
	return b.records[id : id+n], nil // even records not yet published
}

// TestInternalErrors checks that contract violations and op failures are a
// bare 500 for the client, with the detail in the log.
func TestInternalErrors(t *testing.T) {
	f, _ := newFakeOps(t, 10)
	f.publish(t, 5) // records 0-4 visible, so Lookup's id 5 is not covered
	var logs bytes.Buffer
	s := New(testName, brokenOps{f}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for path, detail := range map[string]string{
		"/lookup/example.com/broken@v1.0.0": "disk on fire",
		"/lookup/example.com/m5@v1.5.0":     "record 5 is not covered by the signed tree of size 5",
		"/tile/8/0/000.p/3":                 "returned 31 bytes, want 96",
		"/tile/8/data/000.p/3":              "ReadRecords(0, 3) returned 0 records",
	} {
		logs.Reset()
		w := get(s, "GET", path)
		if w.Code != 500 || w.Body.String() != "internal error\n" {
			t.Errorf("GET %s = %d %q, want 500 %q", path, w.Code, w.Body, "internal error\n")
		}
		checkError(t, w)
		if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), detail) {
			t.Errorf("GET %s: log %q lacks ERROR and %q", path, logs.String(), detail)
		}
	}
}

// TestDataTileMalformed checks that a stored record that would not split
// off a data tile again (empty, without its final newline, or holding a
// blank line) is a 500, not a tile that misleads clients about which
// records it holds.
func TestDataTileMalformed(t *testing.T) {
	for _, bad := range []string{"", "example.com/m1 v1.1.0 h1:x", "example.com/m1 v1.1.0 h1:x\n\nexample.com/m1 v1.1.0/go.mod h1:y\n"} {
		f, _ := newFakeOps(t, 3)
		f.records[1] = []byte(bad)
		var logs bytes.Buffer
		s := New(testName, f, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		w := get(s, "GET", "/tile/8/data/000.p/3")
		if w.Code != 500 || !strings.Contains(logs.String(), "record 1 is malformed") {
			t.Errorf("record %q: GET data tile = %d %q, log %q; want 500 and the record named", bad, w.Code, w.Body, logs.String())
		}
	}
}

func TestOneLine(t *testing.T) {
	long := strings.Repeat("é", 400)
	for in, want := range map[string]string{
		"a\nb\r\tc\x7f": "a b  c ",
		long:            long[:500] + "…",
		"a" + long:      "a" + long[:498] + "…", // cut before the é at bytes 499–500, not through it
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// signedErrOps is fakeOps whose Signed fails with err.
type signedErrOps struct {
	*fakeOps
	err error
}

func (o signedErrOps) Signed(context.Context) ([]byte, error) { return nil, o.err }

// TestSupportedWithoutHead: /sumdb/<name>/supported answers 404 while the
// database holds no signed head (an fs.ErrNotExist from Signed: a mirror
// before its first sync), so a go command probing GOPROXY tries its next
// proxy; a passing failure of Signed (an outage) still answers 200, as a
// database that has one does.
func TestSupportedWithoutHead(t *testing.T) {
	f, _ := newFakeOps(t, 3)
	path := "/sumdb/" + testName + "/supported"
	for _, tc := range []struct {
		ops  sumdb.ServerOps
		want int
	}{
		{f, http.StatusOK},
		{signedErrOps{f, fmt.Errorf("no head yet: %w", fs.ErrNotExist)}, http.StatusNotFound},
		{signedErrOps{f, errors.New("store unreachable")}, http.StatusOK},
	} {
		w := get(New(testName, tc.ops, Options{Logger: quietLogger}), "GET", path)
		if w.Code != tc.want {
			t.Errorf("%T: GET %s = %d %q, want %d", tc.ops, path, w.Code, w.Body, tc.want)
		}
		if tc.want == http.StatusNotFound {
			checkError(t, w)
		}
	}
}
