package mirror

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/module"
)

// TestForwardCounted: a forwarded lookup that stores records adds them to
// sumd_mirror_records_total, as a round does: the record it was asked
// for, below the held head, and, when its answer comes with a newer head,
// the records of the extension the mirror keeps. It counted none (only
// sumd_mirror_forwarded_lookups_total{result="stored"}), so the counter
// said a mirror fed by lookups stored nothing.
func TestForwardCounted(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 600)
	m, _ := newMirror(t, o)
	sel, _ := ParseSelection([]string{"golang.org/x/*"})
	reg := prometheus.NewRegistry()
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel; opts.Metrics = NewMetrics(reg) })
	res, err := f.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := float64(res.Records)
	lookup := func(i int, want float64) {
		t.Helper()
		r := testRecord(i, 1)
		if _, err := f.Forward(ctx, module.Version{Path: r.Path, Version: r.Version}); err != nil {
			t.Fatalf("forwarded lookup of %s: %v", r.Path, err)
		}
		got := recordsTotal(t, reg) - total
		if got != want {
			t.Errorf("forwarded lookup of record %d: records_total rose by %v, want %v", i, got, want)
		}
		total += got
	}
	lookup(17, 1) // below the held head
	o.grow(600, 10)
	lookup(605, 2) // the answer's head is newer: 605, and 603 the selection keeps
}
