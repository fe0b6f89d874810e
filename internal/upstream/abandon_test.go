package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// slowProxy is an upstream served in-process, so that it runs in a
// synctest bubble: the GOPROXY tree at dir, but a request whose path holds
// "slow" is answered only after 50 s (fake time), or never if its context
// ends first — a proxy, or a module host behind it, that an attacker made
// slow.
type slowProxy struct{ files http.Handler }

func newSlowProxy(t testing.TB, mods ...testproxy.Module) *http.Client {
	t.Helper()
	dir := t.TempDir()
	if _, err := testproxy.Build(dir, mods); err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &slowProxy{http.FileServer(http.Dir(dir))}}
}

func (p *slowProxy) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.Contains(req.URL.Path, "slow") {
		select {
		case <-req.Context().Done():
			return nil, req.Context().Err()
		case <-time.After(50 * time.Second):
		}
	}
	w := httptest.NewRecorder()
	p.files.ServeHTTP(w, req)
	return w.Result(), nil
}

// lookupFor asks h for path@version as a client that gives up after d
// (curl --max-time), and returns the status.
func lookupFor(h http.Handler, mod string, d time.Duration) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/lookup/"+mod, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

// TestAbandonedFetchesFreeSlots: the finding's repro. 16 first lookups of
// versions upstream is slow to serve, from clients that give up after a
// second, must not hold the 16 fetch slots for the 50 s upstream takes:
// once every client waiting on a fetch has gone, the fetch is cancelled
// and its slot freed, so a lookup of another new version is served.
func TestAbandonedFetchesFreeSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fresh := goodModule("example.com/fresh", "v1.0.0")
		mods := []testproxy.Module{fresh}
		for i := range DefaultMaxFetches {
			mods = append(mods, goodModule(fmt.Sprintf("example.com/slow%d", 100+i), "v1.0.0"))
		}
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: newSlowProxy(t, mods...)})
		l := testLog(t)
		rec := newRecorder(t, l, RecorderOptions{Fetcher: f})
		h := server.New("sumd.test", rec, server.Options{Logger: quiet})

		for _, m := range mods[1:] {
			go lookupFor(h, m.Path+"@"+m.Version, time.Second)
		}
		time.Sleep(2 * time.Second) // every client has given up
		synctest.Wait()

		code, body := lookupFor(h, fresh.Path+"@"+fresh.Version, 10*time.Second)
		if code != http.StatusOK {
			t.Errorf("lookup of a new version after the slow lookups' clients left: %d %q, want 200", code, body)
		}
		if got := treeSize(t, l); got != 1 {
			t.Errorf("tree size %d, want 1: the abandoned fetches record nothing", got)
		}
		time.Sleep(5 * time.Minute) // lets fetches that were not cancelled end within the bubble
	})
}

// TestFetchOutlivesOneWaiter: a fetch shared by two lookups goes on when
// one of them gives up, and the other gets the version recorded.
func TestFetchOutlivesOneWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := goodModule("example.com/slow", "v1.0.0")
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: newSlowProxy(t, m)})
		l := testLog(t)
		h := server.New("sumd.test", newRecorder(t, l, RecorderOptions{Fetcher: f}), server.Options{Logger: quiet})
		go lookupFor(h, m.Path+"@"+m.Version, time.Second)
		synctest.Wait() // the impatient one started the fetch
		if code, body := lookupFor(h, m.Path+"@"+m.Version, 10*time.Minute); code != http.StatusOK {
			t.Errorf("lookup that waited: %d %q, want 200", code, body)
		}
		if got := treeSize(t, l); got != 1 {
			t.Errorf("tree size %d, want 1", got)
		}
	})
}

// TestSaturationProblem: a first lookup refused because every fetch slot
// is taken makes the recorder report "upstream fetch slots saturated" for
// the server's health (degraded) until healthWindow has passed without
// one; a per-client refusal is that client's, not saturation.
func TestSaturationProblem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow, other := goodModule("example.com/slow", "v1.0.0"), goodModule("example.com/other", "v1.0.0")
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: newSlowProxy(t, slow, other)})
		rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: f, MaxFetches: 1, MaxClientFetches: 1, Client: clientOf})
		h := server.New("sumd.test", rec, server.Options{Logger: quiet})
		go lookupAs(h, testClient{addr: "192.0.2.1:1"}, slow.Path+"@"+slow.Version, 10*time.Minute)
		synctest.Wait()
		if w := lookupAs(h, testClient{addr: "192.0.2.1:2"}, other.Path+"@"+other.Version, time.Minute); w.Body.String() != ErrClientBusy.Error()+"\n" {
			t.Fatalf("the same client's second lookup: %d %q, want ErrClientBusy", w.Code, w.Body)
		}
		if p := rec.Problems(); len(p) != 0 {
			t.Errorf("problems after a per-client refusal: %q, want none", p)
		}
		if w := lookupAs(h, testClient{addr: "192.0.2.2:1"}, other.Path+"@"+other.Version, time.Minute); w.Body.String() != ErrBusy.Error()+"\n" {
			t.Fatalf("another client's lookup with the one slot taken: %d %q, want ErrBusy", w.Code, w.Body)
		}
		p := rec.Problems()
		if len(p) != 1 || !strings.HasPrefix(p[0], "upstream fetch slots saturated: 1 first lookup refused in the last 5m0s") {
			t.Errorf("problems after a refusal: %q, want upstream fetch slots saturated", p)
		}
		time.Sleep(healthWindow + time.Second)
		if p := rec.Problems(); len(p) != 0 {
			t.Errorf("problems %s after the last refusal: %q, want none", healthWindow, p)
		}
	})
}
