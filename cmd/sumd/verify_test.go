package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/audit"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testnet"
)

const verifyName = "sum.verify.example"

// verifyLog is a database file and its key, fed with go.sum files by
// `sumd add` and served by `sumd serve`, as an operator runs them.
type verifyLog struct {
	dir, db, key, vkeyFile string
}

func newVerifyLog(t *testing.T, dir string) *verifyLog {
	t.Helper()
	l := &verifyLog{dir: dir, db: filepath.Join(dir, "sumd.db")}
	keys := filepath.Join(dir, "keys")
	if _, err := os.Stat(keys); err != nil {
		sumd(t, "keygen", "-name", verifyName, "-dir", keys)
	}
	l.key = filepath.Join(keys, verifyName+".key")
	l.vkeyFile = filepath.Join(keys, verifyName+".vkey")
	return l
}

// add records records from…to-1 of the history named seed, with sumd add.
func (l *verifyLog) add(t *testing.T, seed string, from, to int) {
	t.Helper()
	var buf bytes.Buffer
	for i := from; i < to; i++ {
		buf.Write(verifyRecord(seed, i).Text())
	}
	file := writeFile(t, filepath.Join(t.TempDir(), "go.sum"), buf.Bytes())
	sumd(t, "add", "-create", "-db", l.db, "-key", l.key, "-gosum", file)
}

func (l *verifyLog) serve(t *testing.T) *sumdServer {
	return startServer(t, "-db", l.db, "-key", l.key)
}

func verifyRecord(seed string, i int) gosum.Record {
	h := func(s string) string {
		sum := sha256.Sum256([]byte(seed + s))
		return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
	}
	path := fmt.Sprintf("example.com/verify/m%d", i/100)
	version := fmt.Sprintf("v1.%d.0", i%100)
	return gosum.Record{Path: path, Version: version, Hash: h(path + version), GoMod: h(path + version + "/go.mod")}
}

// verify runs `sumd verify` and returns its output and exit status.
func verify(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	stdout, stderr, err := sumdRun(t, append([]string{"verify"}, args...)...)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout, stderr, code
}

