package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/testproxy"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// mirrorOf runs `sumd mirror` of the server at url into db and returns its
// output.
func mirrorOf(t *testing.T, db, url, vkey string, more ...string) string {
	t.Helper()
	return sumd(t, append([]string{"mirror", "-mirror", db, "-origin", url, "-origin-key", vkey}, more...)...)
}

// TestMirrorGoCommand mirrors a sumd primary, stops the primary, and has
// the real go command verify modules through a mirror-only server: with
// the mirror's URL in GOSUMDB, and found through GOPROXY. A version the
// mirror lacks gets the offline 404, which the go command shows.
func TestMirrorGoCommand(t *testing.T) {
	e := newE2ELog(t)
	p := e.serve(t)
	db := filepath.Join(e.dir, "mirror.db")
	if out := mirrorOf(t, db, p.url, e.vkey); !strings.Contains(out, "mirror of "+e2eName+": tree 305 (was 0), origin at 305") {
		t.Fatalf("sumd mirror printed %q", out)
	}
	if out := mirrorOf(t, db, p.url, e.vkey); !strings.Contains(out, "tree 305 (was 305)") || !strings.Contains(out, "0 records stored in 0 commits") {
		t.Fatalf("a second run printed %q; want nothing to do", out)
	}
	p.stop()
	m := startServer(t, "-mirror-only", "-mirror", db, "-mirror-interval", "1h")
	if want := e.vkey + " " + m.url; m.gosumdb != want {
		t.Fatalf("mirror-only server printed GOSUMDB %q, want %q", m.gosumdb, want)
	}
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+e.proxyURL, "GOSUMDB="+m.gosumdb)
	download(t, g, special...)
	download(t, g, e.many[0], e.many[256], e.many[299])

	fresh := testproxy.NewGo(t)
	fresh.Env = append(fresh.Env, "GOPROXY="+m.url+","+e.proxyURL, "GOSUMDB="+e.vkey)
	download(t, fresh, special[0], e.many[255])
	if !strings.Contains(m.stderr.String(), "/sumdb/"+e2eName+"/lookup/") {
		t.Errorf("the mirror logged no lookup under /sumdb/%s/", e2eName)
	}
	out, err := fresh.Run("mod", "download", args(e.many[320])[0])
	if err == nil || !strings.Contains(out, "the mirror of "+e2eName+" does not hold it and is offline: it cannot reach its origin; its tree head (305 records) was last confirmed current") {
		t.Errorf("go mod download of a version the mirror lacks, origin down: %v\n%s", err, out)
	}
}

