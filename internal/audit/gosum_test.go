package audit

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// goSumOf returns the go.sum lines of records ids, as the go command writes
// them.
func goSumOf(ids ...int) string {
	var b strings.Builder
	for _, id := range ids {
		b.Write(testRecord(id).Text())
	}
	return b.String()
}

func writeGoSum(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "go.sum")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestGosumMatch checks go.sum files that agree with the database,
// including a go.mod-only line, across tiles, through sumdb.Client.
func TestGosumMatch(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	r9 := testRecord(9)
	a := writeGoSum(t, goSumOf(0, 1, 300, 599))
	b := writeGoSum(t, "\n"+r9.Path+" "+r9.Version+"/go.mod "+r9.GoMod+"\n")
	rep := mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{a, b} })
	wantOK(t, rep, CheckSignature, CheckTiles, CheckGosum)
	if rep.GosumLines != 9 {
		t.Errorf("checked %d go.sum lines, want 9", rep.GosumLines)
	}
}

// TestGosumDamaged checks a go.sum line whose lookup the server answers
// damaged in its database (sumdbclient.DamagedText): a problem of that
// line, and the other lines are still checked. The whole audit stopped.
func TestGosumDamaged(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	r1 := testRecord(1)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path == "/lookup/"+r1.Path+"@"+r1.Version {
			return http.StatusInternalServerError, []byte(sumdbclient.DamagedText + "\n")
		}
		return status, body
	})
	file := writeGoSum(t, goSumOf(0, 1, 300))
	rep, err := audit(t, srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{file} })
	if err != nil {
		t.Fatalf("audit: %v; want it to run to the end", err)
	}
	if rep.OK || len(rep.Problems) != 2 || rep.GosumLines != 6 {
		t.Fatalf("want a damaged problem for each of lines 3 and 4, 6 lines checked: %s", problems(rep))
	}
	for i, p := range rep.Problems {
		if p.Kind != KindDamaged || p.Line != 3+i || !strings.Contains(p.Message, "damaged in its database") {
			t.Errorf("problem %d: %+v; want a damaged problem of line %d", i, p, 3+i)
		}
	}
}

// TestGosumProblems checks that every bad line is reported, in file order,
// naming the file and line: a changed hash, a version the database lacks,
// a go.mod-only line with another hash, and a line that is not a go.sum line.
func TestGosumProblems(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	r1, r2 := testRecord(1), testRecord(2)
	text := goSumOf(0) +
		r1.Path + " " + r1.Version + " " + fakeHash("changed") + "\n" + // line 3
		r1.Path + " " + r1.Version + "/go.mod " + r1.GoMod + "\n" +
		"example.com/absent v1.0.0 " + fakeHash("x") + "\n" + // line 5
		r2.Path + " " + r2.Version + "/go.mod " + fakeHash("other") + "\n" + // line 6
		"example.com/m0 v1.0 " + fakeHash("x") + "\n" + // line 7
		"example.com/absent v1.0.0/go.mod " + fakeHash("y") + "\n" // line 8
	file := writeGoSum(t, text)
	rep := mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{file} })
	want := []struct {
		kind string
		line int
		msg  string
	}{
		{KindGosumMismatch, 3, fmt.Sprintf("%s:3: %s %s %s does not match the checksum database, which has %s", file, r1.Path, r1.Version, fakeHash("changed"), r1.Hash)},
		{KindGosumMissing, 5, file + ":5: example.com/absent@v1.0.0 is not in the checksum database (404 Not Found: not found: example.com/absent@v1.0.0"},
		{KindGosumMismatch, 6, fmt.Sprintf("%s:6: %s %s/go.mod %s does not match the checksum database, which has %s", file, r2.Path, r2.Version, fakeHash("other"), r2.GoMod)},
		{KindGosumMalformed, 7, file + `:7: malformed go.sum line "example.com/m0 v1.0 h1:`},
		{KindGosumMissing, 8, file + ":8: example.com/absent@v1.0.0 is not in the checksum database"},
	}
	if rep.OK || len(rep.Problems) != len(want) {
		t.Fatalf("want %d problems: %s", len(want), problems(rep))
	}
	for i, w := range want {
		p := rep.Problems[i]
		if p.Kind != w.kind || p.File != file || p.Line != w.line || !strings.Contains(p.Message, w.msg) {
			t.Errorf("problem %d = %+v\nwant %s at line %d: %s", i, p, w.kind, w.line, w.msg)
		}
	}
	if !slices.Contains(rep.Checks, CheckGosum) {
		t.Errorf("checks %q lack gosum: the check ran to the end", rep.Checks)
	}
}

