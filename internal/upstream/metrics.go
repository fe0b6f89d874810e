package upstream

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the upstream metrics of a Fetcher, Recorder and Checker, which
// may share one. A nil *Metrics records nothing. Labels come from fixed
// sets (Kind strings, check outcomes): never module paths or error text.
type Metrics struct {
	fetches       *prometheus.CounterVec // sumd_upstream_fetches_total{outcome}
	fetchBytes    prometheus.Counter     // sumd_upstream_fetch_bytes_total
	fetchSeconds  prometheus.Histogram   // sumd_upstream_fetch_duration_seconds
	negHits       prometheus.Counter     // sumd_upstream_negative_cache_hits_total
	negEntries    prometheus.Gauge       // sumd_upstream_negative_cache_entries
	checks        *prometheus.CounterVec // sumd_upstream_crosschecks_total{outcome}
	inFlight      prometheus.Gauge       // sumd_upstream_lookup_fetches_in_flight
	refused       prometheus.Counter     // sumd_upstream_lookup_fetches_refused_total
	clientRefused prometheus.Counter     // sumd_upstream_client_fetches_refused_total
}

// Fetch outcomes: "ok", a Kind's String, or "abandoned": the fetch was
// cancelled because nobody waited for it any more (see Recorder.fly), no
// failure of the upstream's, which "error" and "timeout" are.
var fetchOutcomes = []string{"ok", "gone", "invalid", "error", "timeout", "local", "abandoned"}

// Cross-check outcomes.
const (
	checkOK          = "ok"          // the upstream database agrees
	checkMismatch    = "mismatch"    // it holds other hashes: refused
	checkMissing     = "missing"     // it has no record: refused
	checkUnavailable = "unavailable" // unreachable; the policy decided
	checkError       = "error"       // it misbehaved or answered garbage: refused
	checkPrivate     = "private"     // the path is private: not checked
)

var checkOutcomes = []string{checkOK, checkMismatch, checkMissing, checkUnavailable, checkError, checkPrivate}

// NewMetrics registers the upstream metrics on reg. A nil reg means no
// metrics: it returns nil, which every user accepts.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		return nil
	}
	m := &Metrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "upstream", Name: "fetches_total",
			Help: "Module versions fetched from upstream proxies, by outcome (ok, gone, invalid, error, timeout, local: sumd could not store the zip, abandoned: every client waiting for it went away).",
		}, []string{"outcome"}),
		fetchBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "upstream", Name: "fetch_bytes_total",
			Help: "Bytes of .mod and .zip files read from upstream proxies.",
		}),
		fetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "sumd", Subsystem: "upstream", Name: "fetch_duration_seconds",
			Help:    "Time to fetch, validate and hash one module version, whatever the outcome.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14), // 10ms … ~80s
		}),
		negHits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "upstream", Name: "negative_cache_hits_total",
			Help: "Lookups answered from the negative cache without asking upstream.",
		}),
		negEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sumd", Subsystem: "upstream", Name: "negative_cache_entries",
			Help: "Versions remembered as gone or invalid.",
		}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "upstream", Name: "crosschecks_total",
			Help: "Cross-checks with the upstream checksum database, by outcome (ok, mismatch, missing, unavailable, error, private).",
		}, []string{"outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sumd", Subsystem: "upstream", Name: "lookup_fetches_in_flight",
			Help: "First lookups fetching from upstream now (at most -upstream-parallel).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "upstream", Name: "lookup_fetches_refused_total",
			Help: "First lookups answered 503 because -upstream-parallel fetches were in flight.",
		}),
		clientRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "upstream", Name: "client_fetches_refused_total",
			Help: "First lookups answered 503 because their client had -upstream-per-client lookups waiting for upstream.",
		}),
	}
	for _, o := range fetchOutcomes {
		m.fetches.WithLabelValues(o) // export every outcome from the start
	}
	for _, o := range checkOutcomes {
		m.checks.WithLabelValues(o)
	}
	reg.MustRegister(m.fetches, m.fetchBytes, m.fetchSeconds, m.negHits, m.negEntries, m.checks, m.inFlight, m.refused, m.clientRefused)
	return m
}

func (m *Metrics) observeFetch(ctx context.Context, err error, d time.Duration) {
	if m == nil {
		return
	}
	outcome := "ok"
	switch k := kindOf(err); {
	case k != 0:
		outcome = k.String()
	case err != nil && pastDeadline(ctx):
		// The Recorder's deadline stopped it: the upstream was too
		// slow, as a request's timeout says.
		outcome = KindTimeout.String()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// Fetch's own ctx ended (it returns no *Error then): its
		// callers went, the upstream did not fail.
		outcome = "abandoned"
	case err != nil:
		outcome = "error"
	}
	m.fetches.WithLabelValues(outcome).Inc()
	m.fetchSeconds.Observe(d.Seconds())
}

func (m *Metrics) addBytes(n int64) {
	if m != nil && n > 0 {
		m.fetchBytes.Add(float64(n))
	}
}

func (m *Metrics) negativeHit() {
	if m != nil {
		m.negHits.Inc()
	}
}

func (m *Metrics) setNegativeEntries(n int) {
	if m != nil {
		m.negEntries.Set(float64(n))
	}
}

func (m *Metrics) crossCheck(outcome string) {
	if m != nil {
		m.checks.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) fetchStarted() {
	if m != nil {
		m.inFlight.Inc()
	}
}

func (m *Metrics) fetchEnded() {
	if m != nil {
		m.inFlight.Dec()
	}
}

func (m *Metrics) refuseFetch() {
	if m != nil {
		m.refused.Inc()
	}
}

func (m *Metrics) refuseClient() {
	if m != nil {
		m.clientRefused.Inc()
	}
}