// TestMirrorSumGolangOrg mirrors a stand-in for sum.golang.org (a log of
// that name under a test key: the key is an option that defaults to the
// real one) and serves it beside the company's own log: the go command
// with GOSUMDB=sum.golang.org+<test key> and the company server first in
// GOPROXY verifies public modules through it, with the stand-in stopped.
func TestMirrorSumGolangOrg(t *testing.T) {
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", "sum.golang.org", "-dir", filepath.Join(dir, "keys")))
	proxyDir := filepath.Join(dir, "proxy")
	proxyURL, err := testproxy.Build(proxyDir, special)
	if err != nil {
		t.Fatal(err)
	}
	sumFile := writeFile(t, filepath.Join(dir, "public.sum"), goSumFile(t, proxyDir, special))
	odb, okey := filepath.Join(dir, "sgo.db"), filepath.Join(dir, "keys", "sum.golang.org.key")
	sumd(t, "add", "-create", "-db", odb, "-key", okey, "-gosum", sumFile)
	origin := startServer(t, "-db", odb, "-key", okey)

	// Without -origin-key a new mirror of sum.golang.org (an origin whose
	// path ends in /sumdb/sum.golang.org, as through a proxy) trusts only
	// the real key, which never signed the stand-in.
	_, errOut, err := sumdRun(t, "mirror", "-mirror", filepath.Join(dir, "refused.db"), "-origin", origin.url+"/sumdb/sum.golang.org")
	if code := statusOf(err); code != 1 || !strings.Contains(errOut, "SECURITY") || !strings.Contains(errOut, "sum.golang.org+033de0ae") {
		t.Fatalf("mirror of the stand-in with the built-in key: exit %d\n%s", code, errOut)
	}
	mdb := filepath.Join(dir, "sum.golang.org.db")
	mirrorOf(t, mdb, origin.url, vkey)
	origin.stopAndHold()

	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	company := startServer(t, "-create", "-db", filepath.Join(dir, "company.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-mirror", mdb, "-mirror-interval", "1h")
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+company.url+","+proxyURL, "GOSUMDB="+vkey)
	download(t, g, special...)
	if !strings.Contains(company.stderr.String(), "/sumdb/sum.golang.org/lookup/example.com/plain@v1.0.0") {
		t.Errorf("the company server logged no lookup under /sumdb/sum.golang.org/:\n%s", company.stderr)
	}
	if st := get(t, company.url+"/status"); !strings.Contains(st, `"name": "sum.golang.org"`) || !strings.Contains(st, `"tree_size": 5`) {
		t.Errorf("status does not show the mirror:\n%s", st)
	}
	// The origin is stopped: the mirror cannot follow it, and says so
	// once its first attempt has failed.
	var out string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if out = sumd(t, "status", "-url", company.url); strings.Contains(out, "problem:") {
			break
		}
	}
	if !strings.Contains(out, "mirror    sum.golang.org (full): 5 records, 0 behind its origin, confirmed current") ||
		!strings.Contains(out, "problem: mirror sum.golang.org: the origin cannot be reached") {
		t.Errorf("sumd status printed:\n%s", out)
	}
}

