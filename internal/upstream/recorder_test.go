package upstream

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/testnet"
	"github.com/sumd-project/sumd/internal/tlog"
)

func newRecorder(t testing.TB, l Log, opts RecorderOptions) *Recorder {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	r, err := NewRecorder(l, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestConcurrentFirstLookups checks that 100 concurrent first lookups of one
// version make exactly one upstream fetch and one record, and all get its id.
// The upstream holds the zip until every lookup waits (synctest.Wait), so
// all of them are sure to meet the one flight, however slowly they start.
func TestConcurrentFirstLookups(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := mv("example.com/m", "v1.0.0")
		p := newHeldProxy(t, make(chan struct{}), goodModule(m.Path, m.Version))
		l := testLog(t)
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: &http.Client{Transport: p}})
		rec := newRecorder(t, l, RecorderOptions{Fetcher: f})

		const n = 100
		var wg sync.WaitGroup
		ids := make([]int64, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { ids[i], errs[i] = rec.Lookup(context.Background(), m) })
		}
		synctest.Wait() // the zip is held: every lookup has started or joined a flight
		rec.flightMu.Lock()
		flights, waiters := len(rec.flights), 0
		for _, f := range rec.flights {
			waiters += f.waiters
		}
		rec.flightMu.Unlock()
		if flights != 1 || waiters != n {
			t.Errorf("%d flights with %d waiters while the zip is held, want 1 with %d", flights, waiters, n)
		}
		close(p.hold)
		wg.Wait()
		for i := range n {
			if errs[i] != nil || ids[i] != 0 {
				t.Fatalf("lookup %d = %d, %v; want id 0", i, ids[i], errs[i])
			}
		}
		if got := p.zips.Load(); got != 1 {
			t.Errorf("upstream asked for the zip %d times, want 1", got)
		}
		if got := treeSize(t, l); got != 1 {
			t.Errorf("tree size %d, want 1", got)
		}
	})
}

