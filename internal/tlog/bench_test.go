package tlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// BenchmarkAppend measures durable append throughput: every Add returns
// only after fsync. "request=K" adds K records per call from one caller;
// "appenders=C" runs C callers adding one record each, which the sequencer
// gathers into group commits.
func BenchmarkAppend(b *testing.B) {
	for _, k := range []int{1, 16, 256, 1024} {
		b.Run(fmt.Sprintf("request=%d", k), func(b *testing.B) {
			l := openBench(b)
			n := 0
			for b.Loop() {
				batch := make([]gosum.Record, k)
				for i := range batch {
					batch[i] = record(n, 3)
					n++
				}
				if _, err := l.Add(context.Background(), batch...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
	for _, c := range []int{16, 256} {
		b.Run(fmt.Sprintf("appenders=%d", c), func(b *testing.B) {
			l := openBench(b)
			next := make(chan int)
			var wg sync.WaitGroup
			for range c {
				wg.Go(func() {
					for i := range next {
						if _, err := l.Add(context.Background(), record(i, 4)); err != nil {
							b.Error(err)
						}
					}
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
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func openBench(b *testing.B) *Log {
	b.Helper()
	l := openTest(b, filepath.Join(b.TempDir(), "sumd.db"), testKey(b, "bench.example.com"), VerifyTail)
	b.Cleanup(func() { l.Close() })
	return l
}

// benchRecords is the size of the log the read benchmarks use.
const benchRecords = 100_000

// filledLog returns a log holding benchRecords records.
func filledLog(b *testing.B) *Log {
	b.Helper()
	l := openBench(b)
	for i := 0; i < benchRecords; i += 10_000 {
		batch := make([]gosum.Record, 10_000)
		for j := range batch {
			batch[j] = record(i+j, 5)
		}
		if _, err := l.Add(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkRead measures the read paths the HTTP server uses, from
// parallel readers of a 100,000-record log.
func BenchmarkRead(b *testing.B) {
	l := filledLog(b)
	ctx := context.Background()
	b.Run("lookup", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
			for pb.Next() {
				r := record(rng.IntN(benchRecords), 5)
				if _, err := l.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("hash-tile", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
			for pb.Next() {
				t := tlog.Tile{H: tileHeight, L: 0, N: int64(rng.IntN(benchRecords >> tileHeight)), W: 1 << tileHeight}
				if _, err := l.ReadTileData(ctx, t); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("data-tile", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
			for pb.Next() {
				n := int64(rng.IntN(benchRecords >> tileHeight))
				if _, err := l.ReadRecords(ctx, n<<tileHeight, 1<<tileHeight); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("signed", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := l.Signed(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkDiskBytes reports the bbolt file's bytes per record for the
// layout sumd uses (hash tiles) and for the alternative it rejected (every
// stored hash under its own key), for the same 100,000 records.
func BenchmarkDiskBytes(b *testing.B) {
	for b.Loop() {
		l := filledLog(b)
		size, err := l.store.(*BoltStore).Size()
		if err != nil {
			b.Fatal(err)
		}
		tree, _ := l.Tree(context.Background())
		b.ReportMetric(float64(size)/float64(tree.N), "tiles-bytes/record")
		b.ReportMetric(storedHashLayoutBytes(b)/benchRecords, "storedhashes-bytes/record")
	}
}

// storedHashLayoutBytes builds the rejected layout — records, index and
// every stored hash keyed by its index — and returns its file size.
func storedHashLayoutBytes(b *testing.B) float64 {
	path := filepath.Join(b.TempDir(), "alt.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ref := &reference{}
	for i := 0; i < benchRecords; i += 10_000 {
		err := db.Update(func(tx *bbolt.Tx) error {
			recs, _ := tx.CreateBucketIfNotExists(bucketRecords)
			index, _ := tx.CreateBucketIfNotExists(bucketIndex)
			hashes, _ := tx.CreateBucketIfNotExists([]byte("hashes"))
			recs.FillPercent, hashes.FillPercent = 1, 1
			for j := range 10_000 {
				r := record(i+j, 5)
				start := int64(len(ref.hashes))
				ref.add(b, r.Text())
				for k := start; k < int64(len(ref.hashes)); k++ {
					hashes.Put(idKey(k), ref.hashes[k][:])
				}
				recs.Put(idKey(int64(i+j)), r.Text())
				index.Put([]byte(r.Key()), idKey(int64(i+j)))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return float64(fi.Size())
}

// BenchmarkOpen measures Open's integrity check on a 100,000-record log.
func BenchmarkOpen(b *testing.B) {
	l := filledLog(b)
	path := l.store.(*BoltStore).Path()
	keys := *l.keys.Load()
	l.Close()
	for _, mode := range []VerifyMode{VerifyTail, VerifyFull} {
		b.Run("verify="+mode.String(), func(b *testing.B) {
			for b.Loop() {
				l, err := Open(path, Options{Keys: keys, Verify: mode, Logger: quietLogger()})
				if err != nil {
					b.Fatal(err)
				}
				l.Close()
			}
			b.ReportMetric(benchRecords*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
