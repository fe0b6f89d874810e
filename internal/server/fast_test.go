package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
	"golang.org/x/mod/module"
)

// serveFast serves s.ServeFast on a loopback port until the test ends and
// returns its address.
func serveFast(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fasthttp.Server{
		Handler: func(c *fasthttp.RequestCtx) {
			u, err := url.ParseRequestURI(string(c.Request.Header.RequestURI()))
			if err != nil {
				c.Error("bad request target", http.StatusBadRequest)
				return
			}
			s.ServeFast(context.Background(), c, u.Path, u.RawPath)
		},
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
	}
	done := make(chan error, 1)
	go func() { done <- fs.Serve(ln) }()
	t.Cleanup(func() {
		fs.Shutdown()
		if err := <-done; err != nil {
			t.Errorf("fasthttp Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// rawAnswer is a response as read off the connection: status, headers
// but Date, and body.
type rawAnswer struct {
	status int
	header http.Header
	body   string
}

// ask sends one request on a new connection, byte for byte, and reads the
// answer: no client cleans or escapes the path on the way.
func ask(t *testing.T, addr, method, path string) rawAnswer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, path, addr)
	r, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	r.Header.Del("Date")
	r.Header.Del("Connection") // "close", as asked
	return rawAnswer{r.StatusCode, r.Header, string(body)}
}

// TestFastMatchesHTTP checks that ServeFast answers every route as
// ServeHTTP does, over real connections: status, every header but Date,
// and body — found and missing lookups, full, partial and refused tiles,
// both roots, other databases, module proxy paths, wrong methods, HEAD,
// overlong paths and an upstream's 410 and 503 — cached answers too (each
// request is made twice); and that the operator pages and /metrics, which
// stay on the main listener, are unknown paths there.
func TestFastMatchesHTTP(t *testing.T) {
	f, _ := newFakeOps(t, 600)
	f.publish(t, 300)
	gone := module.Version{Path: "example.com/gone", Version: "v1.0.0"}
	f.errs[gone] = &StatusError{http.StatusGone, errors.New("not found: example.com/gone@v1.0.0: upstream says gone")}
	busy := module.Version{Path: "example.com/busy", Version: "v1.0.0"}
	f.errs[busy] = &StatusError{http.StatusServiceUnavailable, errors.New("too many first lookups at once: try again")}
	broken := module.Version{Path: "example.com/broken", Version: "v1.0.0"}
	f.errs[broken] = errors.New("disk on fire at /var/lib/sumd")
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "the page\n") })
	s := New(testName, f, Options{Logger: quietLogger, Version: "v1.2.3-test", Registry: prometheus.NewRegistry(),
		Pages: map[string]http.Handler{"/": page, "/status": page}})
	std := httptest.NewServer(s)
	defer std.Close()
	stdAddr := strings.TrimPrefix(std.URL, "http://")
	fastAddr := serveFast(t, s)

	paths := []string{
		"/latest", prefix + "/latest",
		"/lookup/example.com/m10@v1.10.0", prefix + "/lookup/example.com/m10@v1.10.0",
		"/lookup/example.com/!upper/!case@v1.0.0-!r!c.1", "/lookup/example.com/m10@v1.11.0",
		"/lookup/example.com/m400@v1.400.0", // recorded, not yet published
		"/lookup/example.com/m10@latest", "/lookup/example.com/M10@v1.10.0", "/lookup/example.com/m10",
		"/lookup/example.com/gone@v1.0.0", "/lookup/example.com/busy@v1.0.0", "/lookup/example.com/broken@v1.0.0",
		"/lookup/example.com/m%31%30@v1.10.0", // percent-escapes decode alike
		"/tile/8/0/000", prefix + "/tile/8/0/000", "/tile/8/0/001.p/44", "/tile/8/1/000.p/1",
		"/tile/8/0/001", "/tile/8/0/001.p/45", "/tile/4/0/000", "/tile/8/7/000", "/tile/8/0/abc",
		"/tile/8/data/000", prefix + "/tile/8/data/001.p/44", "/tile/8/data/001.p/45",
		prefix + "/supported", "/supported", "/sumdb/sum.golang.org/supported", "/sumdb/" + testName, prefix + "/",
		"/example.com/m/@v/list", "/healthz", "/version", prefix + "/version",
		"/lookup/" + strings.Repeat("a", maxPathLen),
	}
	var reqs [][2]string
	for _, p := range paths {
		reqs = append(reqs, [2]string{"GET", p}, [2]string{"GET", p}, [2]string{"HEAD", p})
	}
	reqs = append(reqs, [2]string{"POST", "/latest"}, [2]string{"DELETE", prefix + "/lookup/example.com/m10@v1.10.0"})
	for _, rq := range reqs {
		want, got := ask(t, stdAddr, rq[0], rq[1]), ask(t, fastAddr, rq[0], rq[1])
		if got.status != want.status || got.body != want.body {
			t.Errorf("%s %.80s: fast %d %q, net/http %d %q", rq[0], rq[1], got.status, got.body, want.status, want.body)
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range want.header {
				yield(k)
			}
			for k := range got.header {
				if want.header[k] == nil {
					yield(k)
				}
			}
		}) {
			if !slices.Equal(got.header[k], want.header[k]) {
				t.Errorf("%s %.80s: fast %s: %q, net/http %q", rq[0], rq[1], k, got.header[k], want.header[k])
			}
		}
	}

	// The main listener's own routes are unknown paths on a read listener.
	for _, p := range []string{"/", "/status", "/metrics"} {
		if w := ask(t, stdAddr, "GET", p); w.status != 200 {
			t.Errorf("net/http GET %s = %d, want 200 (the page)", p, w.status)
		}
		want := ask(t, stdAddr, "GET", "/example.com/m/@v/list")
		if got := ask(t, fastAddr, "GET", p); got.status != want.status || got.body != want.body {
			t.Errorf("fast GET %s = %d %q, want the unknown path's %d %q", p, got.status, got.body, want.status, want.body)
		}
	}
}

// TestFastMetrics checks that answers of ServeFast are counted by route
// and status, as ServeHTTP's are.
func TestFastMetrics(t *testing.T) {
	f, _ := newFakeOps(t, 300)
	reg := prometheus.NewRegistry()
	s := New(testName, f, Options{Logger: quietLogger, Registry: reg})
	addr := serveFast(t, s)
	for _, p := range []string{"/tile/8/0/000", "/tile/8/0/000", "/lookup/example.com/m10@v1.10.0", "/tile/8/0/009"} {
		ask(t, addr, "GET", p)
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{{routeTile, "200", 2}, {routeTile, "404", 1}, {routeLookup, "200", 1}} {
		got := testutil.ToFloat64(s.metrics.requests.WithLabelValues(c.route, c.code))
		if got != c.want {
			t.Errorf("requests{route=%s,code=%s} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
}