// TestRecordedMatchesUpstream checks that the record a lookup creates holds
// the proxy's hashes, and that a second lookup reads the log, not upstream.
func TestRecordedMatchesUpstream(t *testing.T) {
	m := mv("example.com/m", "v1.2.3")
	p := newProxy(t, goodModule(m.Path, m.Version))
	l := testLog(t)
	rec := newRecorder(t, l, RecorderOptions{Fetcher: newFetcher(t, p.url, FetcherOptions{})})
	id, err := rec.Lookup(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	texts, err := l.ReadRecords(context.Background(), id, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := wantHashes(t, p.dir, m)
	wantText := gosum.Record{Path: m.Path, Version: m.Version, Hash: want.Hash, GoMod: want.GoMod}.Text()
	if string(texts[0]) != string(wantText) {
		t.Errorf("record %q, want %q", texts[0], wantText)
	}
	before := p.total()
	if id2, err := rec.Lookup(context.Background(), m); err != nil || id2 != id {
		t.Errorf("second lookup = %d, %v; want %d", id2, err, id)
	}
	if p.total() != before {
		t.Error("second lookup asked upstream")
	}
}

// lookupHTTP serves rec with the real HTTP server and looks m up.
func lookupHTTP(t *testing.T, rec *Recorder, m module.Version) (int, string) {
	t.Helper()
	srv := httptest.NewServer(server.New("sumd.test", rec, server.Options{Logger: quiet}))
	defer srv.Close()
	p, _ := module.EscapePath(m.Path)
	v, _ := module.EscapeVersion(m.Version)
	resp, err := http.Get(srv.URL + "/lookup/" + p + "@" + v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestLookupStatuses checks what the go command sees for each failure,
// through the real HTTP server, and that none leaves a record.
func TestLookupStatuses(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	const pre = "example.com/m@v1.0.0/"
	bad := newProxy(t, goodModule(m.Path, m.Version))
	writeRawZip(t, bad.dir, m, []string{pre + "go.mod", pre + "a.go", pre + "A.go"}, []string{"module example.com/m\n\ngo 1.21\n", "package a\n", "package a\n"})
	downURL := "http://" + testnet.RefusingAddr(t)
	slow := newProxy(t)
	slow.setHook(func(w http.ResponseWriter, r *http.Request) bool { <-r.Context().Done(); return true })
	good := newProxy(t, goodModule(m.Path, m.Version))
	tests := []struct {
		name, list, record string
		status             int
		want               string
	}{
		{"invalid", bad.url, "", 410, `not found: example.com/m@v1.0.0: invalid module: ` + pre + `A.go: case-insensitive file name collision: "a.go" and "A.go"`},
		{"missing", newProxy(t).url, "", 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version"},
		{"down", downURL, "", 502, "upstream proxy error: example.com/m@v1.0.0: "},
		{"slow", slow.url, "", 504, "upstream proxy error: example.com/m@v1.0.0: "},
		{"not served", good.url, "corp.example.com,example.com/other", 404, "not found: example.com/m@v1.0.0: this checksum database does not serve module path example.com/m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := testLog(t)
			f := newFetcher(t, tt.list, FetcherOptions{Timeout: 200 * time.Millisecond})
			rec := newRecorder(t, l, RecorderOptions{Fetcher: f, Record: tt.record, NegativeTTL: time.Minute})
			status, body := lookupHTTP(t, rec, m)
			if status != tt.status || !strings.HasPrefix(body, tt.want) {
				t.Errorf("lookup: %d %q, want %d %q…", status, body, tt.status, tt.want)
			}
			if _, err := l.Lookup(context.Background(), m); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("log lookup after the failure: %v, want not found", err)
			}
			if n := treeSize(t, l); n != 0 {
				t.Errorf("tree size %d after the failure, want 0", n)
			}
		})
	}
	if good.total() != 0 {
		t.Error("a path outside the record patterns was fetched")
	}
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestNegativeCache checks that a gone version is remembered for the TTL
// and asked again after it, and that a transient failure is not remembered.
func TestNegativeCache(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	p := newProxy(t)
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	rec := newRecorder(t, testLog(t), RecorderOptions{
		Fetcher: newFetcher(t, p.url, FetcherOptions{}), NegativeTTL: time.Minute, Now: clock.Now,
	})
	lookup := func(wantStatus, wantAsks int) {
		t.Helper()
		_, err := rec.Lookup(context.Background(), m)
		if e := asError(t, err); e.HTTPStatus() != wantStatus {
			t.Fatalf("lookup: %v (status %d), want %d", e, e.HTTPStatus(), wantStatus)
		}
		if got := p.count(".mod"); got != wantAsks {
			t.Fatalf("upstream asked %d times, want %d", got, wantAsks)
		}
	}
	lookup(410, 1)
	clock.advance(59 * time.Second)
	lookup(410, 1) // remembered
	clock.advance(time.Second)
	lookup(410, 2) // expired: asked again

	p.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	})
	clock.advance(time.Minute)
	lookup(502, 3)
	lookup(502, 4) // not remembered

	// Once the version appears, it is recorded at the first lookup after
	// the TTL, and the negative entry goes.
	p.setHook(nil)
	publish(t, p.dir, goodModule(m.Path, m.Version))
	if id, err := rec.Lookup(context.Background(), m); err != nil || id != 0 {
		t.Fatalf("lookup after publishing = %d, %v", id, err)
	}
	if n := rec.neg.len(); n != 0 {
		t.Errorf("negative cache holds %d entries after the version was recorded", n)
	}
}

// TestNegativeCacheDisabled checks that a zero TTL remembers nothing.
func TestNegativeCacheDisabled(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	p := newProxy(t)
	rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: newFetcher(t, p.url, FetcherOptions{})})
	for range 2 {
		rec.Lookup(context.Background(), m)
	}
	if got := p.count(".mod"); got != 2 {
		t.Errorf("upstream asked %d times, want 2", got)
	}
}

// TestToolchain records a golang.org/toolchain version, which the go command
// looks up even under GONOSUMDB: it is an ordinary module here.
func TestToolchain(t *testing.T) {
	m := mv("golang.org/toolchain", "v0.0.1-go1.22.0.linux-amd64")
	p := newProxy(t, goodModule(m.Path, m.Version))
	l := testLog(t)
	rec := newRecorder(t, l, RecorderOptions{Fetcher: newFetcher(t, p.url, FetcherOptions{}), Record: "golang.org/toolchain,corp.example.com"})
	if status, body := lookupHTTP(t, rec, m); status != http.StatusOK || !strings.Contains(body, m.Path+" "+m.Version+" h1:") {
		t.Fatalf("lookup of %s: %d %q", m, status, body)
	}
}

// faultLog is a Log whose Add and AddNew fail with err.
type faultLog struct {
	*tlog.Log
	err error
}

func (f *faultLog) Add(ctx context.Context, recs ...gosum.Record) ([]int64, error) {
	return nil, f.err
}

func (f *faultLog) AddNew(ctx context.Context, recs ...gosum.Record) ([]int64, []bool, error) {
	return nil, nil, f.err
}

