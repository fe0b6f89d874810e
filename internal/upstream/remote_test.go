package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testlog"
)

// TestDiscoveryWaitStopsWithContext: while one cross-check probes
// /sumdb/<name>/supported, which hangs, another waits for the discovery;
// it waited on a mutex whatever its context, so a check whose caller had
// gone (an abandoned flight) held its fetch slot until the probe timed
// out. It now returns when its context ends, while the probe still hangs.
func TestDiscoveryWaitStopsWithContext(t *testing.T) {
	db := newFakeSumDB(t)
	proxy := &heldSupported{probing: make(chan struct{}), returned: make(chan struct{}), release: make(chan struct{})}
	// The probe's timeout only bounds how long the test takes to fail if
	// the wait does not stop with its context; nothing is measured.
	c, err := NewChecker(CheckerOptions{Key: db.vkey, Sources: mustParseList(t, "https://proxy.corp.example"),
		Timeout: time.Minute, HTTPClient: &http.Client{Transport: proxy}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	rec := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: fakeHash("a"), GoMod: fakeHash("b")}
	first := make(chan error, 1)
	go func() { first <- c.Check(context.Background(), rec) }()
	defer func() {
		close(proxy.release)
		<-first
	}()
	<-proxy.probing

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = c.Check(ctx, rec)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a check whose context ended while another probed: %v; want its context's error", err)
	}
	select {
	case <-proxy.returned:
		t.Errorf("a check whose context ended returned only after the probe it waited for had ended; want it to return while the probe still hangs")
	default:
	}
}

// heldSupported is a proxy whose /sumdb/<name>/supported hangs until its
// client gives up or the test releases it. probing is closed when the
// probe arrives, returned when it has ended.
type heldSupported struct {
	probing, returned, release chan struct{}
	arrived, ended             sync.Once
}

func (h *heldSupported) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/supported") {
		return &http.Response{StatusCode: http.StatusNotFound, Body: http.NoBody, Request: req}, nil
	}
	h.arrived.Do(func() { close(h.probing) })
	defer h.ended.Do(func() { close(h.returned) })
	select {
	case <-req.Context().Done():
		return nil, req.Context().Err()
	case <-h.release:
		return nil, errors.New("released at the end of the test")
	}
}

