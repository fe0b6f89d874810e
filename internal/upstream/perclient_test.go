package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sumd-project/sumd/internal/server"
)

// testClient is the client of a test request, as the access layer would
// name it: the address and whether it is an admin.
type testClient struct {
	addr  string
	admin bool
}

type testClientKey struct{}

func clientOf(ctx context.Context) (string, bool) {
	c, _ := ctx.Value(testClientKey{}).(testClient)
	return c.addr, c.admin
}

// lookupAs asks h for mod as client c, which gives up after d.
func lookupAs(h http.Handler, c testClient, mod string, d time.Duration) *httptest.ResponseRecorder {
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), testClientKey{}, c), d)
	defer cancel()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, "GET", "/lookup/"+mod, nil))
	return w
}

// TestMaxClientFetches: a client with MaxClientFetches first lookups
// waiting on upstream gets 503 with Retry-After and a reason for one
// more, while another client (another IPv4 address, or another /64 in
// IPv6) is served, and so is an admin at the same address.
func TestMaxClientFetches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow1, slow2 := goodModule("example.com/slow1", "v1.0.0"), goodModule("example.com/slow2", "v1.0.0")
		slow3, slow4 := goodModule("example.com/slow3", "v1.0.0"), goodModule("example.com/slow4", "v1.0.0")
		a, b, c := goodModule("example.com/a", "v1.0.0"), goodModule("example.com/b", "v1.0.0"), goodModule("example.com/c", "v1.0.0")
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: newSlowProxy(t, slow1, slow2, slow3, slow4, a, b, c)})
		met := NewMetrics(prometheus.NewRegistry())
		rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: f, MaxClientFetches: 2, Client: clientOf, Metrics: met})
		h := server.New("sumd.test", rec, server.Options{Logger: quiet})

		greedy := testClient{addr: "192.0.2.1:4711"}
		greedy6 := testClient{addr: "[2001:db8::1]:4711"}
		for _, m := range []string{slow1.Path, slow2.Path} {
			go lookupAs(h, greedy, m+"@v1.0.0", 10*time.Minute)
		}
		for _, m := range []string{slow3.Path, slow4.Path} {
			go lookupAs(h, greedy6, m+"@v1.0.0", 10*time.Minute)
		}
		synctest.Wait() // the four fetches are waiting for upstream

		for _, cl := range []testClient{{addr: "192.0.2.1:4712"}, {addr: "[2001:db8::2]:80"}} {
			w := lookupAs(h, cl, a.Path+"@"+a.Version, time.Minute)
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" ||
				w.Header().Get("Content-Type") != "text/plain; charset=utf-8" || w.Body.String() != ErrClientBusy.Error()+"\n" {
				t.Errorf("%s's third lookup: %d %q (Retry-After %q, Content-Type %q), want 503 %q with Retry-After",
					cl.addr, w.Code, w.Body, w.Header().Get("Retry-After"), w.Header().Get("Content-Type"), ErrClientBusy)
			}
		}
		for _, cl := range []testClient{{addr: "192.0.2.2:4711"}, {addr: "[2001:db8:0:1::1]:4711"}, {addr: "192.0.2.1:4713", admin: true}} {
			mod := b
			if cl.admin {
				mod = c
			}
			if w := lookupAs(h, cl, mod.Path+"@"+mod.Version, time.Minute); w.Code != http.StatusOK {
				t.Errorf("lookup by %+v: %d %q, want 200", cl, w.Code, w.Body)
			}
		}
		if got := testutil.ToFloat64(met.clientRefused); got != 2 {
			t.Errorf("per-client refusals counted %v, want 2", got)
		}
		time.Sleep(5 * time.Minute) // the slow fetches end
		if w := lookupAs(h, greedy, a.Path+"@"+a.Version, time.Minute); w.Code != http.StatusOK {
			t.Errorf("the greedy client's lookup once its fetches ended: %d %q, want 200", w.Code, w.Body)
		}
	})
}

func TestClientKey(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"192.0.2.1:4711", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:1", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:443", "fe80::/64"},
		{"@", "@"}, // a Unix socket's peer: one client
		{"", ""},
	} {
		if got := clientKey(tt.addr); got != tt.want {
			t.Errorf("clientKey(%q) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}
