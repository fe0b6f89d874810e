package upstream

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/testproxy"
	"github.com/sumd-project/sumd/internal/tlog"
)

// laggingProxy is an upstream served in-process, so that it runs in a
// synctest bubble: the GOPROXY tree at dir, each answer given after the
// delay lag returns for its URL, or never (until the request's context
// ends) if that is negative.
type laggingProxy struct {
	files http.Handler
	lag   func(req *http.Request) time.Duration
}

func newLaggingProxy(t testing.TB, lag func(req *http.Request) time.Duration, mods ...testproxy.Module) *http.Client {
	t.Helper()
	dir := t.TempDir()
	if _, err := testproxy.Build(dir, mods); err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &laggingProxy{http.FileServer(http.Dir(dir)), lag}}
}

func (p *laggingProxy) RoundTrip(req *http.Request) (*http.Response, error) {
	d := p.lag(req)
	wait := time.After(d)
	if d < 0 {
		wait = nil
	}
	select {
	case <-req.Context().Done():
		return nil, req.Context().Err()
	case <-wait:
	}
	w := httptest.NewRecorder()
	p.files.ServeHTTP(w, req)
	return w.Result(), nil
}

// TestLookupDeadline: a first lookup whose fetch and cross-check take
// longer, in all, than sumd serve's write timeout for lookups (a minute
// and three upstream timeouts) must still get an answer the go command
// can show, a 504 naming no upstream, not a connection cut as the
// deadline passes: four slow proxies after "|", each one's .mod taking
// 30 s and its zip the whole request timeout, or a fetch of 20 s and a
// cross-check whose discovery probes the four for a minute each.
func TestLookupDeadline(t *testing.T) {
	const writeTimeout = time.Minute + 3*DefaultTimeout // cmd/sumd's for -upstream-timeout 1m
	const list = "http://p1.test|http://p2.test|http://p3.test|http://p4.test"
	m := goodModule("example.com/m", "v1.0.0")
	tests := []struct {
		name    string
		lag     func(req *http.Request) time.Duration
		check   bool
		outcome string // of the fetch, in sumd_upstream_fetches_total
	}{
		{"four slow proxies", func(req *http.Request) time.Duration {
			if strings.HasSuffix(req.URL.Path, ".zip") {
				return -1
			}
			return 30 * time.Second
		}, false, "timeout"},
		{"slow cross-check", func(req *http.Request) time.Duration {
			if strings.HasPrefix(req.URL.Path, "/sumdb/") {
				return -1
			}
			return 10 * time.Second
		}, true, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				client := newLaggingProxy(t, tt.lag, m)
				met := NewMetrics(prometheus.NewRegistry())
				opts := RecorderOptions{Fetcher: newFetcher(t, list, FetcherOptions{HTTPClient: client, Metrics: met})}
				if tt.check {
					_, vkey, err := tlog.GenerateKey("sum.example.com")
					if err != nil {
						t.Fatal(err)
					}
					opts.Checker, err = NewChecker(CheckerOptions{Key: vkey, Sources: mustParseList(t, list), HTTPClient: client, Logger: quiet})
					if err != nil {
						t.Fatal(err)
					}
				}
				l := testLog(t)
				h := server.New("sumd.test", newRecorder(t, l, opts), server.Options{Logger: quiet})
				code, body := lookupFor(h, m.Path+"@"+m.Version, writeTimeout)
				const want = "upstream proxy error: example.com/m@v1.0.0: fetching it from upstream and checking it took longer than 3m30s"
				if code != http.StatusGatewayTimeout || !strings.HasPrefix(body, want) || strings.Contains(body, ".test") {
					t.Errorf("lookup within the connection's write timeout: %d %q, want 504 %q… naming no upstream", code, body, want)
				}
				if got := testutil.ToFloat64(met.fetches.WithLabelValues(tt.outcome)); got != 1 {
					t.Errorf("fetches with outcome %s: %v, want 1", tt.outcome, got)
				}
				if n := treeSize(t, l); n != 0 {
					t.Errorf("tree size %d, want 0", n)
				}
			})
		})
	}
}
