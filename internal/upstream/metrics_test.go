package upstream

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sumd-project/sumd/internal/server"
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

// TestAbandonedFetchOutcome: a fetch cancelled because every client
// waiting for it went away was counted as outcome "error", which
// SumdUpstreamFailing reads as the upstream failing: a wave of cancelled
// CI jobs fired it with the upstream healthy. It is counted as
// "abandoned" now.
func TestAbandonedFetchOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := goodModule("example.com/slow", "v1.0.0")
		met := NewMetrics(prometheus.NewRegistry())
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: newSlowProxy(t, m), Metrics: met})
		h := server.New("sumd.test", newRecorder(t, testLog(t), RecorderOptions{Fetcher: f, Metrics: met}), server.Options{Logger: quiet})
		lookupFor(h, m.Path+"@"+m.Version, time.Second)
		synctest.Wait() // the cancelled fetch has ended
		for outcome, want := range map[string]float64{"error": 0, "abandoned": 1} {
			if got := testutil.ToFloat64(met.fetches.WithLabelValues(outcome)); got != want {
				t.Errorf("fetches{outcome=%q} = %v, want %v", outcome, got, want)
			}
		}
	})
}
