package tlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// BenchmarkBulkFloor measures the fastest this machine can write a log's
// data into a new bbolt file: the floor under any bulk path built on
// bbolt, such as a mirror's bundle import (issue 10's goal: 500,000
// records/s, BenchmarkMirror in internal/mirror). SUMD_BENCH_RECORDS
// records shaped like sum.golang.org's (internal/mirror's benchmark
// records) are written in durable commits of 65,536, as favourably as
// bbolt allows and with none of the work a real import also does (parsing,
// verifying, hashing): records appended in id order into full pages, one
// 8 KiB hash tile per 256 records, and the index put in key order after a
// single sort of all its keys (counted), so that each index page is
// written about once. layout=records is sumd's (a key per record);
// layout=tiles stores each 256 records under one key, the other layout
// the import goal was measured against.
func BenchmarkBulkFloor(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("SUMD_BENCH_RECORDS")); err == nil && v > 0 {
		n = v
	}
	keys := make([]string, n)
	texts := make([][]byte, n)
	for i := range n {
		path := fmt.Sprintf("github.com/org%d/repository-%d", i%1000, i/1000)
		version := fmt.Sprintf("v1.%d.%d", i%97, i%13)
		r := gosum.Record{Path: path, Version: version, Hash: fakeHash(path + version), GoMod: fakeHash(path + version + "/go.mod")}
		keys[i], texts[i] = r.Key(), r.Text()
	}
	tile := make([]byte, tlog.HashSize*256)
	const chunk = 65_536
	for _, perTile := range []bool{false, true} {
		b.Run(map[bool]string{false: "layout=records", true: "layout=tiles"}[perTile], func(b *testing.B) {
			for b.Loop() {
				path := filepath.Join(b.TempDir(), "bulk.db")
				db, err := bbolt.Open(path, 0o600, &bbolt.Options{InitialMmapSize: mmapSize(0)})
				if err != nil {
					b.Fatal(err)
				}
				for from := 0; from < n; from += chunk {
					err := db.Update(func(tx *bbolt.Tx) error {
						recs, _ := tx.CreateBucketIfNotExists(bucketRecords)
						tiles, _ := tx.CreateBucketIfNotExists(bucketTiles)
						recs.FillPercent, tiles.FillPercent = 1, 1
						var blob []byte
						for i := from; i < min(n, from+chunk); i++ {
							if perTile {
								blob = append(blob, texts[i]...)
							} else if err := recs.Put(idKey(int64(i)), texts[i]); err != nil {
								return err
							}
							if i%256 == 255 || i == n-1 {
								if perTile {
									if err := recs.Put(idKey(int64(i/256)), blob); err != nil {
										return err
									}
									blob = nil
								}
								if err := tiles.Put(tileKey(TileID{N: int64(i / 256)}), tile); err != nil {
									return err
								}
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				order := make([]int, n)
				for i := range order {
					order[i] = i
				}
				slices.SortFunc(order, func(x, y int) int { return strings.Compare(keys[x], keys[y]) })
				for from := 0; from < n; from += chunk {
					err := db.Update(func(tx *bbolt.Tx) error {
						index, _ := tx.CreateBucketIfNotExists(bucketIndex)
						index.FillPercent = 1
						for _, i := range order[from:min(n, from+chunk)] {
							if err := index.Put([]byte(keys[i]), idKey(int64(i))); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
