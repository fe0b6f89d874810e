package audit

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/tlog"
)

const testName = "sum.audit.example"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// A testLog is a real sumd log (internal/tlog) served by internal/server
// over loopback HTTP: what an auditor meets in production.
type testLog struct {
	t    testing.TB
	skey string // the signing key, to start another log under it
	vkey string
	log  *tlog.Log
	srv  *httptest.Server
}

// newTestLog starts a log of n records made by rec(0…n-1) under a new key,
// or under skey if it is not empty.
func newTestLog(t testing.TB, skey string, n int, rec func(int) gosum.Record) *testLog {
	t.Helper()
	if skey == "" {
		var err error
		if skey, _, err = tlog.GenerateKey(testName); err != nil {
			t.Fatal(err)
		}
	}
	key, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.Open(filepath.Join(t.TempDir(), "sumd.db"), tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tl := &testLog{t: t, skey: skey, vkey: key.VerifierKey(), log: l}
	tl.add(0, n, rec)
	tl.srv = serve(t, l, nil)
	return tl
}

// add appends the records rec(from…to-1).
func (tl *testLog) add(from, to int, rec func(int) gosum.Record) {
	tl.t.Helper()
	recs := make([]gosum.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, rec(i))
	}
	if _, err := tl.log.Add(context.Background(), recs...); err != nil {
		tl.t.Fatal(err)
	}
}

// serve serves ops over loopback HTTP, through tamper if it is not nil.
func serve(t testing.TB, ops sumdb.ServerOps, tamper tamperFunc) *httptest.Server {
	var h http.Handler = server.New(testName, ops, server.Options{Logger: quiet})
	if tamper != nil {
		h = tampered(h, tamper)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// A tamperFunc rewrites a response: a malicious server or network.
type tamperFunc func(path string, status int, body []byte) (int, []byte)

func tampered(h http.Handler, f tamperFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		status, body := f(r.URL.Path, rec.Code, rec.Body.Bytes())
		w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
		w.WriteHeader(status)
		w.Write(body)
	})
}

// flipByte flips one bit of body[i], in a copy.
func flipByte(body []byte, i int) []byte {
	out := slices.Clone(body)
	out[i] ^= 1
	return out
}

// testRecord is record i of a healthy log.
func testRecord(i int) gosum.Record { return seededRecord("")(i) }

// seededRecord returns records with hashes derived from seed: another
// seed gives the same module versions with other hashes.
func seededRecord(seed string) func(int) gosum.Record {
	return func(i int) gosum.Record {
		path := fmt.Sprintf("example.com/m%d", i/64)
		version := fmt.Sprintf("v1.0.%d", i%64)
		return gosum.Record{Path: path, Version: version, Hash: fakeHash(seed + path + version), GoMod: fakeHash(seed + path + version + "/go.mod")}
	}
}

func fakeHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
}

// audit runs an audit of url with test defaults: no waiting between retries.
func audit(t testing.TB, url, vkey string, set func(*Options)) (*Report, error) {
	t.Helper()
	opts := Options{URL: url, VerifierKey: vkey, retryBackoff: time.Millisecond}
	if set != nil {
		set(&opts)
	}
	return Run(context.Background(), opts)
}

// mustAudit is audit for runs that must complete, whatever they find.
func mustAudit(t testing.TB, url, vkey string, set func(*Options)) *Report {
	t.Helper()
	rep, err := audit(t, url, vkey, set)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return rep
}

// wantOK fails unless rep found nothing and ran the checks.
func wantOK(t testing.TB, rep *Report, checks ...string) {
	t.Helper()
	if !rep.OK || len(rep.Problems) != 0 {
		t.Fatalf("audit not OK: %s", problems(rep))
	}
	if !slices.Equal(rep.Checks, checks) {
		t.Errorf("checks %q, want %q", rep.Checks, checks)
	}
}

// wantProblem fails unless rep has exactly one problem, of kind, whose
// message holds every string of want; it returns the problem.
func wantProblem(t testing.TB, rep *Report, kind string, want ...string) Problem {
	t.Helper()
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != kind {
		t.Fatalf("want one %s problem; got %s", kind, problems(rep))
	}
	p := rep.Problems[0]
	for _, w := range want {
		if !strings.Contains(p.Message, w) {
			t.Errorf("problem message lacks %q:\n%s", w, p.Message)
		}
	}
	return p
}

func problems(rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ok=%v checks=%q error=%q, %d problems", rep.OK, rep.Checks, rep.Error, len(rep.Problems))
	for _, p := range rep.Problems {
		fmt.Fprintf(&b, "\n\t%s: %s", p.Kind, p.Message)
	}
	return b.String()
}

var allChecks = []string{CheckSignature, CheckTiles, CheckConsistency, CheckRecords}
