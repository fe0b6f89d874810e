package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

const benchRecords = 50_000

// benchLog returns a real sumd log of benchRecords records.
func benchLog(b *testing.B) *tlog.Log {
	skey, _, err := tlog.GenerateKey("bench.example.com")
	if err != nil {
		b.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := tlog.Open(filepath.Join(b.TempDir(), "sumd.db"), tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	recs := make([]gosum.Record, benchRecords)
	for i := range recs {
		recs[i] = benchRecord(i)
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		b.Fatal(err)
	}
	return l
}

// benchServer serves a real sumd log of benchRecords records over loopback
// HTTP, as a client sees it: on net/http (ServeHTTP, the main listener)
// and on fasthttp (ServeFast, a read listener), sharing one cache. It
// returns both base URLs.
func benchServer(b *testing.B) (std, fast string) {
	l := benchLog(b)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := New(l.Name(), l, Options{Logger: quiet})
	srv := httptest.NewServer(s)
	b.Cleanup(srv.Close)
	return srv.URL, "http://" + serveFast(b, s)
}

// benchPaths are the requests the benchmarks send: random records and
// full tiles of a log of benchRecords.
var benchPaths = []struct {
	name string
	path func(*rand.Rand) string
}{
	{"lookup", func(r *rand.Rand) string {
		return fmt.Sprintf("/lookup/example.com/bench%d@v1.0.0", r.IntN(benchRecords))
	}},
	{"hash-tile", func(r *rand.Rand) string {
		return "/" + xtlog.Tile{H: 8, L: 0, N: int64(r.IntN(benchRecords >> 8)), W: 256}.Path()
	}},
	{"data-tile", func(r *rand.Rand) string {
		return "/" + xtlog.Tile{H: 8, L: -1, N: int64(r.IntN(benchRecords >> 8)), W: 256}.Path()
	}},
	{"latest", func(*rand.Rand) string { return "/latest" }},
}

func benchRecord(i int) gosum.Record {
	h := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
	}
	path := fmt.Sprintf("example.com/bench%d", i)
	return gosum.Record{Path: path, Version: "v1.0.0", Hash: h(path), GoMod: h(path + "/go.mod")}
}

// BenchmarkHTTP measures requests/s through the handler and a real log
// over loopback, from parallel clients: what the go command and auditors
// see, on the main listener's net/http and on a read listener's fasthttp.
// The client (net/http's) shares the cores: scripts/benchcompare, with
// wrk, is the comparison to read.
func BenchmarkHTTP(b *testing.B) {
	std, fast := benchServer(b)
	for _, srv := range []struct{ name, url string }{{"net-http", std}, {"fasthttp", fast}} {
		for _, tc := range benchPaths {
			b.Run(srv.name+"/"+tc.name, func(b *testing.B) { benchGets(b, srv.url, tc.path) })
		}
	}
}

// benchGets runs parallel GETs of path from base until b is done.
func benchGets(b *testing.B, base string, path func(*rand.Rand) string) {
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 0))
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		defer client.CloseIdleConnections()
		for pb.Next() {
			resp, err := client.Get(base + path(r))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("%s: %s", resp.Request.URL.Path, resp.Status)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// nopWriter is the cheapest http.ResponseWriter: it keeps the header map
// between requests, as net/http's does not, so what a benchmark counts is
// the handler's own work.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkHandler measures the handler alone, in process, with metrics
// on: CPU and allocations per request without the network.
//
// sumd serve logs lookups at Info, its default level, and tiles at Debug:
// "lookup-logged" writes every request's log line (to io.Discard, so the
// formatting is counted, not the disk); the others log only warnings, as
// scripts/load.sh runs sumd. The "uncached" variants read the log for
// every request, as for versions and tiles not asked for lately.
func BenchmarkHandler(b *testing.B) {
	l := benchLog(b)
	type variant struct {
		name  string
		path  func(*rand.Rand) string
		level slog.Level
		cache int64
	}
	var cases []variant
	for _, p := range benchPaths {
		cases = append(cases, variant{p.name, p.path, slog.LevelWarn, 0})
	}
	cases = append(cases,
		variant{"lookup-logged", benchPaths[0].path, slog.LevelInfo, 0},
		variant{"lookup-uncached", benchPaths[0].path, slog.LevelWarn, -1},
		variant{"hash-tile-uncached", benchPaths[1].path, slog.LevelWarn, -1},
		variant{"data-tile-uncached", benchPaths[2].path, slog.LevelWarn, -1})
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: tc.level}))
			s := New(l.Name(), l, Options{Logger: logger, Registry: prometheus.NewRegistry(), CacheBytes: tc.cache})
			b.ReportAllocs()
			// Requests are built up front and reused: net/http builds one per
			// request, which is not the handler's cost.
			r := rand.New(rand.NewPCG(1, 2))
			reqs := make([]*http.Request, 4096)
			for i := range reqs {
				reqs[i] = httptest.NewRequest("GET", tc.path(r), nil)
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := &nopWriter{h: http.Header{}}
				for i := rand.IntN(len(reqs)); pb.Next(); i++ {
					clear(w.h)
					s.ServeHTTP(w, reqs[i%len(reqs)])
				}
			})
		})
	}
}
