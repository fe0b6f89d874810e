package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/testproxy"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestMirrorBundles carries a mirror into an air gap: outside, sumd mirror
// and sumd mirror export (full, then incremental since the last bundle);
// inside, sumd mirror import into another directory with no network, and a
// mirror-only server the go command verifies through. Tampered and
// truncated bundles are refused and change nothing.
func TestMirrorBundles(t *testing.T) {
	e := newE2ELog(t)
	p := e.serve(t)
	outside, inside := filepath.Join(t.TempDir(), "outside.db"), filepath.Join(t.TempDir(), "inside.db")
	mirrorOf(t, outside, p.url, e.vkey)
	b1 := filepath.Join(t.TempDir(), "1.bundle")
	out := sumd(t, "mirror", "export", "-mirror", outside, "-o", b1)
	if !strings.Contains(out, "from tree 0 to 305") {
		t.Fatalf("export printed %q", out)
	}
	if fi, err := os.Stat(b1); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("bundle file has mode %v; want 0600, as the database's", fi.Mode().Perm())
	}
	p.stop()
	e.addGoSum(t, e.many[300:])
	p = e.serve(t)
	mirrorOf(t, outside, p.url, e.vkey)
	p.stop()
	b2 := filepath.Join(t.TempDir(), "2.bundle")
	out = sumd(t, "mirror", "export", "-mirror", outside, "-since", b1, "-o", b2)
	if !strings.Contains(out, "from tree 305 to 355") {
		t.Fatalf("incremental export printed %q", out)
	}
	size := func(f string) int64 { fi, _ := os.Stat(f); return fi.Size() }
	if size(b2)*3 > size(b1) {
		t.Errorf("the incremental bundle of 50 records is %d bytes, the full one of 305 %d", size(b2), size(b1))
	}
	t.Logf("bundles: %d bytes for 305 records, %d for 50 more (%s)", size(b1), size(b2), strings.TrimSpace(out))

	if out := sumd(t, "mirror", "import", "-mirror", inside, "-origin-key", e.vkey, b1); !strings.Contains(out, "tree 305 (was 0)") {
		t.Fatalf("import printed %q", out)
	}
	data, _ := os.ReadFile(b2)
	for name, bad := range map[string][]byte{
		"tampered":  flipAt(data, len(data)/2),
		"truncated": data[:len(data)*2/3],
	} {
		f := writeFile(t, filepath.Join(t.TempDir(), name+".bundle"), bad)
		_, errOut, err := sumdRun(t, "mirror", "import", "-mirror", inside, f)
		if statusOf(err) != 1 || !strings.Contains(errOut, "sumd: error: "+f+": ") || !strings.Contains(errOut, "the mirror serves tree 305") || !strings.Contains(errOut, "-since 305") {
			t.Errorf("import of a %s bundle: exit %d\n%s", name, statusOf(err), errOut)
		}
		if head := storedHead(t, inside); !strings.Contains(string(head), "\n305\n") {
			t.Errorf("the %s bundle changed the mirror: %q", name, head)
		}
		// Into a new mirror: no database is left behind.
		fresh := filepath.Join(t.TempDir(), "fresh.db")
		if _, _, err := sumdRun(t, "mirror", "import", "-mirror", fresh, "-origin-key", e.vkey, f); statusOf(err) != 1 {
			t.Errorf("import of a %s bundle into a new mirror: exit %d", name, statusOf(err))
		}
		if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("import of a %s bundle into a new mirror left its database: %v", name, err)
		}
	}
	// Through a FIFO, which can be read once: import copies it and reads
	// the copy twice (it opened the bundle once per pass, and hung).
	fifo := filepath.Join(t.TempDir(), "2.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Write(data)
			f.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sumdBin, "mirror", "import", "-mirror", inside, fifo)
	cmd.Env = childEnv(t)
	combined, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(combined), "tree 355 (was 305)") {
		t.Fatalf("incremental import through a FIFO: %v\n%s", err, combined)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(inside), ".sumd-import-*")); len(left) > 0 {
		t.Errorf("import left its copy of the FIFO's bundle: %q", left)
	}
	sameDatabases(t, e.db, inside)

	m := startServer(t, "-mirror-only", "-mirror", inside)
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+m.url+","+e.proxyURL, "GOSUMDB="+e.vkey)
	download(t, g, special[0], e.many[349])
	mods := testproxy.Versions("example.com/unrecorded", 1)
	if _, err := testproxy.Build(e.proxyDir, mods); err != nil {
		t.Fatal(err)
	}
	out, err = g.Run("mod", "download", args(mods...)[0])
	if err == nil || !strings.Contains(out, "does not hold it and is offline: it has no origin to ask (it is fed by bundles)") {
		t.Errorf("go mod download of a version an air-gapped mirror lacks: %v\n%s", err, out)
	}
}

func flipAt(data []byte, i int) []byte {
	c := append([]byte(nil), data...)
	c[i] ^= 0x20
	return c
}

