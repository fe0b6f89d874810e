package mirror

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestOldLookedCounted: a round that stores a go.sum version below the
// held head (addOld), the origin's head unchanged, counts that record and
// that commit in its Result, which sumd mirror logs, and in
// sumd_mirror_records_total: it counted neither, reporting 0 records
// stored.
func TestOldLookedCounted(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 600)
	m, _ := newMirror(t, o)
	gs := filepath.Join(t.TempDir(), "go.sum")
	if err := os.WriteFile(gs, testRecord(5, 1).Text(), 0o644); err != nil {
		t.Fatal(err)
	}
	sel, err := ParseSelection([]string{"golang.org/x/*", gs})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel; opts.Metrics = NewMetrics(reg) })
	first, err := f.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := recordsTotal(t, reg); got != float64(first.Records) {
		t.Fatalf("after the first round: records_total %v, Result.Records %d", got, first.Records)
	}
	lines := append(testRecord(5, 1).Text(), testRecord(7, 1).Text()...)
	if err := os.WriteFile(gs, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := f.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadRecords(ctx, 7, 1); err != nil {
		t.Fatalf("the go.sum version below the head was not stored: %v", err)
	}
	if res.Records != 1 || res.Commits != 1 {
		t.Errorf("round storing one go.sum version below the head: %d records in %d commits, want 1 in 1", res.Records, res.Commits)
	}
	if got := recordsTotal(t, reg) - float64(first.Records); got != 1 {
		t.Errorf("round storing one go.sum version below the head: records_total rose by %v, want 1", got)
	}
}

// recordsTotal gathers sumd_mirror_records_total of the origin testName.
func recordsTotal(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "sumd_mirror_records_total" {
			for _, m := range f.GetMetric() {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