// TestGosumTamperedLookup serves a lookup whose record was altered: the
// client's inclusion proof fails, which is a problem, not a mismatch.
func TestGosumTamperedLookup(t *testing.T) {
	tl := newTestLog(t, "", 300, testRecord)
	r3 := testRecord(3)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if strings.HasPrefix(path, "/lookup/") {
			return status, []byte(strings.Replace(string(body), r3.Hash, fakeHash("forged"), 1))
		}
		return status, body
	})
	file := writeGoSum(t, goSumOf(3))
	rep := mustAudit(t, srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{file} })
	if rep.OK || len(rep.Problems) != 2 {
		t.Fatalf("want a lookup problem per line: %s", problems(rep))
	}
	for _, p := range rep.Problems {
		if p.Kind != KindLookup || !strings.Contains(p.Message, "does not verify") {
			t.Errorf("problem %+v", p)
		}
	}
}

// TestGosumMissingFile is an error: the audit cannot do what was asked.
// It is found before anything is fetched: it was found only once every
// other check had run, after a full audit of hours, whose run then
// ended as one that could not run (exit status 2).
func TestGosumMissingFile(t *testing.T) {
	tl := newTestLog(t, "", 1, testRecord)
	var requests atomic.Int64
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		requests.Add(1)
		return status, body
	})
	_, err := audit(t, srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{"nonexistent/go.sum"}; o.Full = true })
	if err == nil || !strings.Contains(err.Error(), "failed to read go.sum file") {
		t.Errorf("audit = %v", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the audit made %d requests before finding the go.sum file missing", n)
	}
}

// TestGosumUnrecorded tells a go.mod-only (or zip-only) line whose version
// the database lacks (the import could not record it: it has one hash) apart
// from a missing version: a note, counted, that leaves the audit OK. The
// same go.mod line beside its zip line is a missing version, a problem.
func TestGosumUnrecorded(t *testing.T) {
	tl := newTestLog(t, "", 10, testRecord)
	modOnly := "example.com/modonly v1.0.0/go.mod " + fakeHash("mod") + "\n"
	zipOnly := "example.com/ziponly v1.0.0 " + fakeHash("zip") + "\n"
	file := writeGoSum(t, goSumOf(0)+modOnly+zipOnly)
	rep := mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{file} })
	wantOK(t, rep, CheckSignature, CheckTiles, CheckGosum)
	if rep.GosumUnrecordedCount != 2 || len(rep.GosumUnrecorded) != 2 {
		t.Fatalf("unrecorded: %d, %+v; want the go.mod-only and the zip-only line", rep.GosumUnrecordedCount, rep.GosumUnrecorded)
	}
	if u := rep.GosumUnrecorded[1]; u.Line != 4 || !strings.HasSuffix(u.Message, "is not recorded yet (zip-only line)") {
		t.Errorf("zip-only note = %+v", u)
	}
	if u := rep.GosumUnrecorded[0]; u.Kind != KindGosumUnrecorded || u.Line != 3 || u.Module != "example.com/modonly@v1.0.0" ||
		u.Message != file+":3: example.com/modonly@v1.0.0 is not recorded yet (go.mod-only line)" {
		t.Errorf("unrecorded note = %+v", u)
	}

	both := writeGoSum(t, "example.com/modonly v1.0.0 "+fakeHash("zip")+"\n"+modOnly)
	rep = mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{both} })
	if rep.OK || len(rep.Problems) != 2 || rep.Problems[0].Kind != KindGosumMissing || rep.Problems[1].Kind != KindGosumMissing || rep.GosumUnrecordedCount != 0 {
		t.Errorf("a complete version the database lacks: want two gosum-missing problems; got %s, %d unrecorded", problems(rep), rep.GosumUnrecordedCount)
	}
}

// TestGosumFindingsKeptOnFailure serves one lookup from a fork of the log
// (another tree under the same key, its tiles served from then on) and
// answers 500 to another: the audit is incomplete, and still reports the
// fork evidence the first lookup found, which a failed request must not
// hide.
func TestGosumFindingsKeptOnFailure(t *testing.T) {
	honest := newTestLog(t, "", 600, testRecord)
	fork := newTestLog(t, honest.skey, 700, seededRecord("fork"))
	ha := server.New(testName, honest.log, server.Options{Logger: quiet})
	hb := server.New(testName, fork.log, server.Options{Logger: quiet})
	forked, failing := testRecord(5), testRecord(300)
	var lookedUp atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/lookup/"+forked.Path+"@"+forked.Version:
			lookedUp.Store(true)
			hb.ServeHTTP(w, r)
		case r.URL.Path == "/lookup/"+failing.Path+"@"+failing.Version:
			http.Error(w, "down", http.StatusInternalServerError)
		case strings.HasPrefix(r.URL.Path, "/tile/") && lookedUp.Load():
			hb.ServeHTTP(w, r)
		default:
			ha.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	file := writeGoSum(t, goSumOf(5, 300))
	rep, err := audit(t, srv.URL, honest.vkey, func(o *Options) { o.GoSum = []string{file}; o.Parallel = 1 })
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("audit = %v, want the 500 as the error", err)
	}
	var found bool
	for _, p := range rep.Problems {
		found = found || (p.Kind == KindLookup || p.Kind == KindFork) && strings.Contains(p.Message, "tree#600 against tree#700")
	}
	if rep.OK || !found {
		t.Errorf("the fork evidence is lost: %s", problems(rep))
	}
}

