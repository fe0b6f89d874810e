package upstream

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// BenchmarkFirstLookup measures the first-lookup path of issue 11 item 3:
// a lookup of a version the log lacks, fetched from a file:// GOPROXY tree
// (small modules, as most are), validated, hashed and recorded durably, 16
// lookups at once as sumd serves them. cpu-µs/record is the process's CPU
// time per recorded version, all goroutines; the goal is 150 (hashing
// alone is about 85).
func BenchmarkFirstLookup(b *testing.B) {
	const versions = 2000
	dir := b.TempDir()
	mods := make([]testproxy.Module, versions)
	for i := range mods {
		mods[i] = goodModule(fmt.Sprintf("example.com/first/m%d", i), "v1.0.0")
	}
	url, err := testproxy.Build(filepath.Join(dir, "proxy"), mods)
	if err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		rec := newRecorder(b, testLog(b), RecorderOptions{Fetcher: newFetcher(b, url, FetcherOptions{TempDir: b.TempDir()})})
		cpu0 := processCPU()
		b.StartTimer()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range DefaultMaxFetches {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < versions; i = int(next.Add(1) - 1) {
					m := mv(mods[i].Path, mods[i].Version)
					if _, err := rec.Lookup(context.Background(), m); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		cpu += processCPU() - cpu0
		n += versions
		b.StartTimer()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/record")
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFetchFile is the fetch alone of BenchmarkFirstLookup: one
// version's .mod and zip read from a file:// tree, validated and hashed,
// nothing recorded, one at a time. It moves when the fetch's own cost
// does, which BenchmarkFirstLookup's figure, a busy machine's, hides.
func BenchmarkFetchFile(b *testing.B) {
	m := mv("example.com/first/m", "v1.0.0")
	url, err := testproxy.Build(filepath.Join(b.TempDir(), "proxy"), []testproxy.Module{goodModule(m.Path, m.Version)})
	if err != nil {
		b.Fatal(err)
	}
	f := newFetcher(b, url, FetcherOptions{TempDir: b.TempDir()})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Fetch(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchHTTP is BenchmarkFetchFile from a proxy on HTTP (in this
// process, so its CPU time counts too): the small zip is downloaded into
// memory and hashed there, with no file in TempDir.
func BenchmarkFetchHTTP(b *testing.B) {
	m := mv("example.com/first/m", "v1.0.0")
	p := newProxy(b, goodModule(m.Path, m.Version))
	f := newFetcher(b, p.url, FetcherOptions{TempDir: b.TempDir()})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Fetch(context.Background(), m); err != nil {
			b.Fatal(err)
		}
	}
}
