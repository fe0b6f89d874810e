package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// ownGoSum is sumd's own go.sum: a real one, with a +incompatible version
// that has only its zip line and many versions with only their go.mod line.
var ownGoSum = filepath.Join("..", "..", "go.sum")

// countGoSum counts the versions of a go.sum file with both lines and with
// one line only.
func countGoSum(t *testing.T, file string) (complete, oneLine int) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]int{}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		lines[f[0]+"@"+strings.TrimSuffix(f[1], "/go.mod")]++
	}
	for _, n := range lines {
		if n == 2 {
			complete++
		} else {
			oneLine++
		}
	}
	return complete, oneLine
}

// TestSeedOwnGoSum seeds a log from sumd's own go.sum: every complete
// version is recorded, the others are listed and counted, and sumd verify
// -gosum on the served log finds nothing wrong, telling the versions not
// recorded yet apart (exit status 0).
func TestSeedOwnGoSum(t *testing.T) {
	complete, oneLine := countGoSum(t, ownGoSum)
	l := newVerifyLog(t, t.TempDir())
	out, errOut, err := sumdRun(t, "add", "-create", "-db", l.db, "-key", l.key, "-gosum", ownGoSum)
	if err != nil {
		t.Fatalf("sumd add -gosum go.sum: %v\n%s%s", err, out, errOut)
	}
	if want := "added " + strconv.Itoa(complete) + " records, 0 already present"; !strings.Contains(out, want) {
		t.Errorf("sumd add -gosum said\n%s\nwant %q", out, want)
	}
	if !strings.Contains(out, "not recorded: "+strconv.Itoa(oneLine)+" module version(s) with one go.sum line only") ||
		!strings.Contains(errOut, "github.com/Azure/azure-sdk-for-go@v68.0.0+incompatible has only a zip line (no go.mod hash)") {
		t.Errorf("sumd add -gosum does not list and count the %d incomplete versions:\n%s%s", oneLine, out, errOut)
	}

	s := l.serve(t)
	rep := verifyJSON(t, 0, "-url", s.url, "-key", l.vkeyFile, "-gosum", ownGoSum)
	if !rep.OK || len(rep.Problems) != 0 || rep.GosumUnrecordedCount != oneLine {
		t.Errorf("verify -gosum of the imported go.sum: ok=%v, %d problems, %d not recorded yet; want ok, none, %d", rep.OK, len(rep.Problems), rep.GosumUnrecordedCount, oneLine)
	}
	human, _, code := verify(t, "-url", s.url, "-key", l.vkeyFile, "-gosum", ownGoSum)
	if code != 0 || !strings.Contains(human, "not recorded yet (not a problem)") || !strings.Contains(human, "is not recorded yet (go.mod-only line)") {
		t.Errorf("verify -gosum summary (exit %d):\n%s", code, human)
	}
}

// TestSeedFromUpstream completes the versions a go.sum has one line of
// from a module proxy, as sumd serve -upstream fetches them: those the
// proxy serves with the hash of the line are recorded, one it lacks and one
// whose go.mod differs are listed. The go command then verifies a completed
// version through sumd.
func TestSeedFromUpstream(t *testing.T) {
	dir := t.TempDir()
	proxyDir := filepath.Join(dir, "proxy")
	mods := testproxy.Versions("example.com/seed", 4)
	proxyURL, err := testproxy.Build(proxyDir, mods)
	if err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	sum.Write(goSumFile(t, proxyDir, mods[:1])) // complete
	for _, m := range mods[1:3] {               // go.mod lines only
		sum.WriteString(goModLine(t, proxyDir, m))
	}
	other := gosum.Record{Path: mods[3].Path, Version: mods[3].Version, GoMod: "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}
	sum.WriteString(other.Path + " " + other.Version + "/go.mod " + other.GoMod + "\n") // another go.mod than the proxy's
	sum.WriteString("example.com/gone v1.0.0/go.mod h1:Ecm3bQzABmxvvAZb9E2gIS5T8SUqmmlBVHRj2vYSMC4=\n")
	file := writeFile(t, filepath.Join(dir, "go.sum"), sum.Bytes())

	l := newVerifyLog(t, dir)
	out, errOut, err := sumdRun(t, "add", "-create", "-db", l.db, "-key", l.key, "-gosum", file, "-upstream", proxyURL)
	if err != nil {
		t.Fatalf("sumd add -gosum -upstream: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{"completed 2 of 4 from " + proxyURL, "added 3 records, 0 already present (tree size 3)", "not recorded: 2 module version(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("sumd add -gosum -upstream said\n%s\nwant %q", out, want)
		}
	}
	for _, want := range []string{
		file + ":5: " + mods[3].Path + "@" + mods[3].Version + " has only a go.mod line (no zip hash): not completed from upstream: the module proxy serves other content than the go.sum line says: go.mod hash",
		file + ":6: example.com/gone@v1.0.0 has only a go.mod line (no zip hash): not completed from upstream: ",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("sumd add -gosum -upstream stderr:\n%s\nwant %q", errOut, want)
		}
	}

	s := l.serve(t)
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+proxyURL, "GOSUMDB="+s.gosumdb)
	download(t, g, mods[2])
}

