package serve

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sumd-project/sumd/internal/testlog"
)

// TestDiskPart: a database file whose disk falls below the floor is a
// problem of the status (naming no path), logged once per crossing with
// the path; the gauges read the space of each file and the floor, by base
// name, two files of one name apart.
func TestDiskPart(t *testing.T) {
	var mu sync.Mutex
	free := map[string]int64{"/srv/a/sumd.db": 1 << 30, "/srv/b/m.db": 1 << 30, "/srv/c/m.db": 1 << 30}
	read := func(p string) (int64, bool) {
		mu.Lock()
		defer mu.Unlock()
		n, ok := free[p]
		return n, ok
	}
	set := func(p string, n int64) { mu.Lock(); free[p] = n; mu.Unlock() }
	reg := prometheus.NewRegistry()
	var logs testlog.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	p := diskPart([]string{"/srv/a/sumd.db", "/srv/b/m.db", "/srv/c/m.db"}, 64<<20, reg, logger, read)
	report := func() []Problem {
		var s Status
		p.Report(&s)
		return s.Health.Problems
	}
	if got := report(); len(got) != 0 {
		t.Fatalf("problems with room on every disk: %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "sumd_disk_free_bytes"); err != nil || n != 3 {
		t.Fatalf("sumd_disk_free_bytes series: %d, %v; want 3", n, err)
	}
	want := `
# HELP sumd_disk_free_bytes Bytes available to sumd on the file system of a database file (named by its base name); writes are refused below min-free-disk; -1: unknown.
# TYPE sumd_disk_free_bytes gauge
sumd_disk_free_bytes{file="m.db"} 1.073741824e+09
sumd_disk_free_bytes{file="m.db#2"} 5e+06
sumd_disk_free_bytes{file="sumd.db"} 1.073741824e+09
`
	set("/srv/c/m.db", 5e6)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sumd_disk_free_bytes"); err != nil {
		t.Error(err)
	}
	// The floor beside each, so that a rule can predict reaching it (the
	// alerts' SumdDiskFillingUp) rather than 0, past which sumd has long
	// refused writes.
	wantFloor := `
# HELP sumd_disk_min_free_bytes The free space (min-free-disk) below which sumd refuses writes to a database file (named by its base name, as in sumd_disk_free_bytes); 0: no floor.
# TYPE sumd_disk_min_free_bytes gauge
sumd_disk_min_free_bytes{file="m.db"} 6.7108864e+07
sumd_disk_min_free_bytes{file="m.db#2"} 6.7108864e+07
sumd_disk_min_free_bytes{file="sumd.db"} 6.7108864e+07
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantFloor), "sumd_disk_min_free_bytes"); err != nil {
		t.Error(err)
	}
	got := report()
	if len(got) != 1 || got[0].Part != "disk" || !strings.Contains(got[0].Message, "min-free-disk (64 MiB)") || strings.Contains(got[0].Message, "/srv") {
		t.Fatalf("problems with one disk low: %v, want one naming the floor and no path", got)
	}
	report()
	if n := strings.Count(logs.String(), "below min-free-disk"); n != 1 || !strings.Contains(logs.String(), "file=/srv/c/m.db") {
		t.Errorf("log after two reports below the floor (want one line, with the path):\n%s", logs.String())
	}

	// The part's own loop notices the way back without a status asked.
	set("/srv/c/m.db", 1<<30)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	waitUntil(t, func() bool { return strings.Contains(logs.String(), "has room again") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if got := report(); len(got) != 0 {
		t.Errorf("problems once the disk has room: %v", got)
	}

	// With no floor (-min-free-disk 0) the gauge stays, and nothing is a
	// problem.
	reg = prometheus.NewRegistry()
	p = diskPart([]string{"/srv/c/m.db"}, -1, reg, logger, func(string) (int64, bool) { return 0, true })
	var s Status
	p.Report(&s)
	if n, err := testutil.GatherAndCount(reg, "sumd_disk_free_bytes"); err != nil || n != 1 || len(s.Health.Problems) != 0 {
		t.Errorf("with no floor: %d series (%v), problems %v; want the gauge and no problem", n, err, s.Health.Problems)
	}
	noFloor := `
# HELP sumd_disk_min_free_bytes The free space (min-free-disk) below which sumd refuses writes to a database file (named by its base name, as in sumd_disk_free_bytes); 0: no floor.
# TYPE sumd_disk_min_free_bytes gauge
sumd_disk_min_free_bytes{file="m.db"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(noFloor), "sumd_disk_min_free_bytes"); err != nil {
		t.Errorf("with no floor: %v", err)
	}
}

// waitUntil polls cond for up to 10 seconds.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
