package seed

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/metrics"
	"syscall"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/tlog"
)

// BenchmarkImport is the regression benchmark of the import cliff (issue
// 11): sumd add -gosum's whole path — sort, check against the log, commit
// in chunks — from a go.sum file in random order into a new bbolt log, at
// 100,000 and 1,000,000 records. Records/s must stay flat between the two.
// The go.sum file is written before the timer starts. peak-heap-MiB is the
// largest heap in use seen during an import (sampled every 10 ms), the
// figure README gives for add -gosum's memory.
func BenchmarkImport(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			file := filepath.Join(b.TempDir(), "go.sum")
			if err := writeShuffled(file, n); err != nil {
				b.Fatal(err)
			}
			var cpu time.Duration
			var peak uint64
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				l := openBenchLog(b, filepath.Join(dir, "sumd.db"))
				cpu0 := cpuTime()
				stop := sampleHeap(&peak)
				b.StartTimer()
				importFile(b, file, dir, l, n)
				b.StopTimer()
				stop()
				cpu += cpuTime() - cpu0
				l.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			// The process's CPU time, all cores: a shared machine slows the
			// rate down, but hardly this.
			b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cpu-µs/record")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}

// sampleHeap records in peak the largest heap in use (runtime/metrics,
// which does not stop the world) every 10 ms until stop is called.
func sampleHeap(peak *uint64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			*peak = max(*peak, s[0].Value.Uint64())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

func importFile(b *testing.B, file, dir string, l *tlog.Log, n int) {
	ctx := context.Background()
	s, err := Sort(context.Background(), []string{file}, Options{TempDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sink := LogSink{Log: l}
	sv, err := s.Survey(ctx, sink, false)
	if err != nil || sv.Records != n || sv.Conflicts != 0 {
		b.Fatalf("survey: %+v, %v", sv, err)
	}
	if added, size, err := s.Commit(ctx, sink); err != nil || added != int64(n) || size != int64(n) {
		b.Fatalf("commit: %d added, tree %d, %v", added, size, err)
	}
}

func openBenchLog(b testing.TB, path string) *tlog.Log {
	skey, _, err := tlog.GenerateKey("bench.example.com")
	if err != nil {
		b.Fatal(err)
	}
	k, _ := tlog.ParseKey(skey)
	l, err := tlog.Open(path, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// writeShuffled writes n records as go.sum lines in random order.
func writeShuffled(file string, n int) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	h := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
	}
	for _, j := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		p, v := fmt.Sprintf("example.com/load/m%d", j/1000), fmt.Sprintf("v1.0.%d", j%1000)
		fmt.Fprintf(w, "%s %s %s\n%s %s/go.mod %s\n", p, v, h(p+v), p, v, h(p+v+"/go.mod"))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