// TestAddFailures checks the mapping of the log's Add errors: pushback is
// a 503 and not remembered; a conflict is a 500, logged with both hashes.
func TestAddFailures(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	p := newProxy(t, goodModule(m.Path, m.Version))
	recorded := gosum.Record{Path: m.Path, Version: m.Version, Hash: "h1:" + strings.Repeat("A", 43) + "=", GoMod: "h1:" + strings.Repeat("B", 43) + "="}
	conflict := &tlog.ConflictError{ID: 7, Recorded: recorded, Proposed: recorded}
	for _, tt := range []struct {
		err    error
		status int
		want   string
	}{
		{tlog.ErrPushback, 503, "failed to record example.com/m@v1.0.0: too many pending additions, try again later"},
		{conflict, 500, "internal error"},
	} {
		var logs testlog.Buffer
		rec := newRecorder(t, &faultLog{testLog(t), tt.err}, RecorderOptions{
			Fetcher: newFetcher(t, p.url, FetcherOptions{}), NegativeTTL: time.Minute, Logger: logs.Logger(),
		})
		for i := range 2 {
			status, body := lookupHTTP(t, rec, m)
			if status != tt.status || !strings.HasPrefix(body, tt.want) {
				t.Errorf("%v: lookup %d: %d %q, want %d %q", tt.err, i, status, body, tt.status, tt.want)
			}
		}
		if tt.err == conflict && !strings.Contains(logs.String(), `recorded_hash="`+recorded.Hash+`"`) {
			t.Errorf("conflict not logged with the recorded hash:\n%s", logs.String())
		}
	}
	if got := p.count(".zip"); got != 4 {
		t.Errorf("upstream fetched %d times, want 4: Add failures must not be remembered", got)
	}
}

// TestCheckPatterns refuses globs MatchPrefixPatterns would ignore.
func TestCheckPatterns(t *testing.T) {
	for _, ok := range []string{"", "corp.example.com", "*.corp.example.com/*,example.com/x/"} {
		if err := CheckPatterns(ok); err != nil {
			t.Errorf("CheckPatterns(%q): %v", ok, err)
		}
	}
	if err := CheckPatterns("corp.example.com,[bad"); err == nil {
		t.Error(`CheckPatterns("…,[bad") succeeded`)
	}
	if _, err := NewRecorder(testLog(t), RecorderOptions{Record: "[bad"}); err == nil {
		t.Error("NewRecorder accepted malformed record patterns")
	}
}

// staleLog is a Log whose next Lookups miss, as the lookup of a request
// that raced a finishing flight does.
type staleLog struct {
	*tlog.Log
	mu     sync.Mutex
	misses int
}

func (s *staleLog) Lookup(ctx context.Context, m module.Version) (int64, error) {
	s.mu.Lock()
	stale := s.misses > 0
	s.misses--
	s.mu.Unlock()
	if stale {
		return 0, fs.ErrNotExist
	}
	return s.Log.Lookup(ctx, m)
}

// TestFlightRechecksLog: a lookup that missed just before another's flight
// recorded the version, and starts its own flight just after, must find
// the record instead of fetching again.
func TestFlightRechecksLog(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	p := newProxy(t, goodModule(m.Path, m.Version))
	l := &staleLog{Log: testLog(t)}
	rec := newRecorder(t, l, RecorderOptions{Fetcher: newFetcher(t, p.url, FetcherOptions{})})
	if _, err := rec.Lookup(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	l.misses = 1 // the next lookup's first look misses
	if id, err := rec.Lookup(context.Background(), m); err != nil || id != 0 {
		t.Fatalf("second lookup = %d, %v", id, err)
	}
	if got := p.count(".zip"); got != 1 {
		t.Errorf("upstream served the zip %d times, want 1", got)
	}
}

// TestLookupLosesRace: a first lookup whose fetch another adder (the admin
// API, here) beats with other hashes answers the log's record, not an
// internal error; the conflict is logged at Error with both hashes.
func TestLookupLosesRace(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	p := newProxy(t, goodModule(m.Path, m.Version))
	l := testLog(t)
	other := gosum.Record{Path: m.Path, Version: m.Version, Hash: fakeHash("zip"), GoMod: fakeHash("mod")}
	p.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, ".zip") {
			if _, err := l.Add(r.Context(), other); err != nil {
				t.Error(err)
			}
		}
		return false
	})
	logs := new(testlog.Buffer)
	rec := newRecorder(t, l, RecorderOptions{Fetcher: newFetcher(t, p.url, FetcherOptions{}), Logger: logs.Logger()})
	id, err := rec.Lookup(context.Background(), m)
	if err != nil || id != 0 {
		t.Fatalf("lookup = %d, %v; want the record the other adder made, 0", id, err)
	}
	if !strings.Contains(logs.String(), "version conflicts with its record") || !strings.Contains(logs.String(), other.Hash) {
		t.Errorf("the conflict was not logged with both hashes:\n%s", logs)
	}
}