// TestMirrorPartial keeps only the versions of a go.sum file and of a path
// pattern: the go command verifies those through the mirror with the
// primary stopped; another version gets the offline 404.
func TestMirrorPartial(t *testing.T) {
	e := newE2ELog(t)
	p := e.serve(t)
	listed := []testproxy.Module{special[2], e.many[7], e.many[300]}
	sumFile := writeFile(t, filepath.Join(e.dir, "app.sum"), goSumFile(t, e.proxyDir, listed[:2]))
	db := filepath.Join(e.dir, "partial.db")
	mirrorOf(t, db, p.url, e.vkey, "-modules", sumFile+",example.com/plain")
	p.stop()
	e.addGoSum(t, e.many[300:])
	p = e.serve(t)
	// The go.sum file grows; the next run looks the new version up.
	writeFile(t, sumFile, goSumFile(t, e.proxyDir, listed))
	if out := mirrorOf(t, db, p.url, e.vkey); !strings.Contains(out, "tree 355 (was 305)") {
		t.Fatalf("the second run printed %q", out)
	}
	// sumd add -gosum gives ids in key order, not file order: ask.
	want := []int64{0, 2, 4, lookupID(t, p.url, e.many[7]), lookupID(t, p.url, e.many[300])}
	slices.Sort(want)
	p.stop()

	// special[0] and special[4] match example.com/plain; the rest come
	// from the go.sum file.
	held := records(t, db)
	if strings.Join(strs(held), ",") != strings.Join(strs(want), ",") {
		t.Errorf("the partial mirror holds records %v, want %v", held, want)
	}
	m := startServer(t, "-mirror-only", "-mirror", db)
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+e.proxyURL, "GOSUMDB="+m.gosumdb)
	download(t, g, special[0], special[2], special[4], e.many[7], e.many[300])
	out, err := g.Run("mod", "download", args(e.many[8])[0])
	if err == nil || !strings.Contains(out, "does not hold it and is offline") {
		t.Errorf("a version the partial mirror lacks: %v\n%s", err, out)
	}

	// Its bundle makes a mirror partial too, and its status says so.
	m.stop()
	bundle := filepath.Join(e.dir, "partial.bundle")
	sumd(t, "mirror", "export", "-mirror", db, "-o", bundle)
	inside := filepath.Join(e.dir, "inside.db")
	sumd(t, "mirror", "import", "-mirror", inside, "-origin-key", e.vkey, bundle)
	m = startServer(t, "-mirror-only", "-mirror", inside)
	if st := get(t, m.url+"/status"); !strings.Contains(st, `"partial": true`) {
		t.Errorf("the status of a mirror a partial bundle made:\n%s\nwant partial", st)
	}
}

// records lists the ids of the records a database holds.
func records(t *testing.T, db string) []int64 {
	t.Helper()
	s, err := itlog.OpenBolt(db, itlog.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ids := make([]int64, 1000)
	for i := range ids {
		ids[i] = int64(i)
	}
	texts, err := s.ReadRecords(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	var held []int64
	for i, text := range texts {
		if text != nil {
			held = append(held, int64(i))
		}
	}
	return held
}

func strs(ids []int64) []string {
	var out []string
	for _, id := range ids {
		out = append(out, strconv.FormatInt(id, 10))
	}
	return out
}

// lookupID is the record id of m in the log served at url.
func lookupID(t *testing.T, url string, m testproxy.Module) int64 {
	t.Helper()
	first, _, _ := strings.Cut(get(t, url+"/lookup/"+m.Path+"@"+m.Version), "\n")
	id, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		t.Fatalf("lookup of %s@%s: %v", m.Path, m.Version, err)
	}
	return id
}

// TestImportSIGKILL kills sumd mirror import (SIGKILL) once it has staged
// part of a 39,000-record bundle, twice: each time the mirror still opens,
// verifies in full under the origin's key and serves the head it held
// before (1,000 records), and the same bundle imported again resumes and
// ends with a database identical to the origin's.
func TestImportSIGKILL(t *testing.T) {
	testenv.SkipShort(t, "imports of a 39,000-record bundle")
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "origin.db", 1000)
	mdb := filepath.Join(dir, "mirror.db")
	sumd(t, "mirror", "import", "-mirror", mdb, "-origin-key", vkey, exportPrimary(t, db, key, filepath.Join(dir, "1.bundle")))
	held := storedHead(t, mdb)
	var buf bytes.Buffer
	for _, r := range syntheticRecords(1000, 39_000) {
		buf.Write(r.Text())
	}
	sumd(t, "add", "-db", db, "-key", key, "-gosum", writeFile(t, filepath.Join(dir, "more.sum"), buf.Bytes()))
	bundle := exportPrimarySince(t, db, key, filepath.Join(dir, "2.bundle"), 1000)
	args := []string{"mirror", "import", "-mirror", mdb, "-log-level", "debug", bundle}

	for kill := range 2 {
		cmd := startSaying(t, "staged part of the bundle", time.Minute, args...)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if head := storedHead(t, mdb); !bytes.Equal(head, held) {
			t.Fatalf("kill %d: the import was killed after it published the bundle's head:\n%s", kill, head)
		}
		if out, errOut, err := sumdRun(t, "backup", "verify", "-vkey", vkey, mdb); err != nil {
			t.Fatalf("kill %d: backup verify of the mirror: %v\n%s%s", kill, err, out, errOut)
		}
		s := startServer(t, "-mirror-only", "-mirror", mdb)
		code, latest := bearerGet(t, s.url+"/sumdb/"+e2eName+"/latest", "")
		s.stop()
		if code != 200 || latest != string(held) {
			t.Fatalf("kill %d: the mirror serves /latest %d:\n%s\nwant the head it held:\n%s", kill, code, latest, held)
		}
	}
	if out := sumd(t, args...); !strings.Contains(out, "tree 40000 (was 1000)") {
		t.Fatalf("the import after the kills printed %q", out)
	}
	sameDatabases(t, db, mdb)
}