// verifyJSON runs `sumd verify -json`, checks the exit status and decodes
// the report.
func verifyJSON(t *testing.T, wantCode int, args ...string) *audit.Report {
	t.Helper()
	stdout, stderr, code := verify(t, append([]string{"-json"}, args...)...)
	if code != wantCode {
		t.Fatalf("sumd verify %s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout, stderr)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout)
	}
	return &rep
}

// TestVerifyEndToEnd audits a real `sumd serve` of 10,000 records with the
// binary, then again after `sumd add` grew it (only the new records are
// audited), checks go.sum files, and finally audits a re-created database
// under the same key with the first runs' state: a fork.
func TestVerifyEndToEnd(t *testing.T) {
	l := newVerifyLog(t, t.TempDir())
	l.add(t, "", 0, 10_000)
	state := filepath.Join(t.TempDir(), "state")
	s := l.serve(t)
	base := []string{"-url", s.url, "-key", l.vkeyFile, "-state", state, "-full"}

	rep := verifyJSON(t, 0, base...)
	if !rep.OK || rep.Tree.Size != 10_000 || rep.RecordsAudited != 10_000 || len(rep.Problems) != 0 ||
		!slices.Equal(rep.Checks, []string{"signature", "tiles", "records"}) {
		t.Fatalf("first audit: %+v", rep)
	}

	s.stop()
	l.add(t, "", 10_000, 10_500)
	s = l.serve(t)
	base[1] = s.url
	rep = verifyJSON(t, 0, base...)
	if !rep.OK || rep.Tree.Size != 10_500 || rep.RecordsFrom != 10_000 || rep.RecordsAudited != 500 || rep.Previous.Size != 10_000 {
		t.Fatalf("second audit must read only the 500 new records: %+v", rep)
	}

	t.Run("gosum", func(t *testing.T) { testVerifyGosum(t, s.url, l.vkeyFile) })

	// The database is re-created under the same key with another history.
	s.stop()
	forked := newVerifyLog(t, l.dir)
	forked.db = filepath.Join(l.dir, "forked.db")
	forked.add(t, "rewritten", 0, 10_600)
	s = forked.serve(t)
	saved, err := os.ReadFile(filepath.Join(state, verifyName, "latest"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := verify(t, "-url", s.url, "-key", l.vkeyFile, "-state", state, "-full")
	if code != 1 || stderr != "" {
		t.Fatalf("audit of a fork: exit status %d, stderr %q; want 1 and nothing on stderr", code, stderr)
	}
	served := get(t, s.url+"/latest")
	for _, want := range []string{
		"result    FAILED: 1 problem(s) found\n",
		"\nfork: SECURITY ERROR: fork: the tree of 10600 records the database signs now does not contain the tree of 10500 records it signed before",
		"    signed head saved by the previous run:\n" + indent(string(saved)),
		"    signed head served now:\n" + indent(served),
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("fork report lacks %q:\n%s", want, stdout)
		}
	}
}

func indent(note string) string {
	return "        " + strings.ReplaceAll(strings.TrimSuffix(note, "\n"), "\n", "\n        ") + "\n"
}

// testVerifyGosum checks go.sum files against the served database: one
// that matches passes; a changed hash and a version the database lacks
// each fail, naming the file and line.
func testVerifyGosum(t *testing.T, url, vkey string) {
	dir := t.TempDir()
	var good bytes.Buffer
	for _, i := range []int{0, 255, 256, 9_999, 10_499} {
		good.Write(verifyRecord("", i).Text())
	}
	goodFile := writeFile(t, filepath.Join(dir, "good.sum"), good.Bytes())
	// -gosum and a trailing argument are both go.sum files to check.
	stdout, stderr, code := verify(t, "-url", url, "-key", vkey, "-gosum", goodFile, goodFile)
	if code != 0 || !strings.Contains(stdout, "go.sum    20 lines checked\n") || !strings.Contains(stdout, "result    OK: no problems found\n") {
		t.Fatalf("matching go.sum: exit status %d\n%s%s", code, stdout, stderr)
	}

	r := verifyRecord("", 7)
	changed := fmt.Sprintf("%s %s h1:%s\n%s %s/go.mod %s\nexample.com/verify/m0 v1.999.0 %s\nexample.com/verify/m0 v1.999.0/go.mod %s\n",
		r.Path, r.Version, strings.Repeat("A", 43)+"=", r.Path, r.Version, r.GoMod, r.GoMod, r.GoMod)
	badFile := writeFile(t, filepath.Join(dir, "bad.sum"), []byte(changed))
	stdout, _, code = verify(t, "-url", url, "-key", vkey, badFile)
	if code != 1 {
		t.Fatalf("bad go.sum: exit status %d, want 1\n%s", code, stdout)
	}
	for _, want := range []string{
		fmt.Sprintf("\ngosum-mismatch: %s:1: %s %s h1:%s= does not match the checksum database, which has %s\n", badFile, r.Path, r.Version, strings.Repeat("A", 43), r.Hash),
		fmt.Sprintf("\ngosum-missing: %s:3: example.com/verify/m0@v1.999.0 is not in the checksum database (404 Not Found: not found: example.com/verify/m0@v1.999.0: no record in checksum database %s)\n", badFile, verifyName),
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
}

// TestVerifyJSONShape checks the JSON report's field names, which scripts
// depend on, and the exit status of an audit that cannot run.
func TestVerifyJSONShape(t *testing.T) {
	l := newVerifyLog(t, t.TempDir())
	l.add(t, "", 0, 3)
	s := l.serve(t)
	stdout, _, code := verify(t, "-json", "-url", s.url, "-key", l.vkeyFile, "-full")
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); err != nil || code != 0 {
		t.Fatalf("exit status %d, %v:\n%s", code, err, stdout)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := "checks database gosum_lines ok problems records_audited records_from records_per_second seconds tree url"
	if strings.Join(keys, " ") != want {
		t.Errorf("JSON keys %q\nwant      %q", keys, want)
	}
	tree, _ := m["tree"].(map[string]any)
	if tree["size"] != 3.0 || tree["hash"] == "" || m["ok"] != true || m["database"] != verifyName {
		t.Errorf("JSON report %s", stdout)
	}

	// A server that is not there: exit status 2, the error on stderr and
	// in the JSON report.
	gone := "http://" + testnet.RefusingAddr(t)
	stdout, stderr, code := verify(t, "-json", "-url", gone, "-key", l.vkeyFile)
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 2 || rep.OK || !strings.Contains(rep.Error, "failed to fetch /latest") {
		t.Errorf("audit of an unreachable server: exit status %d, report %s (%v)", code, stdout, err)
	}
	if !strings.Contains(stderr, "sumd: error: failed to fetch /latest: ") || !strings.Contains(stderr, "\nhint: check -url and that the server is reachable") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestProgress checks that the bar is drawn only on a terminal and only
// for long audits, with the records count and rate (ETA after the first
// interval).
func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	if p := newProgress(&buf, "auditing records"); p.on {
		t.Error("progress bar on for a buffer, want it only on a terminal")
	}
	p := &progress{w: &buf, on: true, what: "auditing records"}
	p.update(10, 100)
	if buf.Len() != 0 || p.bar != nil {
		t.Errorf("bar drawn for a 100-record audit: %q", buf.String())
	}
	p.update(0, 50_000)
	p.update(25_000, 50_000)
	p.finish()
	if out := buf.String(); !strings.Contains(out, "auditing records") || !strings.Contains(out, "/50000, ") || !strings.Contains(out, " records/") {
		t.Errorf("bar output %q", out)
	}
}

// TestVerifyFindingThenFailure serves a tampered data tile and then fails
// a later one: the audit stops, but a problem was found, so the exit status
// is 1 (a finding), not 2 (retry later), with the error still on stderr.
func TestVerifyFindingThenFailure(t *testing.T) {
	l := newVerifyLog(t, t.TempDir())
	l.add(t, "", 0, 600)
	s := l.serve(t)
	target, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/tile/8/data/000" {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		body[100] ^= 1
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/tile/8/data/002") {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer hostile.Close()
	args := []string{"-url", hostile.URL, "-key", l.vkeyFile, "-full"}
	rep := verifyJSON(t, 1, args...)
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != audit.KindDataMismatch || !strings.Contains(rep.Error, "500") {
		t.Errorf("report: ok=%v problems=%+v error=%q; want the data mismatch and the 500", rep.OK, rep.Problems, rep.Error)
	}
	stdout, stderr, code := verify(t, args...)
	if code != 1 || !strings.Contains(stdout, "FAILED: 1 problem(s) found before the audit stopped") || !strings.Contains(stderr, "500 Internal Server Error") {
		t.Errorf("exit status %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestPrintReportWarnings: a warning (a stale /latest proved a prefix of
// the head saved) shows in the human summary, not only in -json, where
// the exit status 0 would otherwise hide it.
func TestPrintReportWarnings(t *testing.T) {
	rep := &audit.Report{Database: "sum.example", URL: "https://sum.example",
		Warnings: []audit.Problem{{Kind: audit.KindStale, Message: "/latest is 10 records, older than the 12 saved"}}}
	var b strings.Builder
	printReport(&b, rep)
	if want := "warning   /latest is 10 records, older than the 12 saved\n"; !strings.Contains(b.String(), want) {
		t.Errorf("printReport:\n%s\nwant a line %q", b.String(), want)
	}
}