// TestDiscoveryFallsBackAfterPipe: the go command finds the proxy that
// serves a checksum database with GOPROXY's own rules (modfetch.TryProxies):
// after "|" a proxy that fails is passed over, after "," it decides. sumd's
// discovery moved on after 404 and 410 only, so with -upstream A|B and A
// down every cross-check failed, or with -crosscheck-open recorded
// versions unchecked, where the go command would check them through B.
func TestDiscoveryFallsBackAfterPipe(t *testing.T) {
	db := newFakeSumDB(t)
	rec := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: fakeHash("a"), GoMod: fakeHash("b")}
	db.add(t, rec)
	broken := newProxy(t)
	broken.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	good := newProxy(t)
	good.setHook(db.serve)
	missing := newProxy(t) // answers 404 to everything
	refusing := newProxy(t)
	refusing.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	for _, tc := range []struct {
		list     string
		failOpen bool
		want     Kind // 0: checked and agreed
	}{
		{broken.url + "|" + good.url, false, 0},
		{broken.url + "|" + good.url, true, 0},
		{broken.url + "," + good.url, false, KindUnavailable},
		{missing.url + "," + good.url, false, 0},
		// The failure beats the 404, as in the go command: an outage,
		// not a database no proxy supports.
		{broken.url + "|" + missing.url, false, KindUnavailable},
		// A refusal is no outage, and fails closed even under fail-open,
		// whatever a later source does.
		{refusing.url + "|" + broken.url, true, KindUnavailable},
	} {
		t.Run(fmt.Sprintf("%s open=%v", strings.NewReplacer(broken.url, "broken", good.url, "good", missing.url, "missing", refusing.url, "refusing").Replace(tc.list), tc.failOpen), func(t *testing.T) {
			logs := &testlog.Buffer{}
			c, err := NewChecker(CheckerOptions{Key: db.vkey, Sources: mustParseList(t, tc.list), FailOpen: tc.failOpen, Logger: logs.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			err = c.Check(context.Background(), rec)
			if got := kindOf(err); got != tc.want || (tc.want == 0) != (err == nil) {
				t.Fatalf("Check: %v (kind %v), want kind %v", err, got, tc.want)
			}
			if tc.want == KindUnavailable && strings.Contains(err.Error(), errNotSupported.Error()) {
				t.Errorf("Check: %v; want the failure, not %q", err, errNotSupported)
			}
			if strings.Contains(logs.String(), "recording unchecked") {
				t.Errorf("recorded unchecked:\n%s", logs)
			}
		})
	}
}

// TestDiscoveryFailsOver: the proxy found to serve the checksum database
// was kept for the life of the process, so once it went down every
// cross-check failed, or under -crosscheck-fail-open recorded versions
// unchecked, although the source after "|" serves the database (the go
// command, which discovers again at each run, would use it). A read that
// fails through a source followed by "|" now discovers again; after ","
// there is nowhere to go, and the failure stands.
func TestDiscoveryFailsOver(t *testing.T) {
	db := newFakeSumDB(t)
	rec := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: fakeHash("a"), GoMod: fakeHash("b")}
	rec2 := gosum.Record{Path: "example.com/m", Version: "v1.1.0", Hash: fakeHash("c"), GoMod: fakeHash("d")}
	db.add(t, rec, rec2)
	for _, tc := range []struct {
		sep  string
		want Kind // of the check after the first proxy went down
	}{
		{"|", 0},
		{",", KindUnavailable},
	} {
		t.Run(tc.sep, func(t *testing.T) {
			var down sync.Mutex
			first, second := newProxy(t), newProxy(t)
			firstDown := false
			first.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				down.Lock()
				defer down.Unlock()
				if firstDown {
					w.WriteHeader(http.StatusServiceUnavailable)
					return true
				}
				return db.serve(w, r)
			})
			second.setHook(db.serve)
			logs := &testlog.Buffer{}
			c, err := NewChecker(CheckerOptions{Key: db.vkey, Sources: mustParseList(t, first.url+tc.sep+second.url), FailOpen: true, Logger: logs.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Check(context.Background(), rec); err != nil {
				t.Fatalf("Check through the first proxy: %v", err)
			}
			down.Lock()
			firstDown = true
			down.Unlock()
			err = c.Check(context.Background(), rec2)
			if tc.want == 0 {
				if err != nil || strings.Contains(logs.String(), "recording unchecked") {
					t.Fatalf("Check with the first proxy down: %v; want it checked through the second\n%s", err, logs)
				}
				if second.count("/lookup/example.com/m@v1.1.0") != 1 {
					t.Errorf("the second proxy was not asked")
				}
				if !strings.Contains(logs.String(), "level=WARN msg=\"cross-check: the upstream proxy serving the checksum database failed") {
					t.Errorf("the failover was not logged:\n%s", logs)
				}
				return
			}
			// Fail-open: recorded unchecked, as the go command would
			// not reach the database either.
			if err != nil || !strings.Contains(logs.String(), "recording unchecked") {
				t.Fatalf("Check with the first proxy down after \",\": %v\n%s; want fail-open", err, logs)
			}
			if second.count("/supported")+second.count("/lookup/") != 0 {
				t.Errorf("the proxy after \",\" was asked")
			}
		})
	}
}

// TestFailOverKeepsRefusal: a read refused (401, 403: no outage) through
// the discovered source before "|" discovers the database again, and when
// that discovery failed too, with a timeout, the check failed with the
// timeout: an outage, so under fail-open the version was recorded
// unchecked, where the refusal alone fails closed. A refusal now stands
// against a later outage, as it does within one discovery. The outage is
// a 503 from every source, not a probe hanging until a short timeout:
// under -race the first, answered, check timed out at 100 ms too.
func TestFailOverKeepsRefusal(t *testing.T) {
	db := newFakeSumDB(t)
	rec := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: fakeHash("a"), GoMod: fakeHash("b")}
	rec2 := gosum.Record{Path: "example.com/m", Version: "v1.1.0", Hash: fakeHash("c"), GoMod: fakeHash("d")}
	db.add(t, rec, rec2)
	var mu sync.Mutex
	refusing := false
	down := func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	}
	first, second := newProxy(t), newProxy(t)
	first.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		refuse := refusing
		mu.Unlock()
		switch {
		case !refuse:
			return db.serve(w, r)
		case strings.HasSuffix(r.URL.Path, "/supported"):
			return down(w, r)
		}
		w.WriteHeader(http.StatusForbidden)
		return true
	})
	second.setHook(down)
	logs := &testlog.Buffer{}
	c, err := NewChecker(CheckerOptions{Key: db.vkey, Sources: mustParseList(t, first.url+"|"+second.url), FailOpen: true, Timeout: time.Minute, Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background(), rec); err != nil {
		t.Fatalf("Check through the first proxy: %v", err)
	}
	mu.Lock()
	refusing = true
	mu.Unlock()
	err = c.Check(context.Background(), rec2)
	if kindOf(err) != KindUnavailable || strings.Contains(logs.String(), "recording unchecked") {
		t.Fatalf("Check refused by the first proxy, the discovery after it failing with an outage: %v (kind %v); want the refusal, failing closed\n%s", err, kindOf(err), logs)
	}
}

