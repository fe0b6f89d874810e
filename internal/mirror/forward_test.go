package mirror

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// recordOnLookup makes o record a version on its first lookup, as a sumd
// with -upstream and sum.golang.org do (each answer then comes with a head
// one larger), and serve tiles after delay.
func (o *origin) recordOnLookup(delay *atomic.Int64) http.Handler {
	var mu sync.Mutex
	recorded := map[int]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasPrefix(p, "/tile/") {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(time.Duration(delay.Load())):
			}
		}
		if rest, ok := strings.CutPrefix(p, "/lookup/"); ok {
			rest = rest[strings.LastIndex(rest, "mod")+3:]
			i, err := strconv.Atoi(rest[:strings.Index(rest, "@")])
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			// One at a time: each new version's answer comes with its
			// own head.
			mu.Lock()
			defer mu.Unlock()
			if !recorded[i] {
				if _, err := o.log.Add(r.Context(), testRecord(i, 1)); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				recorded[i] = true
			}
		}
		o.h.ServeHTTP(w, r)
	})
}

type answer struct {
	status     int
	retryAfter string
	body       string
	took       time.Duration
}

// lookups looks up modules first..first+n-1 at once through srv, each
// given 10 seconds.
func lookups(t *testing.T, srv *httptest.Server, first, n int) []answer {
	t.Helper()
	out := make([]answer, n)
	var wg sync.WaitGroup
	c := &http.Client{Timeout: 10 * time.Second}
	for i := range n {
		wg.Go(func() {
			r := testRecord(first+i, 1)
			start := time.Now()
			resp, err := c.Get(srv.URL + "/lookup/" + r.Path + "@" + r.Version)
			if err != nil {
				out[i] = answer{body: err.Error(), took: time.Since(start)}
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out[i] = answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(body), time.Since(start)}
		})
	}
	wg.Wait()
	return out
}

// TestForwardBounded forwards lookups to an origin that records on lookup
// and serves tiles slowly. Concurrent forwarded lookups fetch the tiles
// proving their answers at once, and each extends the mirror in its turn
// (the mirror moved on meanwhile: fewer tiles are needed). With tiles
// slower than the forward timeout, every lookup ends within it — those
// beyond MaxForwards at once, with a 503 and Retry-After — and the rounds'
// turn stays free meanwhile. A lookup that waits for the turn past its
// timeout (a round holds it) gets a 503 too; once the origin is quick
// again, lookups are stored, byte-identical to the origin.
func TestForwardBounded(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 254)
	m, _ := newMirror(t, o)
	const timeout = 2 * time.Second
	// The tile requests the follower has sent and not yet had answered:
	// counted around its transport, so that a fetch has ended, for the
	// count, before the lookup that made it can give the turn back.
	var slow atomic.Bool
	var tileFetches atomic.Int64
	fetching := make(chan struct{}, 1) // a tile fetch started once slow is set
	f := newFollower(t, o, m, func(opts *Options) {
		opts.ForwardTimeout = timeout
		opts.MaxForwards = 3
		c, err := sumdbclient.New(o.srv.URL, sumdbclient.Options{Backoff: time.Millisecond, Timeout: 5 * time.Second,
			Transport: func(tr *http.Transport) http.RoundTripper {
				return roundTripFunc(func(r *http.Request) (*http.Response, error) {
					if !strings.Contains(r.URL.Path, "/tile/") {
						return tr.RoundTrip(r)
					}
					tileFetches.Add(1)
					defer tileFetches.Add(-1)
					if slow.Load() {
						select {
						case fetching <- struct{}{}:
						default:
						}
					}
					return tr.RoundTrip(r)
				})
			}})
		if err != nil {
			t.Fatal(err)
		}
		opts.Client = c
	})
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var delay atomic.Int64
	o.serve(o.recordOnLookup(&delay))
	srv := httptest.NewServer(server.New(testName, f.Ops(), server.Options{Logger: quiet}))
	defer srv.Close()

	// Three lookups, answered with heads of 255, 256 and 257 records,
	// fetch their tiles at once, from the tree of 254; the last extends a
	// mirror that holds tiles 0 and 1/0 complete by then.
	delay.Store(int64(300 * time.Millisecond))
	for i, a := range lookups(t, srv, 254, 3) {
		if a.status != http.StatusOK {
			t.Errorf("lookup %d with tiles in 300ms: %d %q", i, a.status, a.body)
		}
	}
	if tree, _ := m.Tree(ctx); tree.N != 257 {
		t.Errorf("the mirror holds %d records, want 257", tree.N)
	}

	// Tiles slower than the timeout: five lookups at once. Once one
	// fetches its tiles, the rounds' turn is taken while a tile fetch is
	// still unanswered: a lookup holding the turn while it fetched would
	// give it back only once its fetch ended. No timing: the tiles take a
	// minute, the fetches end at the forward timeout.
	delay.Store(int64(time.Minute))
	slow.Store(true)
	type turnTaken struct {
		err      error
		fetching int64 // tile fetches unanswered when the turn was taken
	}
	turn := make(chan turnTaken, 1)
	answered := make(chan struct{})
	go func() {
		select {
		case <-fetching:
		case <-answered:
			turn <- turnTaken{err: errors.New("no lookup fetched tiles")}
			return
		}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := f.lock(lctx)
		n := tileFetches.Load()
		if err == nil {
			f.unlock()
		}
		turn <- turnTaken{err, n}
	}()
	as := lookups(t, srv, 310, 5)
	close(answered)
	busy := 0
	for i, a := range as {
		switch {
		case a.took > timeout+time.Second:
			t.Errorf("lookup %d with slow tiles took %s, more than the timeout of %s", i, a.took, timeout)
		case a.status == http.StatusServiceUnavailable && a.retryAfter != "" && strings.Contains(a.body, "forwarding too many lookups"):
			busy++
		case a.status == http.StatusNotFound && strings.Contains(a.body, "could not fetch in time the tiles"):
		default:
			t.Errorf("lookup %d with slow tiles: %d %q (Retry-After %q)", i, a.status, a.body, a.retryAfter)
		}
	}
	if busy == 0 {
		t.Error("five lookups at once with MaxForwards 3: none was answered busy")
	}
	switch tt := <-turn; {
	case tt.err != nil:
		t.Errorf("the rounds' turn while lookups fetched tiles: %v", tt.err)
	case tt.fetching == 0:
		t.Error("the rounds' turn was free only once no lookup fetched tiles: lookups held it while fetching")
	}
	slow.Store(false)

	// A round holds the turn: a lookup waits no longer than its timeout.
	delay.Store(0)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.lock(lctx); err != nil {
		t.Fatal(err)
	}
	a := lookups(t, srv, 320, 1)[0]
	f.unlock()
	if a.status != http.StatusServiceUnavailable || a.retryAfter == "" || !strings.Contains(a.body, "busy following its origin") || a.took > timeout+time.Second {
		t.Errorf("lookup while a round holds the turn: %d %q (Retry-After %q) after %s", a.status, a.body, a.retryAfter, a.took)
	}

	for i, a := range lookups(t, srv, 320, 1) {
		if a.status != http.StatusOK {
			t.Errorf("lookup %d once the origin is quick: %d %q", i, a.status, a.body)
		}
	}
	sameAs(t, m, o.log, all)
	if st := f.Status(); st.SecurityEvents != 0 {
		t.Errorf("status %+v", st)
	}
}

// roundTripFunc is an http.RoundTripper calling itself.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
