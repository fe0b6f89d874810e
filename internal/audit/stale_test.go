package audit

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/server"
)

// TestStaleLatest serves an older head of the same log on /latest, as a
// cache in front of the database may: its tree is proven a prefix of the
// one saved, so it is a warning that leaves the report OK, the newer head
// stays saved, and the other checks run on the tree served. Lookups carry
// a head between the two, which the go.sum check must not save either.
func TestStaleLatest(t *testing.T) {
	tl := newTestLog(t, "", 900, testRecord)
	old, err := tl.log.Signed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tl.add(900, 950, testRecord)
	mid, err := tl.log.Signed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tl.add(950, 1000, testRecord)
	state := t.TempDir()
	full := func(o *Options) { o.StateDir, o.Full = state, true }
	wantOK(t, mustAudit(t, tl.srv.URL, tl.vkey, full), CheckSignature, CheckTiles, CheckRecords)
	saved, _ := os.ReadFile(filepath.Join(state, testName, latestFile))

	stale := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		switch {
		case path == "/latest":
			return status, old
		case strings.HasPrefix(path, "/lookup/"):
			i := bytes.Index(body, []byte("go.sum database tree\n"))
			return status, append(body[:i:i], mid...)
		}
		return status, body
	})
	file := writeGoSum(t, goSumOf(5, 920)) // 920: newer than the head served
	rep := mustAudit(t, stale.URL, tl.vkey, func(o *Options) { full(o); o.GoSum = []string{file} })
	wantOK(t, rep, CheckSignature, CheckTiles, CheckConsistency, CheckRecords, CheckGosum)
	if len(rep.Warnings) != 1 || rep.Warnings[0].Kind != KindStale ||
		!strings.Contains(rep.Warnings[0].Message, "tree of 900 records, a prefix of the tree of 1000 records") {
		t.Fatalf("warnings %+v, want one that the head served is stale", rep.Warnings)
	}
	if now, _ := os.ReadFile(filepath.Join(state, testName, latestFile)); !bytes.Equal(now, saved) {
		t.Errorf("the state's head changed to:\n%s\nwant the newer one kept:\n%s", now, saved)
	}

	// The database's own /latest again: nothing to report.
	rep = mustAudit(t, tl.srv.URL, tl.vkey, full)
	wantOK(t, rep, CheckSignature, CheckTiles, CheckConsistency, CheckRecords)
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings %+v after the stale head", rep.Warnings)
	}
}

// TestSmallerTreeNotPrefix serves a smaller tree, signed with the key,
// that is not a prefix of the tree saved, while the server still serves
// the hash tiles of the tree saved: a fork, quoting both heads.
func TestSmallerTreeNotPrefix(t *testing.T) {
	first := newTestLog(t, "", 1000, testRecord)
	state := t.TempDir()
	wantOK(t, mustAudit(t, first.srv.URL, first.vkey, func(o *Options) { o.StateDir = state }), CheckSignature, CheckTiles)
	saved, _ := os.ReadFile(filepath.Join(state, testName, latestFile))

	// The same first tile (its path is the same in both trees, and the
	// auditor keeps the first it read), then other records.
	second := newTestLog(t, first.skey, 500, func(i int) gosum.Record {
		if i < tileWidth {
			return testRecord(i)
		}
		return seededRecord("rewritten")(i)
	})
	served, _ := second.log.Signed(context.Background())
	ha := server.New(testName, first.log, server.Options{Logger: quiet})
	hb := server.New(testName, second.log, server.Options{Logger: quiet})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The second log's tiles, and the first's where the second has none.
		rec := httptest.NewRecorder()
		hb.ServeHTTP(rec, r)
		if rec.Code == http.StatusNotFound && strings.HasPrefix(r.URL.Path, "/tile/") {
			ha.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer srv.Close()
	rep := mustAudit(t, srv.URL, first.vkey, func(o *Options) { o.StateDir = state })
	p := wantProblem(t, rep, KindFork, "SECURITY ERROR", "fork", "tree of 500 records", "not a prefix of the tree of 1000 records")
	if len(p.Heads) != 2 || p.Heads[0].Note != string(saved) || p.Heads[1].Note != string(served) {
		t.Errorf("problem quotes heads %q, want the saved one and the one served", p.Heads)
	}
	if now, _ := os.ReadFile(filepath.Join(state, testName, latestFile)); !bytes.Equal(now, saved) {
		t.Errorf("the state's head changed to:\n%s", now)
	}
}

// TestStaleEmptyLatest serves the log's first head, of the empty tree, on
// /latest after a head of 300 records was saved: the empty tree is a prefix
// of every tree (the go command accepts it as an older head), so it is
// stale, a warning, not a fork.
func TestStaleEmptyLatest(t *testing.T) {
	tl := newTestLog(t, "", 0, testRecord)
	empty, err := tl.log.Signed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tl.add(0, 300, testRecord)
	state := t.TempDir()
	wantOK(t, mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.StateDir = state }), CheckSignature, CheckTiles)
	stale := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path == "/latest" {
			return status, empty
		}
		return status, body
	})
	rep := mustAudit(t, stale.URL, tl.vkey, func(o *Options) { o.StateDir = state })
	wantOK(t, rep, CheckSignature, CheckTiles, CheckConsistency)
	if len(rep.Warnings) != 1 || rep.Warnings[0].Kind != KindStale ||
		!strings.Contains(rep.Warnings[0].Message, "tree of 0 records, a prefix of the tree of 300 records") {
		t.Fatalf("warnings %+v, want one that the head served is stale", rep.Warnings)
	}
}

// TestStaleLatestLookupFork: a database serves the auditor a stale
// /latest, a prefix of the head saved by the last run (tree A of 1000
// records), and answers lookups from a fork (tree B of 1100 records that
// shares A's first 900 but not the rest), with B's tiles once a lookup
// was asked. Lookups were checked against the stale head alone, which B
// extends, so the fork, whose two signed heads the auditor held, went
// unreported; they are checked against the newer head saved now.
func TestStaleLatestLookupFork(t *testing.T) {
	a := newTestLog(t, "", 900, testRecord)
	stale, err := a.log.Signed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a.add(900, 1000, testRecord)
	b := newTestLog(t, a.skey, 900, testRecord)
	b.add(900, 1100, seededRecord("fork"))
	state := t.TempDir()
	wantOK(t, mustAudit(t, a.srv.URL, a.vkey, func(o *Options) { o.StateDir = state }), CheckSignature, CheckTiles)

	ha := server.New(testName, a.log, server.Options{Logger: quiet})
	hb := server.New(testName, b.log, server.Options{Logger: quiet})
	var lookedUp atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/latest":
			w.Write(stale)
		case strings.HasPrefix(r.URL.Path, "/lookup/"):
			lookedUp.Store(true)
			hb.ServeHTTP(w, r)
		case lookedUp.Load():
			hb.ServeHTTP(w, r)
		default:
			ha.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	file := writeGoSum(t, goSumOf(5))
	rep := mustAudit(t, srv.URL, a.vkey, func(o *Options) { o.StateDir = state; o.GoSum = []string{file} })
	wantProblem(t, rep, KindFork, "SECURITY ERROR", "old database:\n\tgo.sum database tree\n\t1000\n", "new database:\n\tgo.sum database tree\n\t1100\n")
}