// TestGosumForkEvidenceBounded: the evidence of a fork a lookup revealed,
// sumdb.Client's text quoting the signed heads in full, is cut to
// maxMessage, though the head of the lookup carries a witness signature
// whose name is a long text chosen by the database.
func TestGosumForkEvidenceBounded(t *testing.T) {
	honest := newTestLog(t, "", 600, testRecord)
	// 1000 records: the tiles that prove the fork are not at the paths
	// of those the client read for tree#600, which it keeps.
	fork := newTestLog(t, honest.skey, 1000, seededRecord("fork"))
	ha := server.New(testName, honest.log, server.Options{Logger: quiet})
	hb := server.New(testName, fork.log, server.Options{Logger: quiet})
	forked := testRecord(5)
	witness := "— witness\u009b" + strings.Repeat("w", 64<<10) + " " + base64.StdEncoding.EncodeToString(make([]byte, 68)) + "\n"
	var lookedUp atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/lookup/"+forked.Path+"@"+forked.Version:
			lookedUp.Store(true)
			rec := httptest.NewRecorder()
			hb.ServeHTTP(rec, r)
			w.Write(append(rec.Body.Bytes(), witness...))
		case strings.HasPrefix(r.URL.Path, "/tile/") && lookedUp.Load():
			hb.ServeHTTP(w, r)
		default:
			ha.ServeHTTP(w, r)
		}
	}))
	defer srv.Close()
	file := writeGoSum(t, goSumOf(5))
	rep := mustAudit(t, srv.URL, honest.vkey, func(o *Options) { o.GoSum = []string{file} })
	p := wantProblem(t, rep, KindFork, "SECURITY ERROR", "misbehavior detected")
	if len(p.Message) > maxMessage+len("…") || !strings.Contains(p.Message, "witness?www") {
		t.Errorf("message of %d bytes, want at most %d and the witness's name quoted without its control character: %.300s…",
			len(p.Message), maxMessage, p.Message)
	}
}

// TestGosumTileNotFound serves every lookup but answers 404 for the full
// hash tile its inclusion proof needs (one checkTiles does not read): the
// proof could not be obtained, a failure to fetch (the audit is
// incomplete, exit status 2), as a 404 for a tile the full audit needs
// is, not an answer that does not verify (a finding, exit status 1).
func TestGosumTileNotFound(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path == "/tile/8/0/000" {
			return http.StatusNotFound, []byte("not found\n")
		}
		return status, body
	})
	file := writeGoSum(t, goSumOf(5))
	rep, err := audit(t, srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{file} })
	if !sumdbclient.NotFound(err) || !strings.Contains(err.Error(), "/tile/8/0/000") {
		t.Errorf("audit = %v, want the tile's 404 as the error", err)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("a tile not found is a finding: %s", problems(rep))
	}
}

// TestGosumLookupPointsElsewhere serves, for one version's lookup, the
// answer of another version: a genuine record, proven in the signed tree,
// that does not hold the version looked up. The database misanswered the
// lookup (a lookup problem), which says nothing of the go.sum line: no
// gosum-mismatch saying the database "has no such line".
func TestGosumLookupPointsElsewhere(t *testing.T) {
	tl := newTestLog(t, "", 300, testRecord)
	asked, other := testRecord(5), testRecord(6)
	h := server.New(testName, tl.log, server.Options{Logger: quiet})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/lookup/"+asked.Path+"@"+asked.Version {
			r.URL.Path = "/lookup/" + other.Path + "@" + other.Version
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	file := writeGoSum(t, goSumOf(5))
	rep := mustAudit(t, srv.URL, tl.vkey, func(o *Options) { o.GoSum = []string{file} })
	if rep.OK || len(rep.Problems) != 2 {
		t.Fatalf("want a problem per line: %s", problems(rep))
	}
	for _, p := range rep.Problems {
		if p.Kind != KindLookup || !strings.Contains(p.Message, "holds no line of that version") {
			t.Errorf("problem %+v, want a lookup problem saying the record does not hold the version", p)
		}
	}
}