// TestFailOverCancelled: a check whose caller went while "|" discovered
// the database again, after a refusal through the source found before,
// failed with that refusal: the check was logged and counted as refused,
// and the Recorder logged the fetch as failed, where the second try, cut
// short, might have found a source that answers. It fails with the
// cancellation now, as a check cancelled before the retry does, which
// the Recorder counts as abandoned.
func TestFailOverCancelled(t *testing.T) {
	db := newFakeSumDB(t)
	rec := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: fakeHash("a"), GoMod: fakeHash("b")}
	rec2 := gosum.Record{Path: "example.com/m", Version: "v1.1.0", Hash: fakeHash("c"), GoMod: fakeHash("d")}
	db.add(t, rec, rec2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	refusing := false
	first, second := newProxy(t), newProxy(t)
	first.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		refuse := refusing
		mu.Unlock()
		switch {
		case !refuse:
			return db.serve(w, r)
		case strings.HasSuffix(r.URL.Path, "/supported"):
			cancel() // the caller goes during the discovery
			<-r.Context().Done()
			return true
		}
		w.WriteHeader(http.StatusForbidden)
		return true
	})
	second.setHook(db.serve)
	logs := &testlog.Buffer{}
	c, err := NewChecker(CheckerOptions{Key: db.vkey, Sources: mustParseList(t, first.url+"|"+second.url), Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(context.Background(), rec); err != nil {
		t.Fatalf("Check through the first proxy: %v", err)
	}
	mu.Lock()
	refusing = true
	mu.Unlock()
	err = c.Check(ctx, rec2)
	if !errors.Is(err, context.Canceled) || strings.Contains(logs.String(), "not for an outage") {
		t.Fatalf("Check refused by the first proxy, cancelled during the discovery after it: %v; want the cancellation, not the refusal\n%s", err, logs)
	}
}

// hangingSupported is a proxy, in-process so that it runs in a synctest
// bubble, whose /sumdb/<name>/supported never answers: a host that drops
// the connection attempts, a proxy stuck on its own upstream. It counts
// the probes.
type hangingSupported struct{ probes atomic.Int64 }

func (h *hangingSupported) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/supported") {
		h.probes.Add(1)
	}
	<-req.Context().Done()
	return nil, req.Context().Err()
}

// TestDiscoveryFailureShared: a discovery that failed was remembered by
// nobody, so each cross-check that had waited for it, holding its fetch
// slot, probed again in its turn, one after another: with the probes
// hanging to the timeout, the nth of n first lookups needing a discovery
// waited n timeouts (past the fetch's deadline: 504 even under
// -crosscheck-fail-open, whose promise is to record during an outage),
// and the proxies got n probes. The checks that waited for a discovery
// now take its failure.
func TestDiscoveryFailureShared(t *testing.T) {
	db := newFakeSumDB(t)
	rec := gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: fakeHash("a"), GoMod: fakeHash("b")}
	synctest.Test(t, func(t *testing.T) {
		proxy := &hangingSupported{}
		c, err := NewChecker(CheckerOptions{Key: db.vkey, Sources: mustParseList(t, "https://proxy.corp.example"),
			Timeout: time.Minute, HTTPClient: &http.Client{Transport: proxy}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		const checks = 4
		errs := make(chan error, checks)
		go func() { errs <- c.Check(context.Background(), rec) }()
		synctest.Wait() // the first check probes
		for range checks - 1 {
			go func() { errs <- c.Check(context.Background(), rec) }()
		}
		synctest.Wait() // the others wait for its discovery
		for range checks {
			if err := <-errs; kindOf(err) != KindTimeout {
				t.Errorf("Check: %v (kind %v), want kind %v", err, kindOf(err), KindTimeout)
			}
		}
		if n := proxy.probes.Load(); n != 1 {
			t.Errorf("%d checks waiting for one discovery made %d probes; want 1, its failure shared", checks, n)
		}
		// A check that comes after the failure probes again.
		if err := c.Check(context.Background(), rec); kindOf(err) != KindTimeout {
			t.Errorf("Check after the failure: %v (kind %v), want kind %v", err, kindOf(err), KindTimeout)
		}
		if n := proxy.probes.Load(); n != 2 {
			t.Errorf("a check after the failed discovery made %d probes in all; want 2", n)
		}
	})
}
