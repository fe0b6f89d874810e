package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/testproxy"
	"github.com/sumd-project/sumd/internal/tlog"
)

// heldProxy is an upstream served in-process, so that it runs in a
// synctest bubble: the GOPROXY tree at dir, and a checksum database under
// /sumdb/ if sumdb is set. It counts the zips asked for and, if hold is
// not nil, answers a request whose path holds held (default ".zip") only
// once hold is closed, whatever the request's context says: an answer
// that was on its way when the last client went.
type heldProxy struct {
	dir   string
	files http.Handler
	sumdb func(w http.ResponseWriter, r *http.Request) bool // fakeSumDB.serve
	held  string
	hold  chan struct{}
	zips  atomic.Int32
}

func newHeldProxy(t testing.TB, hold chan struct{}, mods ...testproxy.Module) *heldProxy {
	t.Helper()
	dir := t.TempDir()
	if _, err := testproxy.Build(dir, mods); err != nil {
		t.Fatal(err)
	}
	return &heldProxy{dir: dir, files: http.FileServer(http.Dir(dir)), held: ".zip", hold: hold}
}

func (p *heldProxy) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, ".zip") {
		p.zips.Add(1)
	}
	if p.hold != nil && strings.Contains(req.URL.Path, p.held) {
		<-p.hold
	}
	w := httptest.NewRecorder()
	if p.sumdb == nil || !p.sumdb(w, req) {
		p.files.ServeHTTP(w, req)
	}
	return w.Result(), nil
}

// heldLog is a Log whose AddNews (every add of the Recorder's) wait for
// hold to be closed: a commit in progress, not yet visible to Lookup.
type heldLog struct {
	*tlog.Log
	hold chan struct{}
	adds atomic.Int32
}

func (l *heldLog) AddNew(ctx context.Context, recs ...gosum.Record) ([]int64, []bool, error) {
	l.adds.Add(1)
	<-l.hold
	return l.Log.AddNew(ctx, recs...)
}

// TestLookupJoinsCommittingFlight: a lookup that comes while a flight whose
// clients have all gone is recording the version (past its point of no
// return) joins that flight and gets its id, instead of starting another
// that misses in the log and downloads and hashes the version again.
func TestLookupJoinsCommittingFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := goodModule("example.com/m", "v1.0.0")
		p := newHeldProxy(t, nil, m)
		l := &heldLog{Log: testLog(t), hold: make(chan struct{})}
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: &http.Client{Transport: p}})
		rec := newRecorder(t, l, RecorderOptions{Fetcher: f})
		v := mv(m.Path, m.Version)

		ctx, cancel := context.WithCancel(context.Background())
		go rec.Lookup(ctx, v)
		synctest.Wait()
		if n := l.adds.Load(); n != 1 {
			t.Fatalf("%d Adds after the first lookup's fetch, want 1: the flight is not committing", n)
		}
		cancel() // its client goes while the record is being committed
		synctest.Wait()

		var id int64
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			id, err = rec.Lookup(context.Background(), v)
		}()
		synctest.Wait() // the second lookup waits, for the commit or a flight of its own
		close(l.hold)
		<-done
		if err != nil || id != 0 {
			t.Errorf("lookup during the commit = %d, %v; want 0, nil", id, err)
		}
		if n := p.zips.Load(); n != 1 {
			t.Errorf("upstream asked for the zip %d times, want 1: the second lookup did not join the committing flight", n)
		}
		if got := treeSize(t, l.Log); got != 1 {
			t.Errorf("tree size %d, want 1", got)
		}
	})
}

// TestAbandonBeforeCommit: a flight whose last client goes after its fetch
// has begun but before its point of no return records nothing, even if
// the fetch then succeeds (here the zip was on its way): once cancelled,
// the flight is out of the flights map, so it must not commit behind a
// flight that a later lookup starts. The next lookup fetches and records.
func TestAbandonBeforeCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := goodModule("example.com/m", "v1.0.0")
		p := newHeldProxy(t, make(chan struct{}), m)
		l := testLog(t)
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: &http.Client{Transport: p}})
		rec := newRecorder(t, l, RecorderOptions{Fetcher: f})
		v := mv(m.Path, m.Version)

		ctx, cancel := context.WithCancel(context.Background())
		go rec.Lookup(ctx, v)
		synctest.Wait() // the zip is on its way
		cancel()
		synctest.Wait() // the client has gone: the flight is cancelled
		close(p.hold)
		synctest.Wait() // the zip arrived, and the flight ended
		if got := treeSize(t, l); got != 0 {
			t.Errorf("tree size %d after a flight abandoned before its commit, want 0", got)
		}
		if id, err := rec.Lookup(context.Background(), v); err != nil || id != 0 {
			t.Errorf("next lookup = %d, %v; want 0, nil", id, err)
		}
		if n := p.zips.Load(); n != 2 {
			t.Errorf("upstream asked for the zip %d times, want 2", n)
		}
	})
}

// TestFailureAsClientLeaves: a version upstream fails genuinely (a 404,
// an invalid zip, a cross-check refusal) whose answer comes just as the
// last client waiting for it goes is remembered and logged as any other
// failure, not taken for a fetch the clients abandoned: the next lookup
// gets the failure without fetching again.
func TestFailureAsClientLeaves(t *testing.T) {
	for _, tc := range []struct {
		name string
		// spoil makes upstream fail m, returning the Checker to use.
		spoil func(t *testing.T, p *heldProxy, m module.Version) *Checker
	}{
		{"gone", func(t *testing.T, p *heldProxy, m module.Version) *Checker {
			if err := os.Remove(testproxy.ZipPath(p.dir, m)); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
		{"invalid", func(t *testing.T, p *heldProxy, m module.Version) *Checker {
			writeRawZip(t, p.dir, m, []string{"outside.go"}, []string{"package m\n"})
			return nil
		}},
		{"mismatch", func(t *testing.T, p *heldProxy, m module.Version) *Checker {
			db := newFakeSumDB(t)
			db.add(t, gosum.Record{Path: m.Path, Version: m.Version, Hash: fakeHash("zip"), GoMod: fakeHash("mod")})
			p.sumdb, p.held = db.serve, "/sumdb/"
			c, err := NewChecker(CheckerOptions{Key: db.vkey, Sources: mustParseList(t, "http://proxy.test"),
				HTTPClient: &http.Client{Transport: p}, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := goodModule("example.com/m", "v1.0.0")
				v := mv(m.Path, m.Version)
				p := newHeldProxy(t, make(chan struct{}), m)
				c := tc.spoil(t, p, v)
				f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: &http.Client{Transport: p}})
				logs := new(testlog.Buffer)
				rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: f, Checker: c, NegativeTTL: time.Minute, Logger: logs.Logger()})

				ctx, cancel := context.WithCancel(context.Background())
				go rec.Lookup(ctx, v)
				synctest.Wait() // upstream's answer is on its way
				cancel()
				synctest.Wait() // the client has gone
				close(p.hold)
				synctest.Wait() // the answer came, and the flight ended

				_, err := rec.Lookup(context.Background(), v)
				if e := asError(t, err); !e.Gone() {
					t.Errorf("next lookup: %v, want the version's failure", err)
				}
				if n := p.zips.Load(); n != 1 {
					t.Errorf("upstream asked for the zip %d times, want 1: the failure was not remembered", n)
				}
				if l := logs.String(); strings.Contains(l, "abandoned") || !strings.Contains(l, "version not recorded") {
					t.Errorf("a genuine failure as the client left was logged as abandoned, or not logged:\n%s", l)
				}
			})
		})
	}
}
