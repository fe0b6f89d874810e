package pgstore

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/tlog"
)

// BenchmarkAppend measures durable appends to PostgreSQL (fsync on): C
// callers each add one record at a time and wait for it, and the
// sequencer gathers them into group commits. "writers=3" spreads the
// callers over three logs on one database, as three sumd processes. It
// reports records/s, each Add's latency (median and 99th percentile) and
// the records per commit.
func BenchmarkAppend(b *testing.B) {
	pg := pgtest.Shared(b)
	for _, w := range []struct{ callers, writers int }{{1, 1}, {16, 1}, {256, 1}, {256, 3}} {
		b.Run(fmt.Sprintf("callers=%d/writers=%d", w.callers, w.writers), func(b *testing.B) {
			url, k := pg.NewDatabase(b), testKey(b)
			reg := prometheus.NewRegistry()
			metrics := tlog.NewMetrics(reg)
			var logs []*tlog.Log
			for range w.writers {
				s, err := Open(context.Background(), url, Options{Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				l, err := tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet, Metrics: metrics})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { l.Close() })
				logs = append(logs, l)
			}
			lat := appendLoad(b, logs, w.callers)
			slices.Sort(lat)
			commits, _ := histogram(b, reg, "sumd_log_commit_records")
			b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-p50")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
			b.ReportMetric(float64(len(lat))/float64(max(commits, 1)), "records/commit")
		})
	}
}

// appendLoad adds records from callers goroutines, spread over logs, and
// returns the latency of every Add.
func appendLoad(b *testing.B, logs []*tlog.Log, callers int) []time.Duration {
	next := make(chan int)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for c := range callers {
		l := logs[c%len(logs)]
		wg.Go(func() {
			var mine []time.Duration
			for i := range next {
				start := time.Now()
				if _, err := l.Add(context.Background(), record(i)); err != nil {
					b.Error(err)
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	n := 0
	for b.Loop() {
		for range 64 {
			next <- n
			n++
		}
	}
	close(next)
	wg.Wait()
	return lat
}

// histogram returns the sample count and sum of a histogram in reg.
func histogram(b *testing.B, reg *prometheus.Registry, name string) (uint64, float64) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	return 0, 0
}

// lookupRecords is the size of the logs BenchmarkLookup serves.
const lookupRecords = 20_000

// BenchmarkLookup serves one log from bbolt and from PostgreSQL through
// sumd's HTTP handler over loopback, as the go command reads it: a lookup,
// then a hash tile. Compare them: bbolt reads its memory map; PostgreSQL
// answers from its record and tile caches once warm, and "postgres-
// uncached" (caches of one entry) with two statements per lookup (index,
// record).
func BenchmarkLookup(b *testing.B) {
	pg := pgtest.Shared(b)
	k := testKey(b)
	recs := make([]gosum.Record, lookupRecords)
	for i := range recs {
		recs[i] = record(i)
	}
	stores := map[string]func() tlog.Store{
		"bolt": func() tlog.Store {
			s, err := tlog.OpenBolt(filepath.Join(b.TempDir(), "sumd.db"), tlog.BoltOptions{Create: true})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"postgres": func() tlog.Store {
			s, err := Open(context.Background(), pg.NewDatabase(b), Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"postgres-uncached": func() tlog.Store {
			s, err := Open(context.Background(), pg.NewDatabase(b), Options{Logger: quiet, RecordCache: 1, TileCache: 1})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	for _, name := range []string{"bolt", "postgres", "postgres-uncached"} {
		l, err := tlog.OpenStore(stores[name](), tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		for batch := range slices.Chunk(recs, 5000) {
			if _, err := l.Add(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
		}
		srv := httptest.NewServer(server.New(k.Name(), l, server.Options{Logger: quiet, CacheBytes: -1})) // the stores, not the HTTP cache
		b.Cleanup(srv.Close)
		for _, route := range []struct {
			name string
			path func(*rand.Rand) string
		}{
			{"lookup", func(r *rand.Rand) string {
				return "/lookup/" + recs[r.IntN(lookupRecords)].Key()
			}},
			{"hash-tile", func(r *rand.Rand) string {
				return "/" + xtlog.Tile{H: 8, L: 0, N: int64(r.IntN(lookupRecords >> 8)), W: 256}.Path()
			}},
		} {
			b.Run(name+"/"+route.name, func(b *testing.B) {
				b.RunParallel(func(pb *testing.PB) {
					r := rand.New(rand.NewPCG(rand.Uint64(), 0))
					client := srv.Client()
					for pb.Next() {
						resp, err := client.Get(srv.URL + route.path(r))
						if err != nil {
							b.Fatal(err)
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Fatalf("%s: %s", route.name, resp.Status)
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}
