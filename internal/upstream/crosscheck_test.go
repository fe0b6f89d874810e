package upstream

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/tlog"
)

// fakeSumName stands in for sum.golang.org.
const fakeSumName = "sum.golang.org-test"

// A fakeSumDB is a real checksum database (internal/tlog behind
// internal/server) that a proxy serves under /sumdb/<name>/, as
// proxy.golang.org serves sum.golang.org.
type fakeSumDB struct {
	skey, vkey string

	mu      sync.Mutex
	log     *tlog.Log
	handler http.Handler
	status  int // if non-zero, every request gets it
}

func newFakeSumDB(t *testing.T) *fakeSumDB {
	t.Helper()
	skey, vkey, err := tlog.GenerateKey(fakeSumName)
	if err != nil {
		t.Fatal(err)
	}
	db := &fakeSumDB{skey: skey, vkey: vkey}
	db.reset(t)
	return db
}

// reset replaces the database by an empty one with the same key: a server
// that forgets its history.
func (db *fakeSumDB) reset(t *testing.T) {
	l := openLog(t, db.skey)
	db.mu.Lock()
	defer db.mu.Unlock()
	db.log = l
	db.handler = server.New(fakeSumName, l, server.Options{Logger: quiet})
}

func (db *fakeSumDB) add(t *testing.T, recs ...gosum.Record) {
	t.Helper()
	db.mu.Lock()
	l := db.log
	db.mu.Unlock()
	if _, err := l.Add(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

func (db *fakeSumDB) setStatus(status int) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.status = status
}

// serve answers /sumdb/ requests, reporting whether r was one.
func (db *fakeSumDB) serve(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/sumdb/") {
		return false
	}
	db.mu.Lock()
	h, status := db.handler, db.status
	db.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
		return true
	}
	h.ServeHTTP(w, r)
	return true
}

// checkedSetup is a proxy with m, a fake sum.golang.org behind it, and a
// Recorder cross-checking with it.
type checkedSetup struct {
	m     module.Version
	right gosum.Record // what the proxy serves
	proxy *proxy
	db    *fakeSumDB
	log   *tlog.Log
	rec   *Recorder
	logs  *testlog.Buffer
	reg   *prometheus.Registry
	met   *Metrics
}

