package upstream

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetrics checks fetch outcomes, bytes, latency and the negative cache
// metrics, and that a nil registry means no metrics.
func TestMetrics(t *testing.T) {
	if NewMetrics(nil) != nil {
		t.Fatal("NewMetrics(nil) is not nil")
	}
	reg := prometheus.NewRegistry()
	met := NewMetrics(reg)
	m, missing := mv("example.com/m", "v1.0.0"), mv("example.com/m", "v1.9.0")
	p := newProxy(t, goodModule(m.Path, m.Version))
	f := newFetcher(t, p.url, FetcherOptions{Metrics: met})
	rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: f, NegativeTTL: time.Minute, Metrics: met})
	rec.Lookup(context.Background(), m)
	rec.Lookup(context.Background(), missing)
	rec.Lookup(context.Background(), missing)

	for outcome, want := range map[string]float64{"ok": 1, "gone": 1, "invalid": 0, "error": 0, "timeout": 0, "local": 0} {
		if got := testutil.ToFloat64(met.fetches.WithLabelValues(outcome)); got != want {
			t.Errorf("fetches{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if got := testutil.ToFloat64(met.fetchBytes); got < 100 {
		t.Errorf("fetch bytes = %v, want the .mod and .zip sizes", got)
	}
	if got := testutil.CollectAndCount(met.fetchSeconds); got != 1 {
		t.Errorf("fetch duration histogram has %d series", got)
	}
	if got := testutil.ToFloat64(met.negHits); got != 1 {
		t.Errorf("negative cache hits = %v, want 1", got)
	}
	if got := testutil.ToFloat64(met.negEntries); got != 1 {
		t.Errorf("negative cache entries = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n < 6+6+4 {
		t.Errorf("gathered %d series (%v), want every outcome exported from the start", n, err)
	}
}