// TestMirrorRefusesCLI makes an origin misbehave in each way — a fork, a
// rollback, a head signed by another key, a tampered hash tile, a tampered
// record — and runs sumd mirror: each run exits 1 with a SECURITY line
// quoting both heads, stores nothing, and the mirror still serves its last
// good head. An older head that is a prefix of the mirror's (a lagging
// replica) exits 2 without one. Once the origin is honest again the next
// run catches up.
func TestMirrorRefusesCLI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	skey, vkey, err := itlog.GenerateKey(e2eName)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := itlog.ParseKey(skey)
	honest := memLog(t, key, 0, 300)
	oldHead, _ := honest.Signed(ctx)
	addN(t, honest, 300, 200)
	var mode http.Handler
	h := server.New(e2eName, honest, server.Options{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/sumdb/sum.golang.org") // see the first runs
		if mode != nil {
			mode.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer origin.Close()
	db := filepath.Join(dir, "m.db")

	// A new mirror of another origin without -origin-key is refused before
	// anything is made: it used to take sum.golang.org's key and make a
	// mirror of sum.golang.org, which the run with the right key refused.
	_, errOut, err := sumdRun(t, "mirror", "-mirror", db, "-origin", origin.URL)
	if code := statusOf(err); code != 2 || !strings.Contains(errOut, "hint: give -origin-key VKEY") {
		t.Errorf("a new mirror of another origin without -origin-key: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(db); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused run left %s: %v", db, err)
	}
	// An origin taken for sum.golang.org (served under its path, here by
	// this origin) gets the built-in key, which this origin's head fails.
	// The file it made, a mirror of sum.golang.org, is refused by a run
	// with the right key; both errors say to delete it.
	_, errOut, err = sumdRun(t, "mirror", "-mirror", db, "-origin", origin.URL+"/sumdb/sum.golang.org")
	if code := statusOf(err); code != 1 || !strings.Contains(errOut, "no -origin-key was given") || !strings.Contains(errOut, "delete "+db) {
		t.Errorf("a new mirror without -origin-key: exit %d\n%s", code, errOut)
	}
	_, errOut, err = sumdRun(t, "mirror", "-mirror", db, "-origin", origin.URL+"/sumdb/sum.golang.org", "-origin-key", vkey)
	if code := statusOf(err); code == 0 || !strings.Contains(errOut, db+" is a mirror of sum.golang.org that holds no head yet") {
		t.Errorf("the right key on the mirror made without one: exit %d\n%s", code, errOut)
	}
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	mirrorOf(t, db, origin.URL, vkey)
	good, _ := honest.Signed(ctx)
	addN(t, honest, 500, 100)

	fork := memLog(t, key, 0, 450)
	addN(t, fork, 70_000, 150)
	otherKey, _, _ := itlog.GenerateKey(e2eName)
	ok2, _ := itlog.ParseKey(otherKey)
	impostor := memLog(t, ok2, 0, 600)
	rolled := memLog(t, key, 0, 100) // smaller than the mirror's 500, and not a prefix
	addN(t, rolled, 80_000, 300)
	rolledHead, _ := rolled.Signed(ctx)
	rewrite := func(match func(string) bool, change func([]byte) []byte) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			if rec.Code == 200 && match(r.URL.Path) {
				body = change(bytes.Clone(body))
			}
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
	for _, tc := range []struct {
		name string
		h    http.Handler
		kind string
	}{
		{"fork", server.New(e2eName, fork, server.Options{}), "fork"},
		{"rollback", rewrite(func(p string) bool { return p == "/latest" }, func([]byte) []byte { return rolledHead }), "rollback"},
		{"bad signature", server.New(e2eName, impostor, server.Options{}), "signature"},
		{"tampered hash tile", rewrite(func(p string) bool { return strings.HasPrefix(p, "/tile/8/0/") }, func(b []byte) []byte {
			b[0] ^= 1
			return b
		}), "unverified"},
		{"tampered record", rewrite(func(p string) bool { return strings.HasPrefix(p, "/tile/8/data/") }, func(b []byte) []byte {
			return bytes.ReplaceAll(b, []byte(" v1.1.0 h1:"), []byte(" v1.9.0 h1:"))
		}), "unverified"},
	} {
		mode = tc.h
		_, errOut, err := sumdRun(t, "mirror", "-mirror", db)
		if code := statusOf(err); code != 1 || !strings.Contains(errOut, "SECURITY") || !strings.Contains(errOut, "kind="+tc.kind) ||
			!strings.Contains(errOut, "held_head=") || !strings.Contains(errOut, "offered_head=") {
			t.Errorf("%s: sumd mirror exited %d\n%s", tc.name, code, errOut)
		}
		if got := storedHead(t, db); !bytes.Equal(got, good) {
			t.Errorf("%s: the mirror's head changed to %q", tc.name, got)
		}
	}
	// A replica lagging behind a load balancer serves an older head, a
	// prefix of the mirror's: a transient failure (exit 2), not SECURITY.
	mode = rewrite(func(p string) bool { return p == "/latest" }, func([]byte) []byte { return oldHead })
	_, errOut, err = sumdRun(t, "mirror", "-mirror", db)
	if code := statusOf(err); code != 2 || strings.Contains(errOut, "SECURITY") ||
		!strings.Contains(errOut, "is behind the mirror (tree 300 < 500): a lagging replica?") || !strings.Contains(errOut, "hint: ") {
		t.Errorf("a lagging replica: sumd mirror exited %d\n%s", code, errOut)
	}
	if got := storedHead(t, db); !bytes.Equal(got, good) {
		t.Errorf("a lagging replica: the mirror's head changed to %q", got)
	}
	m := startServer(t, "-mirror-only", "-mirror", db, "-mirror-interval", "1h")
	if got := get(t, m.url+"/latest"); got != string(good) {
		t.Errorf("the mirror serves %q, want its last good head", got)
	}
	m.stop()
	mode = nil
	if out := sumd(t, "mirror", "-mirror", db); !strings.Contains(out, "tree 600 (was 500)") {
		t.Errorf("once the origin is honest again: %q", out)
	}
}

// memLog is a primary log in memory holding records first..first+n-1.
func memLog(t *testing.T, key *itlog.Key, first, n int) *itlog.Log {
	l, err := itlog.OpenStore(itlog.NewMemStore(), itlog.Options{Keys: []*itlog.Key{key}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	addN(t, l, first, n)
	return l
}

func addN(t *testing.T, l *itlog.Log, first, n int) {
	t.Helper()
	if _, err := l.Add(context.Background(), syntheticRecords(first, n)...); err != nil {
		t.Fatal(err)
	}
}

// storedHead reads the signed head a bbolt database holds (a mirror, or a
// primary behind a running process's back).
func storedHead(t *testing.T, db string) []byte {
	t.Helper()
	s, err := itlog.OpenBolt(db, itlog.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Head
}

// sameDatabases checks that two databases hold the same signed head, hash
// tiles at every width and records: a mirror byte-identical to its origin.
func sameDatabases(t *testing.T, a, b string) {
	t.Helper()
	ctx := context.Background()
	open := func(path string) *itlog.BoltStore {
		s, err := itlog.OpenBolt(path, itlog.BoltOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sa, sb := open(a), open(b)
	defer sa.Close()
	defer sb.Close()
	sta, _ := sa.Load(ctx)
	stb, _ := sb.Load(ctx)
	if !bytes.Equal(sta.Head, stb.Head) {
		t.Fatalf("heads differ:\n%s\n%s", sta.Head, stb.Head)
	}
	text, _, _ := bytes.Cut(sta.Head, []byte("\n\n"))
	tree, err := tlog.ParseTree(append(text, '\n'))
	if err != nil {
		t.Fatal(err)
	}
	for _, tile := range tlog.NewTiles(8, 0, tree.N) {
		id := []itlog.TileID{{L: tile.L, N: tile.N}}
		da, _ := sa.ReadTiles(ctx, id)
		db, _ := sb.ReadTiles(ctx, id)
		if n := tile.W * 32; len(da[0]) < n || len(db[0]) < n || !bytes.Equal(da[0][:n], db[0][:n]) {
			t.Fatalf("tile %s differs", tile.Path())
		}
	}
	ids := make([]int64, tree.N)
	for i := range ids {
		ids[i] = int64(i)
	}
	ra, _ := sa.ReadRecords(ctx, ids)
	rb, _ := sb.ReadRecords(ctx, ids)
	for i := range ids {
		if ra[i] == nil || !bytes.Equal(ra[i], rb[i]) {
			t.Fatalf("record %d differs: %q, %q", i, ra[i], rb[i])
		}
	}
}

// statusOf returns the exit status of a finished command: 0 for nil.
func statusOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// syntheticLog makes a key in dir/keys and a log dir/NAME of n synthetic
// records, and returns the verifier key, the signing key file and the
// database file.
func syntheticLog(t *testing.T, dir, name string, n int) (vkey, key, db string) {
	t.Helper()
	vkey = strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	key, db = filepath.Join(dir, "keys", e2eName+".key"), filepath.Join(dir, name)
	var buf bytes.Buffer
	for _, r := range syntheticRecords(0, n) {
		buf.Write(r.Text())
	}
	sumd(t, "add", "-create", "-db", db, "-key", key, "-gosum", writeFile(t, filepath.Join(dir, "all.sum"), buf.Bytes()))
	return vkey, key, db
}

// syntheticRecords returns n distinct well-formed records, from first on:
// a log's content when no module needs downloading.
func syntheticRecords(first, n int) []gosum.Record {
	recs := make([]gosum.Record, n)
	for i := range recs {
		recs[i] = verifyRecord("mirror", first+i)
	}
	return recs
}

// TestMirrorSIGKILL kills sumd mirror (SIGKILL) at random moments while it
// stages a 40,000-record log in steps of 1,024, and runs it again each
// time: the last run ends with a database byte-identical to the origin's.
func TestMirrorSIGKILL(t *testing.T) {
	testenv.SkipShort(t, "several mirror runs of a 40,000-record log")
	dir := t.TempDir()
	vkey, key, odb := syntheticLog(t, dir, "origin.db", 40_000)
	origin := startServer(t, "-db", odb, "-key", key)
	mdb := filepath.Join(dir, "mirror.db")
	args := []string{"mirror", "-mirror", mdb, "-origin", origin.url, "-origin-key", vkey, "-step", "1024", "-log-level", "debug"}
	// A run may finish before its kill (40,000 records stage in a few
	// hundred milliseconds on a quiet machine): until one is killed
	// midway, start again from an empty mirror, killing sooner.
	midway, runs, wait := 0, 0, 400 // runs killed while staging, before the head moved; runs; the longest wait (ms)
	for ; runs < 4 || midway == 0 && runs < 12; runs++ {
		if _, err := os.Stat(mdb); err == nil && bytes.Contains(storedHead(t, mdb), []byte("\n40000\n")) {
			if midway > 0 {
				break // nothing is left to stage
			}
			if err := os.Remove(mdb); err != nil {
				t.Fatal(err)
			}
			wait = max(wait/2, 10)
		}
		// Kill it at a random moment after it starts (or resumes) staging.
		cmd := startSaying(t, "staging", 20*time.Second, args...)
		time.Sleep(time.Duration(rand.IntN(wait)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if head := storedHead(t, mdb); !bytes.Contains(head, []byte("\n40000\n")) {
			midway++
		}
	}
	if midway == 0 {
		t.Fatal("every run finished before it was killed: the test proved nothing")
	}
	out := sumd(t, args...)
	if !strings.Contains(out, "tree 40000") {
		t.Fatalf("the run after the kills printed %q", out)
	}
	t.Logf("%d of %d runs killed mid-way; the last: %s", midway, runs, out)
	origin.stop()
	sameDatabases(t, odb, mdb)
}

// TestMirrorAuth mirrors a primary behind the access layer: without
// credentials, and with a reader's, sumd mirror is refused and says what it
// needs (data tiles need an auditor); with an auditor's token it mirrors,
// and the database remembers which credentials to send (a file name, not
// the token) for the next run.
func TestMirrorAuth(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 300)
	tokens := writeSecret(t, filepath.Join(dir, "tokens"), "replica:replica-token-0123456789:auditor\ndev:dev-token-0123456789abcdef:reader\n")
	p := startServer(t, "-db", db, "-key", key, "-read-auth", "bearer", "-read-auth-file", tokens)
	auditor := writeSecret(t, filepath.Join(dir, "auditor.token"), "replica-token-0123456789\n")
	reader := writeSecret(t, filepath.Join(dir, "reader.token"), "dev-token-0123456789abcdef\n")
	mdb := filepath.Join(dir, "m.db")
	for _, tc := range []struct{ auth, want string }{
		{"none", "the server needs credentials"},
		{"bearer:" + reader, "the server refused these credentials: a mirror reads data tiles, which need an auditor's"},
	} {
		_, errOut, err := sumdRun(t, "mirror", "-mirror", mdb, "-origin", p.url, "-origin-key", vkey, "-auth", tc.auth)
		if statusOf(err) != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("sumd mirror -auth %s: exit %d\n%s", tc.auth, statusOf(err), errOut)
		}
	}
	if out := mirrorOf(t, mdb, p.url, vkey, "-auth", "bearer:"+auditor); !strings.Contains(out, "tree 300 (was 0)") {
		t.Fatalf("sumd mirror with an auditor's token printed %q", out)
	}
	p.stop()
	more := syntheticRecords(300, 5)
	var buf bytes.Buffer
	for _, r := range more {
		buf.Write(r.Text())
	}
	sumd(t, "add", "-db", db, "-key", key, "-gosum", writeFile(t, filepath.Join(dir, "more.sum"), buf.Bytes()))
	p = startServer(t, "-db", db, "-key", key, "-read-auth", "bearer", "-read-auth-file", tokens)
	if out := sumd(t, "mirror", "-mirror", mdb, "-origin", p.url); !strings.Contains(out, "tree 305 (was 300)") {
		t.Errorf("a later run, with the credentials the database remembers, printed %q", out)
	}
}