func newCheckedSetup(t *testing.T, opts CheckerOptions) *checkedSetup {
	t.Helper()
	s := &checkedSetup{m: mv("example.com/m", "v1.0.0"), db: newFakeSumDB(t), logs: &testlog.Buffer{}, reg: prometheus.NewRegistry()}
	s.proxy = newProxy(t, goodModule(s.m.Path, s.m.Version))
	s.proxy.setHook(s.db.serve)
	want := wantHashes(t, s.proxy.dir, s.m)
	s.right = gosum.Record{Path: s.m.Path, Version: s.m.Version, Hash: want.Hash, GoMod: want.GoMod}
	s.met = NewMetrics(s.reg)
	opts.Key, opts.Logger, opts.Metrics = s.db.vkey, s.logs.Logger(), s.met
	opts.Sources, _ = ParseList(s.proxy.url)
	c, err := NewChecker(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.log = testLog(t)
	s.rec = newRecorder(t, s.log, RecorderOptions{Fetcher: newFetcher(t, s.proxy.url, FetcherOptions{}), Checker: c})
	return s
}

// lookup looks s.m up through HTTP and checks the status and body prefix.
func (s *checkedSetup) lookup(t *testing.T, status int, want string) {
	t.Helper()
	got, body := lookupHTTP(t, s.rec, s.m)
	if got != status || !strings.HasPrefix(body, want) {
		t.Fatalf("lookup: %d %q, want %d %q…", got, body, status, want)
	}
	if recorded := treeSize(t, s.log) == 1; recorded != (status == 200) {
		t.Fatalf("recorded = %v after a %d", recorded, status)
	}
}

func (s *checkedSetup) outcome(o string) float64 {
	return testutil.ToFloat64(s.met.checks.WithLabelValues(o))
}

// otherRecord is a record of a different module, to grow the fake log.
func otherRecord(i int) gosum.Record {
	r := gosum.Record{Path: fmt.Sprintf("example.com/other%d", i), Version: "v1.0.0"}
	r.Hash, r.GoMod = fakeHash(r.Path), fakeHash(r.Path+"/go.mod")
	return r
}

// TestCrossCheckAgrees records versions the upstream database agrees with,
// across a growing upstream tree (the client proves each new tree extends
// the one it saw).
func TestCrossCheckAgrees(t *testing.T) {
	s := newCheckedSetup(t, CheckerOptions{})
	s.db.add(t, otherRecord(0), s.right, otherRecord(1))
	s.lookup(t, 200, "0\n")

	m2 := mv("example.com/m", "v1.1.0")
	publish(t, s.proxy.dir, goodModule(m2.Path, m2.Version))
	h := wantHashes(t, s.proxy.dir, m2)
	for i := range 300 { // a second data tile and a level-1 tile
		s.db.add(t, otherRecord(2+i))
	}
	s.db.add(t, gosum.Record{Path: m2.Path, Version: m2.Version, Hash: h.Hash, GoMod: h.GoMod})
	if _, err := s.rec.Lookup(context.Background(), m2); err != nil {
		t.Fatalf("lookup of %s after the upstream tree grew: %v", m2, err)
	}
	if got := s.outcome(checkOK); got != 2 {
		t.Errorf("ok cross-checks = %v, want 2", got)
	}
}

// TestCrossCheckMismatch refuses a version whose hashes the upstream
// database does not share, naming both in the answer and the log: either
// hash differing is enough.
func TestCrossCheckMismatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(*gosum.Record)
	}{
		{"hash", func(r *gosum.Record) { r.Hash = fakeHash("tampered") }},
		{"go.mod", func(r *gosum.Record) { r.GoMod = fakeHash("tampered/go.mod") }},
		{"both", func(r *gosum.Record) { r.Hash, r.GoMod = fakeHash("tampered"), fakeHash("tampered/go.mod") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCheckedSetup(t, CheckerOptions{})
			wrong := s.right
			tc.tamper(&wrong)
			s.db.add(t, wrong)
			s.lookup(t, 410, "not found: example.com/m@v1.0.0: checksum mismatch: computed "+s.right.Hash+", go.mod "+s.right.GoMod+
				"; "+fakeSumName+" has "+wrong.Hash+", go.mod "+wrong.GoMod)
			logs := s.logs.String()
			for _, want := range []string{"level=ERROR", `computed_hash="` + s.right.Hash, `sumdb_hash="` + wrong.Hash,
				`computed_gomod="` + s.right.GoMod, `sumdb_gomod="` + wrong.GoMod} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
			if got := s.outcome(checkMismatch); got != 1 {
				t.Errorf("mismatch cross-checks = %v, want 1", got)
			}
		})
	}
}

// TestCrossCheckMissing refuses a public version the database lacks.
func TestCrossCheckMissing(t *testing.T) {
	s := newCheckedSetup(t, CheckerOptions{})
	s.db.add(t, otherRecord(0))
	s.lookup(t, 410, "not found: example.com/m@v1.0.0: checksum database "+fakeSumName+" has no record of this version")
}

// TestCrossCheckPrivate skips private paths without asking the database.
func TestCrossCheckPrivate(t *testing.T) {
	s := newCheckedSetup(t, CheckerOptions{Private: "example.com/m"})
	s.db.setStatus(http.StatusInternalServerError)
	s.lookup(t, 200, "0\n")
	if n := s.proxy.count("/supported") + s.proxy.count("/latest"); n != 0 {
		t.Errorf("the database was asked %d times about a private path", n)
	}
	if got := s.outcome(checkPrivate); got != 1 {
		t.Errorf("private cross-checks = %v, want 1", got)
	}
}

// TestCrossCheckUnavailable fails closed by default and open when asked.
func TestCrossCheckUnavailable(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		s := newCheckedSetup(t, CheckerOptions{})
		s.db.add(t, s.right)
		s.lookupAfterDiscovery(t, http.StatusServiceUnavailable)
		s.lookup(t, 502, "upstream proxy error: example.com/m@v1.0.0: cannot cross-check with "+fakeSumName)
	})
	t.Run("open", func(t *testing.T) {
		s := newCheckedSetup(t, CheckerOptions{FailOpen: true})
		s.db.setStatus(http.StatusServiceUnavailable)
		s.lookup(t, 200, "0\n")
		if !strings.Contains(s.logs.String(), "recording unchecked (fail-open)") {
			t.Error("fail-open recording not logged")
		}
	})
	t.Run("timeout", func(t *testing.T) {
		s := newCheckedSetup(t, CheckerOptions{Timeout: 100 * time.Millisecond})
		s.proxy.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			if strings.HasPrefix(r.URL.Path, "/sumdb/") {
				<-r.Context().Done()
				return true
			}
			return false
		})
		s.lookup(t, 504, "upstream proxy error: example.com/m@v1.0.0: cannot cross-check")
	})
	t.Run("no proxy supports it", func(t *testing.T) {
		s := newCheckedSetup(t, CheckerOptions{})
		s.db.setStatus(http.StatusNotFound)
		s.lookup(t, 502, "upstream proxy error: example.com/m@v1.0.0: cannot cross-check with "+fakeSumName+": no upstream proxy supports")
	})
}

