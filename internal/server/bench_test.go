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

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

const benchRecords = 50_000

// benchServer serves a real sumd log of benchRecords records over loopback
// HTTP, as a client sees it.
func benchServer(b *testing.B) *httptest.Server {
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
	srv := httptest.NewServer(New(key.Name(), l, Options{Logger: quiet}))
	b.Cleanup(srv.Close)
	return srv
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
// see.
func BenchmarkHTTP(b *testing.B) {
	srv := benchServer(b)
	for _, tc := range []struct {
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
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(rand.Uint64(), 0))
				client := srv.Client()
				for pb.Next() {
					resp, err := client.Get(srv.URL + tc.path(r))
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("%s: %s", tc.name, resp.Status)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
