package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// FuzzServeHTTP feeds arbitrary paths and methods to the handler: it must
// never panic, never fail internally with well-behaved ops, and always
// answer errors as one line of text/plain.
func FuzzServeHTTP(f *testing.F) {
	for _, seed := range []string{
		"/latest", "/lookup/example.com/m10@v1.10.0", "/lookup/example.com/!upper/!case@v1.0.0-!r!c.1",
		"/lookup/@", "/lookup/example.com/m@latest", "/tile/8/0/000", "/tile/8/0/001.p/44",
		"/tile/8/1/000.p/1", "/tile/8/data/x001/234.p/5", "/tile/30/29/x999/999", "/tile/8/6/063",
		prefix + "/supported", "/sumdb/a/b/tile/8/0/000", "/healthz", "/metrics", "/example.com/@v/list",
	} {
		f.Add("GET", seed)
	}
	f.Add("HEAD", "/latest")
	f.Add("OPTIONS", "/tile/8/0/000")

	ops, _ := newFakeOps(f, 300)
	s := New(testName, ops, Options{Logger: quietLogger})
	f.Fuzz(func(t *testing.T, method, path string) {
		if method != "HEAD" && method != "OPTIONS" {
			method = "GET" // arbitrary methods are not valid HTTP tokens
		}
		w := get(s, method, path)
		switch {
		case w.Code == http.StatusInternalServerError:
			t.Fatalf("%s %q = 500 %q", method, path, w.Body)
		case w.Code >= 400:
			checkError(t, w)
		case w.Code != 200:
			t.Fatalf("%s %q = %d, want 200 or an error", method, path, w.Code)
		case strings.HasPrefix(path, "/tile/") && w.Body.Len()%32 != 0 && !strings.Contains(path, "/data/"):
			t.Fatalf("%s %q: hash tile of %d bytes", method, path, w.Body.Len())
		}
	})
}

// FuzzServeFast feeds arbitrary request targets and methods to ServeFast,
// in process: it must answer as ServeHTTP answers the same target, parsed
// as net/http parses it (status, the headers clients read, body), and so
// keep FuzzServeHTTP's promises on a read listener too. Its server has
// operator pages, a mount, /metrics and /version, as sumd serve's has:
// ServeFast answers /version, and every path of the others as a path it
// does not know, so it must answer as ServeHTTP of a server without them.
func FuzzServeFast(f *testing.F) {
	for _, seed := range []string{
		"/latest", "/lookup/example.com/m10@v1.10.0", "/lookup/example.com/!upper/!case@v1.0.0-!r!c.1",
		"/lookup/example.com/m%31%30@v1.10.0", "/lookup/@", "/tile/8/0/000", "/tile/8/0/../0/001.p/44",
		"/tile/8/data/x001/234.p/5", "//tile/8/1/000.p/1", prefix + "/supported", "/sumdb/a/b/tile/8/0/000",
		"/healthz", "/metrics", "/status", "/example.com/@v/list", "http://h/latest", "*", "/%zz",
		"/version", "/", "/tuf/1.root.json", "/tuf", "/status/", "/sumdb/" + testName + "/status",
	} {
		f.Add("GET", seed)
	}
	f.Add("HEAD", "/latest")
	f.Add("POST", "/tile/8/0/000")

	ops, _ := newFakeOps(f, 300)
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("page\n")) })
	s := New(testName, ops, Options{
		Logger:   quietLogger,
		Registry: prometheus.NewRegistry(),
		Pages:    map[string]http.Handler{"/": page, "/status": page},
		Mounts:   map[string]http.Handler{"/tuf/": page},
		Version:  "v1.2.3",
	})
	// What ServeFast answers: ServeHTTP of s without what stays on the
	// main listener.
	bare := New(testName, ops, Options{Logger: quietLogger, Version: "v1.2.3"})
	f.Fuzz(func(t *testing.T, method, target string) {
		if method != "HEAD" && method != "POST" {
			method = "GET"
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return // net/http refuses it before any handler, as the read listener does
		}
		c := new(fasthttp.RequestCtx)
		c.Request.Header.SetMethod(method)
		c.Request.SetRequestURI(target)
		s.ServeFast(context.Background(), c, u.Path, u.RawPath)
		r := httptest.NewRequest(method, "/", nil)
		r.URL = u
		want := httptest.NewRecorder()
		bare.ServeHTTP(want, r)
		path := u.Path
		got := &c.Response
		if got.StatusCode() != want.Code || (method != "HEAD" && !bytes.Equal(got.Body(), want.Body.Bytes())) {
			t.Fatalf("%s %q (path %q): fast %d %q, ServeHTTP %d %q", method, target, path, got.StatusCode(), got.Body(), want.Code, want.Body)
		}
		for _, h := range []string{"Content-Type", "Cache-Control", "X-Content-Type-Options", "Allow", "Retry-After"} {
			if g, w := string(got.Header.Peek(h)), want.Header().Get(h); g != w {
				t.Fatalf("%s %q: fast %s %q, ServeHTTP %q", method, target, h, g, w)
			}
		}
		if want.Code == http.StatusInternalServerError {
			t.Fatalf("%s %q = 500 %q", method, target, want.Body)
		}
	})
}