// lookupAfterDiscovery makes the database answer status to everything but
// the /supported probe.
func (s *checkedSetup) lookupAfterDiscovery(t *testing.T, status int) {
	s.proxy.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/supported") || !strings.HasPrefix(r.URL.Path, "/sumdb/") {
			return s.db.serve(w, r)
		}
		w.WriteHeader(status)
		return true
	})
}

// TestCrossCheckFork: an upstream database that rewrites its history is
// caught, by the running Checker (a security error, with the client's
// proof logged) and by a new one reading the saved state, and fails closed
// whatever the policy.
func TestCrossCheckFork(t *testing.T) {
	// In a directory that does not exist yet, as the default
	// data/crosscheck-latest of a PostgreSQL server's first start.
	state := filepath.Join(t.TempDir(), "data", "latest")
	s := newCheckedSetup(t, CheckerOptions{StateFile: state, FailOpen: true})
	s.db.add(t, otherRecord(0), s.right)
	s.lookup(t, 200, "0\n")
	if data, err := os.ReadFile(state); err != nil || !strings.Contains(string(data), "\n2\n") {
		t.Fatalf("state file after a check: %q, %v; want the tree of size 2", data, err)
	}

	s.db.reset(t) // same key, other history
	s.db.add(t, otherRecord(1), otherRecord(2), s.right)
	// A version not checked before: the cached, verified lookup of m
	// needs no request.
	err := s.rec.checker.Check(context.Background(), otherRecord(2))
	if e := asError(t, err); e.HTTPStatus() != 502 || !strings.Contains(e.Error(), "misbehaved") {
		t.Errorf("check against a forked database: %v (status %d), want 502 misbehaved", e, e.HTTPStatus())
	}
	if !strings.Contains(s.logs.String(), "SECURITY ERROR") {
		t.Error("the fork was not logged with the client's proof")
	}

	// A restarted sumd has no tiles cached: the client finds the old
	// head's tile inconsistent before it can prove a fork. Still refused.
	c, err := NewChecker(CheckerOptions{Key: s.db.vkey, Sources: mustParseList(t, s.proxy.url), StateFile: state, FailOpen: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Check(context.Background(), otherRecord(2))
	// The client's reason is for the operator (it may name local files):
	// the log has it, the go command's user sees that the check failed.
	if e := asError(t, err); e.HTTPStatus() != 502 || !strings.HasSuffix(e.Error(), "cross-check with "+fakeSumName+" failed") || !strings.Contains(e.Detail(), "inconsistent") {
		t.Errorf("check by a new Checker against a forked database: %v (status %d), want 502 inconsistent; detail %s", e, e.HTTPStatus(), e.Detail())
	}
}

// TestCheckerState refuses a state file of another database.
func TestCheckerState(t *testing.T) {
	state := filepath.Join(t.TempDir(), "latest")
	other := testLogNamed(t, fakeSumName)
	head, _ := other.Signed(context.Background())
	os.WriteFile(state, head, 0o644)
	_, vkey, _ := tlog.GenerateKey(fakeSumName)
	_, err := NewChecker(CheckerOptions{Key: vkey, URL: "http://127.0.0.1:1", StateFile: state})
	if err == nil || !strings.Contains(err.Error(), "does not hold a tree head of "+fakeSumName) {
		t.Errorf("NewChecker with a state file signed by another key: %v", err)
	}
	if _, err := NewChecker(CheckerOptions{}); err == nil {
		t.Error("NewChecker with neither URL nor sources succeeded")
	}
}

func mustParseList(t *testing.T, s string) []Source {
	t.Helper()
	srcs, err := ParseList(s)
	if err != nil {
		t.Fatal(err)
	}
	return srcs
}

// TestAddRecordsCrossChecksNew cross-checks only the versions the log
// does not hold: a bulk import run again sends every version again, and
// those already recorded must not go back to the upstream database (here
// unreachable by then).
func TestAddRecordsCrossChecksNew(t *testing.T) {
	s := newCheckedSetup(t, CheckerOptions{})
	s.db.add(t, s.right)
	ids, _, err := s.rec.AddRecords(context.Background(), []gosum.Record{s.right})
	if err != nil || len(ids) != 1 || ids[0] != 0 {
		t.Fatalf("first AddRecords: %v, %v", ids, err)
	}
	if got := s.outcome(checkOK); got != 1 {
		t.Fatalf("ok cross-checks = %v, want 1", got)
	}
	s.db.setStatus(http.StatusServiceUnavailable)
	ids, _, err = s.rec.AddRecords(context.Background(), []gosum.Record{s.right})
	if err != nil || len(ids) != 1 || ids[0] != 0 {
		t.Fatalf("AddRecords of a recorded version with the upstream database down: %v, %v", ids, err)
	}
	if got := s.outcome(checkOK); got != 1 {
		t.Errorf("ok cross-checks = %v after the second AddRecords, want still 1", got)
	}
	// A new version still goes to the upstream database, down by now.
	m2 := otherRecord(0)
	if _, _, err := s.rec.AddRecords(context.Background(), []gosum.Record{s.right, m2}); err == nil {
		t.Error("AddRecords of a new version with the upstream database down succeeded")
	}
}

// TestCrossCheckMisbehavingFailsClosed: FailOpen records unchecked only
// when the database cannot be reached (a 5xx, a 429, no answer), a
// partial tile answering 404 (allowed: the client reads the full tile
// next) aside; an answer no honest database gives — a tree head claiming
// 2^63−1 records, unsigned; an answer over the size cap; a full tile
// missing below its head; a refusal of sumd's credentials — fails closed,
// and so do a proxy that does not support the database and a check whose
// caller went away.
func TestCrossCheckMisbehavingFailsClosed(t *testing.T) {
	tileGone := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) }
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request) // everything but /supported
		tiles  func(w http.ResponseWriter, r *http.Request) // tiles only: the database holds the version
		open   bool                                         // recorded unchecked under FailOpen
	}{
		{"huge unsigned tree", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("go.sum database tree\n9223372036854775807\nAAAA\n\n"))
		}, nil, false},
		{"oversize", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, maxRemoteBody+1)) }, nil, false},
		{"403", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }, nil, false},
		{"tile 404", nil, tileGone, false},
		{"partial tile 404, full tile 503", nil, func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, ".p/") {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		}, true},
		{"429", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) }, nil, true},
		{"502", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) }, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCheckedSetup(t, CheckerOptions{FailOpen: true})
			if tc.tiles != nil {
				s.db.add(t, s.right)
			} else {
				s.db.add(t, otherRecord(0)) // the database does not hold s.right
			}
			s.proxy.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				switch {
				case strings.HasSuffix(r.URL.Path, "/supported") || !strings.HasPrefix(r.URL.Path, "/sumdb/"):
					return s.db.serve(w, r)
				case tc.tiles != nil:
					if strings.Contains(r.URL.Path, "/tile/") {
						tc.tiles(w, r)
						return true
					}
					return s.db.serve(w, r)
				}
				tc.answer(w, r)
				return true
			})
			if tc.open {
				s.lookup(t, 200, "0\n")
				return
			}
			s.lookup(t, 502, "upstream proxy error: example.com/m@v1.0.0: cannot cross-check with "+fakeSumName)
			if strings.Contains(s.logs.String(), "recording unchecked") {
				t.Errorf("logged as recorded unchecked:\n%s", s.logs)
			}
		})
	}
	t.Run("no proxy supports it", func(t *testing.T) {
		s := newCheckedSetup(t, CheckerOptions{FailOpen: true})
		s.db.setStatus(http.StatusNotFound)
		s.lookup(t, 502, "upstream proxy error: example.com/m@v1.0.0: cannot cross-check with "+fakeSumName+": no upstream proxy supports")
	})
	t.Run("caller gone", func(t *testing.T) {
		s := newCheckedSetup(t, CheckerOptions{FailOpen: true})
		s.db.setStatus(http.StatusServiceUnavailable)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.rec.checker.Check(ctx, s.right); err == nil {
			t.Error("Check with its caller gone = nil (record unchecked), want an error")
		}
	})
}