// TestSeedStrictUpstream: -strict with -upstream refuses only versions
// -upstream could not complete: those it completes are recorded (it
// refused as soon as any version had one line, before -upstream was
// tried, and said to add -upstream, which was given).
func TestSeedStrictUpstream(t *testing.T) {
	dir := t.TempDir()
	proxyDir := filepath.Join(dir, "proxy")
	mods := testproxy.Versions("example.com/strict", 3)
	proxyURL, err := testproxy.Build(proxyDir, mods)
	if err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	sum.Write(goSumFile(t, proxyDir, mods[:1])) // complete
	for _, m := range mods[1:] {                // go.mod lines only, which the proxy completes
		sum.WriteString(goModLine(t, proxyDir, m))
	}
	completable := writeFile(t, filepath.Join(dir, "go.sum"), sum.Bytes())
	sum.WriteString("example.com/gone v1.0.0/go.mod h1:Ecm3bQzABmxvvAZb9E2gIS5T8SUqmmlBVHRj2vYSMC4=\n")
	notCompletable := writeFile(t, filepath.Join(dir, "gone.sum"), sum.Bytes())

	l := newVerifyLog(t, dir)
	out, errOut, err := sumdRun(t, "add", "-create", "-db", l.db, "-key", l.key, "-strict", "-gosum", notCompletable, "-upstream", proxyURL)
	if err == nil || !strings.Contains(errOut, "1 module version(s) have only one of their two go.sum lines and were not completed from upstream; nothing was added (-strict)") ||
		!strings.Contains(errOut, notCompletable+":5: example.com/gone@v1.0.0 has only a go.mod line (no zip hash): not completed from upstream") ||
		strings.Contains(errOut, "add -upstream") || strings.Contains(out, "added ") {
		t.Fatalf("sumd add -strict -upstream with a version upstream lacks: %v\n%s%s\nwant it refused, naming that version only, adding nothing", err, out, errOut)
	}
	if _, err := os.Stat(l.db); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused sumd add -create left its new database behind: %v", err)
	}
	out, errOut, err = sumdRun(t, "add", "-create", "-db", l.db, "-key", l.key, "-strict", "-gosum", completable, "-upstream", proxyURL)
	if err != nil || !strings.Contains(out, "completed 2 of 2 from "+proxyURL) || !strings.Contains(out, "added 3 records, 0 already present (tree size 3)") {
		t.Errorf("sumd add -strict -upstream with versions upstream completes: %v\n%s%s\nwant 3 records added", err, out, errOut)
	}
}

// goModLine returns the go.mod line of m, hashed from the proxy tree.
func goModLine(t *testing.T, proxyDir string, m testproxy.Module) string {
	t.Helper()
	mv := module.Version{Path: m.Path, Version: m.Version}
	sums, err := modhash.HashZip(mv, testproxy.ZipPath(proxyDir, mv), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m.Path + " " + m.Version + "/go.mod " + sums.GoMod + "\n"
}

// TestSeedThroughServer imports a go.sum file through a running sumd's
// admin API (sumd add -server -gosum), in more than one POST: every
// version is recorded and served. A second file with one version the log
// holds with another hash adds nothing and names the line; a third run of
// the first file adds nothing new.
func TestSeedThroughServer(t *testing.T) {
	const n = remoteChunk + 100 // two POSTs
	l := newVerifyLog(t, t.TempDir())
	token := writeSecret(t, filepath.Join(l.dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	s := startServer(t, "-create", "-db", l.db, "-key", l.key, "-admin-token-file", token)
	var sum, other bytes.Buffer
	for i := n - 1; i >= 0; i-- { // reverse key order
		sum.Write(verifyRecord("remote", i).Text())
	}
	file := writeFile(t, filepath.Join(l.dir, "go.sum"), sum.Bytes())
	out := sumd(t, "add", "-server", s.url, "-token-file", token, "-gosum", file)
	if want := fmt.Sprintf("added %d records, 0 already present (tree size %d)", n, n); !strings.Contains(out, want) {
		t.Errorf("sumd add -server -gosum said\n%s\nwant %q", out, want)
	}
	r := verifyRecord("remote", 7)
	if got := get(t, s.url+"/lookup/"+r.Key()); !strings.Contains(got, string(r.Text())) {
		t.Errorf("lookup of %s after the import:\n%s\nwant its record", r.Key(), got)
	}

	other.Write(verifyRecord("other", n+1).Text()) // a new version
	changed := r
	changed.Hash = verifyRecord("other", 1).Hash
	other.Write(changed.Text())
	otherFile := writeFile(t, filepath.Join(l.dir, "other.sum"), other.Bytes())
	out, errOut, err := sumdRun(t, "add", "-server", s.url, "-token-file", token, "-gosum", otherFile)
	if err == nil || !strings.Contains(errOut, otherFile+":3: "+r.Key()+" is recorded as record ") ||
		!strings.Contains(errOut, "sumd: error: 1 module version(s) are recorded with other hashes; nothing was added") {
		t.Errorf("sumd add -server -gosum of a conflicting file: %v\n%s%s\nwant the conflict at line 3 and nothing added", err, out, errOut)
	}
	if head := get(t, s.url+"/latest"); !strings.HasPrefix(head, fmt.Sprintf("go.sum database tree\n%d\n", n)) {
		t.Errorf("after a refused import the tree head is %q, want %d records", head, n)
	}

	out = sumd(t, "add", "-server", s.url, "-token-file", token, "-gosum", file)
	if want := fmt.Sprintf("added 0 records, %d already present (tree size %d)", n, n); !strings.Contains(out, want) {
		t.Errorf("sumd add -server -gosum again said\n%s\nwant %q", out, want)
	}
}
