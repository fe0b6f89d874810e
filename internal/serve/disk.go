package serve

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// diskInterval is how often diskPart reads the free space when no one asks
// for the status, to log a crossing of the floor: the status reads it
// afresh (a statfs(2), about a microsecond).
var diskInterval = 10 * time.Second

// diskPart watches the free space of the file systems holding the bbolt
// files a server writes. Below floor, the store refuses every write
// (tlog.LowDiskError): the part reports it as a problem, so /healthz says
// degraded while lookups of recorded versions go on, and logs it once per
// crossing with the path, which the problem (shown to anonymous clients)
// does not name. sumd_disk_free_bytes and sumd_disk_min_free_bytes let
// monitoring warn before that.
// The floor here and the store's are the same figure; the store's check
// also counts the write's own size, so a large write (an import's chunk of
// 65,536 records, about 30 MiB) can be refused while the status still says
// ok; never the other way round.
func diskPart(files []string, floor int64, reg prometheus.Registerer, logger *slog.Logger, free func(string) (int64, bool)) Part {
	low := make([]atomic.Bool, len(files))
	seen := map[string]int{}
	for _, f := range files {
		if reg == nil {
			break
		}
		// The base name only: /metrics may be open to anyone.
		label := filepath.Base(f)
		if seen[label]++; seen[label] > 1 {
			label = fmt.Sprintf("%s#%d", label, seen[label])
		}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sumd", Name: "disk_free_bytes",
			Help:        "Bytes available to sumd on the file system of a database file (named by its base name); writes are refused below min-free-disk; -1: unknown.",
			ConstLabels: prometheus.Labels{"file": label},
		}, func() float64 {
			n, ok := free(f)
			if !ok {
				return -1
			}
			return float64(n)
		}))
		// The floor too, so that monitoring predicts reaching it rather
		// than 0 (packaging/prometheus's SumdDiskFillingUp).
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sumd", Name: "disk_min_free_bytes",
			Help:        "The free space (min-free-disk) below which sumd refuses writes to a database file (named by its base name, as in sumd_disk_free_bytes); 0: no floor.",
			ConstLabels: prometheus.Labels{"file": label},
		}, func() float64 { return float64(max(floor, 0)) }))
	}
	check := func() {
		if floor <= 0 {
			return // no floor: the gauge only
		}
		for i, f := range files {
			n, ok := free(f)
			now := ok && n < floor
			if low[i].Swap(now) == now {
				continue
			}
			if now {
				logger.Error("the database's disk is below min-free-disk: new records are refused until space is freed",
					"file", f, "free_bytes", n, "min_free_bytes", floor)
			} else {
				logger.Info("the database's disk has room again: new records are accepted", "file", f, "free_bytes", n)
			}
		}
	}
	return Part{
		Name: "disk space watch",
		Run: func(ctx context.Context) error {
			t := time.NewTicker(diskInterval)
			defer t.Stop()
			for {
				check()
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
		},
		Report: func(s *Status) {
			check()
			n := 0
			for i := range files {
				if low[i].Load() {
					n++
				}
			}
			if n > 0 {
				s.problem("disk", "%d database file(s) on a disk with less free space than min-free-disk (%d MiB): sumd records nothing new there until its operator frees space; see the server log", n, floor>>20)
			}
		},
	}
}

// diskFiles are the bbolt files of cfg whose disks diskPart watches.
func diskFiles(cfg Config) []string {
	var out []string
	for _, f := range append([]string{cfg.DBFile}, cfg.MirrorFiles...) {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}
