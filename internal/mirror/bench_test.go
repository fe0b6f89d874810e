package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/sync/errgroup"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// benchRecords is the origin's size in BenchmarkMirror: SUMD_BENCH_RECORDS,
// default one million.
func benchRecords() int {
	if n, err := strconv.Atoi(os.Getenv("SUMD_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// benchRecord is record i of the benchmark's origin: paths and versions
// shaped like sum.golang.org's (about 165 bytes a record), in 1,000
// organisations.
func benchRecord(i int) gosum.Record {
	path := fmt.Sprintf("github.com/org%d/repository-%d", i%1000, i/1000)
	version := fmt.Sprintf("v1.%d.%d", i%97, i%13)
	h := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
	}
	return gosum.Record{Path: path, Version: version, Hash: h(path + version), GoMod: h(path + version + "/go.mod")}
}

// BenchmarkMirror measures, against a bbolt origin of benchRecords()
// records served by internal/server over loopback: a full and a partial
// (1% of the records, by pattern) mirror's ingest from empty, in records/s
// and disk bytes per record; the full mirror's bundle (bytes per record)
// and its import; and lookups answered by the mirror and by the primary.
func BenchmarkMirror(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(400)) // as sumd mirror and import run
	ctx := context.Background()
	n := benchRecords()
	dir := b.TempDir()
	start := time.Now()
	o := newBenchOrigin(b, filepath.Join(dir, "origin.db"), n)
	b.Logf("origin of %d records built in %s", n, time.Since(start).Round(time.Millisecond))

	full := filepath.Join(dir, "full.db")
	b.Run("ingest=full", func(b *testing.B) { benchIngest(b, o, full, nil) })
	b.Run("ingest=partial", func(b *testing.B) {
		sel, _ := ParseSelection([]string{"github.com/org1?"})
		benchIngest(b, o, filepath.Join(dir, "partial.db"), sel)
	})
	bundle := filepath.Join(dir, "full.bundle")
	b.Run("bundle=export", func(b *testing.B) {
		m := openBenchMirror(b, full, o.vkey, false)
		defer m.Close()
		for b.Loop() {
			f, err := os.Create(bundle)
			if err != nil {
				b.Fatal(err)
			}
			st, err := Export(ctx, m, f, 0)
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
			fi, _ := os.Stat(bundle)
			b.ReportMetric(float64(fi.Size())/float64(n), "bundle-bytes/record")
			b.ReportMetric(float64(st.Records)/b.Elapsed().Seconds(), "records/s")
		}
	})
	b.Run("bundle=import", func(b *testing.B) {
		vs, _ := sumdbclient.ParseVerifiers(o.vkey)
		cpu := cpuTime()
		for b.Loop() {
			m := openBenchMirror(b, filepath.Join(b.TempDir(), "imported.db"), o.vkey, true)
			f, err := os.Open(bundle)
			if err != nil {
				b.Fatal(err)
			}
			st, err := Import(ctx, m, vs, f, ImportOptions{Logger: quiet})
			f.Close()
			m.Close()
			if err != nil || st.To.N != int64(n) {
				b.Fatalf("import: %+v, %v", st, err)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		b.ReportMetric(float64(n)*float64(b.N)/(cpuTime()-cpu).Seconds(), "records/cpu-s")
	})
	m := openBenchMirror(b, full, o.vkey, false)
	defer m.Close()
	f, err := New(Options{Log: m, Verifiers: mustVerifiers(b, o.vkey), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("lookup=primary-vs-mirror", func(b *testing.B) { benchLookups(b, o.log, f.Ops(), n) })
}

// A benchOrigin is a primary log in a bbolt file, served over loopback.
type benchOrigin struct {
	log  *itlog.Log
	vkey string
	url  string
}

func newBenchOrigin(b *testing.B, path string, n int) *benchOrigin {
	skey, vkey, err := itlog.GenerateKey("sum.bench.example")
	if err != nil {
		b.Fatal(err)
	}
	key, _ := itlog.ParseKey(skey)
	l, err := itlog.Open(path, itlog.Options{Keys: []*itlog.Key{key}, Create: true, Logger: quiet, MaxBatch: itlog.MaxAddRecords})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	for from := 0; from < n; from += itlog.MaxAddRecords {
		recs := make([]gosum.Record, 0, itlog.MaxAddRecords)
		for i := from; i < min(n, from+itlog.MaxAddRecords); i++ {
			recs = append(recs, benchRecord(i))
		}
		if _, err := l.Add(context.Background(), recs...); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(server.New("sum.bench.example", l, server.Options{Logger: quiet}))
	b.Cleanup(srv.Close)
	return &benchOrigin{log: l, vkey: vkey, url: srv.URL}
}

func openBenchMirror(b *testing.B, path, vkey string, create bool) *itlog.Log {
	l, err := itlog.Open(path, itlog.Options{VerifierKeys: []string{vkey}, Create: create, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

func mustVerifiers(b *testing.B, vkey string) *sumdbclient.Verifiers {
	vs, err := sumdbclient.ParseVerifiers(vkey)
	if err != nil {
		b.Fatal(err)
	}
	return vs
}

// benchIngest mirrors the origin from empty into path (the last run's
// database is kept there).
func benchIngest(b *testing.B, o *benchOrigin, path string, sel *Selection) {
	c, err := sumdbclient.New(o.url, sumdbclient.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var stored int
	cpu := cpuTime()
	for b.Loop() {
		os.Remove(path)
		m := openBenchMirror(b, path, o.vkey, true)
		f, err := New(Options{Log: m, Client: c, Verifiers: mustVerifiers(b, o.vkey), Select: sel, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		res, err := f.Sync(context.Background())
		m.Close()
		if err != nil {
			b.Fatal(err)
		}
		stored += res.Records
	}
	tree, _ := o.log.Tree(context.Background())
	fi, _ := os.Stat(path)
	b.ReportMetric(float64(tree.N)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(tree.N)*float64(b.N)/(cpuTime()-cpu).Seconds(), "records/cpu-s")
	b.ReportMetric(float64(fi.Size())/float64(tree.N), "disk-bytes/record")
	b.ReportMetric(float64(stored)/float64(b.N), "records-stored")
}

// benchLookups serves the primary and the mirror through internal/server
// over loopback and runs 5,000 lookups of random records per iteration from
// 64 clients, each sending its lookups to the two in turn, so that both
// see the same machine at the same moment (it is shared). It reports each
// one's mean latency and the mirror's relative to the primary's.
func benchLookups(b *testing.B, primary, mirror sumdb.ServerOps, n int) {
	const lookups, clients = 5000, 64
	var urls [2]string
	for i, ops := range []sumdb.ServerOps{primary, mirror} {
		srv := httptest.NewServer(server.New("sum.bench.example", ops, server.Options{Logger: quiet}))
		defer srv.Close()
		urls[i] = srv.URL
	}
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var mu sync.Mutex
	var spent [2]time.Duration
	var count [2]int
	for b.Loop() {
		var g errgroup.Group
		for w := range clients {
			g.Go(func() error {
				var mine [2]time.Duration
				for i := range lookups / clients {
					target := (w + i) % 2
					r := benchRecord(rand.IntN(n))
					p, _ := module.EscapePath(r.Path)
					start := time.Now()
					resp, err := client.Get(urls[target] + "/lookup/" + p + "@" + r.Version)
					if err != nil {
						return err
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mine[target] += time.Since(start)
					if resp.StatusCode != 200 {
						return fmt.Errorf("lookup: %s", resp.Status)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				for t := range mine {
					spent[t] += mine[t]
					count[t] += lookups / clients / 2
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	p, m := spent[0].Seconds()/float64(count[0]), spent[1].Seconds()/float64(count[1])
	b.ReportMetric(p*1e6, "primary-µs/lookup")
	b.ReportMetric(m*1e6, "mirror-µs/lookup")
	b.ReportMetric(m/p, "mirror/primary")
	b.ReportMetric(float64(count[0]+count[1])/b.Elapsed().Seconds(), "lookups/s")
}

// cpuTime is the CPU time this process has used: with the machine shared,
// records per CPU-second says more than records per second.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
