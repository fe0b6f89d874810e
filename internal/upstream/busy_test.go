package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestMaxFetches: N+k concurrent first lookups of distinct versions against
// an upstream that holds every request: exactly N fetches reach it, the k
// others are answered 503 with Retry-After and a reason at once, and none
// of those is recorded or remembered as gone.
func TestMaxFetches(t *testing.T) {
	const n, k = 3, 4
	var mods []testproxy.Module
	for i := range n + k {
		mods = append(mods, goodModule(fmt.Sprintf("example.com/m%d", i), "v1.0.0"))
	}
	p := newProxy(t, mods...)
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	var holding atomic.Int32
	p.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, ".mod") {
			holding.Add(1)
			<-release
		}
		return false
	})
	reg := prometheus.NewRegistry()
	met := NewMetrics(reg)
	l := testLog(t)
	rec := newRecorder(t, l, RecorderOptions{Fetcher: newFetcher(t, p.url, FetcherOptions{Metrics: met}),
		MaxFetches: n, NegativeTTL: time.Hour, Metrics: met})
	srv := httptest.NewServer(server.New("sumd.test", rec, server.Options{Logger: quiet}))
	defer srv.Close()
	defer releaseOnce() // before the server closes, even when the test fails

	type answer struct {
		status     int
		body       string
		retryAfter string
	}
	answers := make(chan answer, n+k)
	var wg sync.WaitGroup
	for _, m := range mods {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/lookup/" + m.Path + "@" + m.Version)
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{resp.StatusCode, string(body), resp.Header.Get("Retry-After")}
		})
	}
	// The k refusals come while the n fetches are held.
	for range k {
		select {
		case a := <-answers:
			if a.status != http.StatusServiceUnavailable || a.retryAfter == "" || a.body != ErrBusy.Error()+"\n" {
				t.Errorf("lookup beyond the cap: %d %q (Retry-After %q), want 503 %q with Retry-After", a.status, a.body, a.retryAfter, ErrBusy)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no refusal within 10s; %d fetches reached upstream", holding.Load())
		}
	}
	// The n that took a slot may still be on their way to upstream.
	for deadline := time.Now().Add(10 * time.Second); holding.Load() < n && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := holding.Load(); got != n {
		t.Errorf("%d fetches reached upstream, want %d", got, n)
	}
	if got := testutil.ToFloat64(met.inFlight); got != n {
		t.Errorf("in-flight gauge %v, want %d", got, n)
	}
	releaseOnce()
	wg.Wait()
	close(answers)
	for a := range answers {
		if a.status != http.StatusOK {
			t.Errorf("lookup within the cap: %d %q", a.status, a.body)
		}
	}
	if got := treeSize(t, l); got != n {
		t.Errorf("tree size %d, want the %d fetched versions only", got, n)
	}
	if got := testutil.ToFloat64(met.refused); got != k {
		t.Errorf("refused counter %v, want %d", got, k)
	}
	if got := testutil.ToFloat64(met.inFlight); got != 0 {
		t.Errorf("in-flight gauge %v after the fetches, want 0", got)
	}

	// A refused version was neither recorded nor remembered: asked again,
	// with the slots free, it is fetched.
	var refused []module.Version
	for _, m := range mods {
		mv := mv(m.Path, m.Version)
		if _, err := l.Lookup(context.Background(), mv); errors.Is(err, fs.ErrNotExist) {
			refused = append(refused, mv)
		}
	}
	if len(refused) != k {
		t.Fatalf("%d versions unrecorded, want %d", len(refused), k)
	}
	if _, err := rec.Lookup(context.Background(), refused[0]); err != nil {
		t.Errorf("lookup of a refused version once the slots are free: %v", err)
	}
}

// TestMaxFetchesAdmin: Record, the operator's request, is not refused when
// the lookups hold every slot.
func TestMaxFetchesAdmin(t *testing.T) {
	a, b := goodModule("example.com/a", "v1.0.0"), goodModule("example.com/b", "v1.0.0")
	p := newProxy(t, a, b)
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	p.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/example.com/a/") {
			held <- struct{}{}
			<-release
		}
		return false
	})
	rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: newFetcher(t, p.url, FetcherOptions{}), MaxFetches: 1})
	done := make(chan error, 1)
	go func() { _, err := rec.Lookup(context.Background(), mv(a.Path, a.Version)); done <- err }()
	<-held
	if _, err := rec.Lookup(context.Background(), mv(b.Path, b.Version)); err != ErrBusy {
		t.Errorf("second lookup with one slot: %v, want ErrBusy", err)
	}
	if _, _, err := rec.Record(context.Background(), mv(b.Path, b.Version)); err != nil {
		t.Errorf("Record while the slot is taken: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("the lookup holding the slot: %v", err)
	}
}
