package server

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	f, _ := newFakeOps(t, 10)
	reg := prometheus.NewRegistry()
	s := New(testName, f, Options{Logger: quietLogger, Registry: reg})
	lookups := s.metrics.requests.WithLabelValues(routeLookup, "200")
	before := testutil.ToFloat64(lookups)

	get(s, "GET", "/lookup/example.com/m7@v1.7.0")
	get(s, "GET", prefix+"/lookup/example.com/m8@v1.8.0")
	get(s, "GET", "/lookup/example.com/m8@v1.9.9") // 404 is another series
	get(s, "GET", "/tile/8/data/000.p/3")
	get(s, "GET", "/example.com/m/@v/list")

	if got := testutil.ToFloat64(lookups) - before; got != 2 {
		t.Errorf("requests_total{route=lookup,code=200} grew by %v, want 2", got)
	}
	// A second server on the same registry shares the metrics instead of panicking.
	s2 := New("other.example", f, Options{Logger: quietLogger, Registry: reg})
	get(s2, "GET", "/lookup/example.com/m7@v1.7.0")

	w := get(s, "GET", "/metrics")
	for _, want := range []string{
		`sumd_http_requests_total{code="200",route="lookup"} 3`,
		`sumd_http_requests_total{code="404",route="lookup"} 1`,
		`sumd_http_requests_total{code="200",route="data_tile"} 1`,
		`sumd_http_requests_total{code="404",route="other"} 1`,
		`sumd_http_request_duration_seconds_count{route="lookup"} 4`,
		`sumd_http_request_duration_seconds_count{route="supported"} 0`,
		// Each server's cache has its series: the second holds a record.
		`sumd_http_cache_bytes{database="` + testName + `"} `,
		`sumd_http_cache_bytes{database="other.example"} `,
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestLogLevel(t *testing.T) {
	for _, tt := range []struct {
		route  string
		status int
		want   string
	}{
		{routeTile, 200, "DEBUG"},
		{routeLatest, 200, "DEBUG"},
		{routeLookup, 200, "INFO"},
		{routeSupported, 200, "INFO"},
		{routeTile, 404, "INFO"},
		{routeHealthz, 503, "INFO"},
		{routeLookup, 502, "ERROR"},
	} {
		if got := logLevel(tt.route, tt.status).String(); got != tt.want {
			t.Errorf("logLevel(%s, %d) = %s, want %s", tt.route, tt.status, got, tt.want)
		}
	}
}
