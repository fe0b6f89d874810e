package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/mirror"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestImportRefusedLeavesNoFile: sumd mirror import of another log's
// bundle into a new mirror without -origin-key is refused before the
// mirror's file is made (it used to leave a new, empty one behind), and a
// bundle that does not exist is named with a hint to check it.
func TestImportRefusedLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 20)
	p := startServer(t, "-db", db, "-key", key)
	outside := filepath.Join(dir, "outside.db")
	mirrorOf(t, outside, p.url, vkey)
	p.stop()
	bundle := filepath.Join(dir, "all.bundle")
	sumd(t, "mirror", "export", "-mirror", outside, "-o", bundle)

	inside := filepath.Join(dir, "inside.db")
	_, errOut, err := sumdRun(t, "mirror", "import", "-mirror", inside, bundle)
	if err == nil || !strings.Contains(errOut, "hint: give -origin-key VKEY") {
		t.Errorf("import of another log's bundle without -origin-key: %v\n%s", err, errOut)
	}
	if _, err := os.Stat(inside); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused import left %s: %v", inside, err)
	}
	missing := filepath.Join(dir, "nonexist.bundle")
	_, errOut, err = sumdRun(t, "mirror", "import", "-mirror", inside, "-origin-key", vkey, missing)
	if err == nil || !strings.Contains(errOut, "hint: check the bundle's name: "+missing) {
		t.Errorf("import of a bundle that does not exist: %v\n%s", err, errOut)
	}
	if _, err := os.Stat(inside); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the import of a missing bundle left %s: %v", inside, err)
	}
	if out := sumd(t, "mirror", "import", "-mirror", inside, "-origin-key", vkey, bundle); !strings.Contains(out, "tree 20 (was 0)") {
		t.Errorf("import with -origin-key printed %q", out)
	}
}

// TestImportSavesOriginKeys: the keys sumd mirror import -origin-key gives
// a mirror that already has a configuration are saved once the import
// succeeds, as sumd mirror saves them: they were used for that import
// only, so once the origin retired its old key, every later command on the
// mirror without -origin-key (and sumd serve -mirror, which has none)
// refused its head.
func TestImportSavesOriginKeys(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 20)
	outside, inside := filepath.Join(dir, "outside.db"), filepath.Join(dir, "inside.db")
	export := func(bundle, vkeys string, serveKey string) {
		t.Helper()
		p := startServer(t, "-db", db, "-key", serveKey)
		mirrorOf(t, outside, p.url, vkeys)
		p.stop()
		sumd(t, "mirror", "export", "-mirror", outside, "-o", bundle)
	}
	b1 := filepath.Join(dir, "1.bundle")
	export(b1, vkey, key)
	sumd(t, "mirror", "import", "-mirror", inside, "-origin-key", vkey, b1)

	// The origin rotates its key, and retires the old one.
	newKey := filepath.Join(dir, "next", e2eName+".key")
	newVKey := strings.TrimSpace(sumd(t, "key", "rotate", "-db", db, "-key", key, "-new-key", newKey))
	sumd(t, "key", "retire", "-db", db, "-key", key+","+newKey, "-retire", vkey)
	var buf bytes.Buffer
	for _, r := range syntheticRecords(20, 10) {
		buf.Write(r.Text())
	}
	sumd(t, "add", "-db", db, "-key", newKey, "-gosum", writeFile(t, filepath.Join(dir, "more.sum"), buf.Bytes()))
	b2 := filepath.Join(dir, "2.bundle")
	export(b2, vkey+","+newVKey, newKey)
	if out := sumd(t, "mirror", "import", "-mirror", inside, "-origin-key", vkey+","+newVKey, b2); !strings.Contains(out, "tree 30 (was 20)") {
		t.Fatalf("import of the bundle signed with the new key printed %q", out)
	}
	if got := storedMirrorConfig(t, inside).VerifierKeys; !slices.Contains(got, newVKey) {
		t.Errorf("after an import with -origin-key OLD,NEW the mirror remembers the keys %q, want the new one among them", got)
	}
	if _, errOut, err := sumdRun(t, "mirror", "export", "-mirror", inside, "-o", filepath.Join(dir, "3.bundle")); err != nil {
		t.Errorf("export from the mirror without -origin-key after the import: %v\n%s", err, errOut)
	}
}

// exportPrimary writes a bundle of the whole log db (a primary's own
// export) to dir/NAME.
func exportPrimary(t *testing.T, db, key, name string) string {
	t.Helper()
	return exportPrimarySince(t, db, key, name, 0)
}

// TestImportNewMirrorKeepsStaging: the first import into a new mirror
// database that fails part way through storing (here canceled after its
// first step; the disk's floor, in life) keeps the database and what it
// staged, and the same import run again resumes and finishes it. The
// database was removed as one that "holds no tree" (it publishes nothing
// before the last step), so every step stored was lost, and the staged
// head with it.
func TestImportNewMirrorKeepsStaging(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 1000)
	bundle := exportPrimary(t, db, key, filepath.Join(dir, "all.bundle"))
	inside := filepath.Join(dir, "inside.db")
	testImport = func(ctx context.Context, o *mirror.ImportOptions) context.Context {
		ctx, cancel := context.WithCancel(ctx)
		o.Step = 256
		o.Progress = func(done, total int64) {
			if done < total {
				cancel()
			}
		}
		return ctx
	}
	var stdout, stderr bytes.Buffer
	err := runMirrorImport([]string{"-mirror", inside, "-origin-key", vkey, bundle}, &stdout, &stderr)
	testImport = nil
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted import: %v, want context.Canceled", err)
	}
	l, _, err := openMirror(inside, vkey, nil, false, -1, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("the interrupted import's database: %v", err)
	}
	staged, err := l.Staged(context.Background())
	l.Close()
	if err != nil || staged == nil {
		t.Fatalf("the interrupted import's database stages %+v, %v; want the bundle's head", staged, err)
	}
	stdout.Reset()
	if err := runMirrorImport([]string{"-mirror", inside, "-origin-key", vkey, bundle}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "tree 1000 (was 0)") {
		t.Fatalf("the same import again: %v\n%s%s", err, &stdout, &stderr)
	}
}

// TestBundleStream: sumd mirror export -o - writes the bundle to standard
// output (its summary to standard error), and sumd mirror import - reads
// one from standard input: a bundle streamed across a data diode or ssh.
// Both took "-" for a file name: export wrote a file called "-" (and its
// summary to the pipe), import looked for one.
func TestBundleStream(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 300)
	p := startServer(t, "-db", db, "-key", key)
	outside := filepath.Join(dir, "outside.db")
	mirrorOf(t, outside, p.url, vkey)
	p.stop()

	var bundle, errOut bytes.Buffer
	cmd := sumdCommand(t, "mirror", "export", "-mirror", outside, "-o", "-")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &bundle, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("export -o -: %v\n%s", err, &errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "-")); err == nil {
		t.Errorf("export -o - wrote a file called -")
	}
	if h, err := mirror.ReadBundleHeader(bytes.NewReader(bundle.Bytes())); err != nil || h.To != 300 {
		t.Fatalf("export -o - wrote %q... to standard output: %+v, %v", bundle.Bytes()[:min(bundle.Len(), 80)], h, err)
	}
	if !strings.Contains(errOut.String(), "wrote a bundle to standard output: "+e2eName+" from tree 0 to 300") {
		t.Errorf("export -o - said on standard error: %s", &errOut)
	}

	inside := filepath.Join(dir, "inside.db")
	var out bytes.Buffer
	errOut.Reset()
	cmd = sumdCommand(t, "mirror", "import", "-mirror", inside, "-origin-key", vkey, "-")
	cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr = dir, bytes.NewReader(bundle.Bytes()), &out, &errOut
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "imported standard input: "+e2eName+" tree 300 (was 0)") {
		t.Fatalf("import - from a pipe: %v\n%s%s", err, &out, &errOut)
	}
	sameDatabases(t, outside, inside)
}

// TestExportSinceOtherOrigin: sumd mirror export -since BUNDLE refuses a
// bundle of another origin's mirror (a site carrying several), naming
// both; it took that bundle's tree size for what the importing side holds
// of this origin.
func TestExportSinceOtherOrigin(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 20)
	p := startServer(t, "-db", db, "-key", key)
	outside := filepath.Join(dir, "outside.db")
	mirrorOf(t, outside, p.url, vkey)
	p.stop()
	other := filepath.Join(dir, "other.bundle")
	writeFile(t, other, bundleStart(0, 10)) // of example.com
	_, errOut, err := sumdRun(t, "mirror", "export", "-mirror", outside, "-since", other, "-o", filepath.Join(dir, "next.bundle"))
	if err == nil || !strings.Contains(errOut, "is a bundle of example.com, but "+outside+" mirrors "+e2eName) {
		t.Errorf("export -since another origin's bundle: %v\n%s", err, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "next.bundle")); err == nil {
		t.Errorf("export -since another origin's bundle wrote one")
	}
}

// TestExportSinceAhead: sumd mirror export -since a tree larger than the
// mirror's (the importing side is ahead: it imported from another mirror,
// or -since names a newer bundle) failed with "cannot export from tree
// 30: the mirror holds a tree of 20 records" and no word on what to do.
// The hint says the importing side needs nothing this mirror holds, and
// how to bring this mirror up first.
func TestExportSinceAhead(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 20)
	p := startServer(t, "-db", db, "-key", key)
	outside := filepath.Join(dir, "outside.db")
	mirrorOf(t, outside, p.url, vkey)
	p.stop()
	next := filepath.Join(dir, "next.bundle")
	_, errOut, err := sumdRun(t, "mirror", "export", "-mirror", outside, "-since", "30", "-o", next)
	if err == nil || !strings.Contains(errOut, "holds a tree of 20 records") || !strings.Contains(errOut, "hint: ") {
		t.Errorf("export -since 30 from a mirror of 20 records: %v\n%s\nwant a hint", err, errOut)
	}
	if _, err := os.Stat(next); err == nil {
		t.Errorf("export -since beyond the mirror's tree wrote a bundle")
	}
}

// TestImportStdinTwice: sumd mirror import - - refuses standard input
// named twice before importing anything: it imported the stream once,
// closed standard input, and then failed to stat it ("file already
// closed"), the first import done.
func TestImportStdinTwice(t *testing.T) {
	dir := t.TempDir()
	inside := filepath.Join(dir, "inside.db")
	var out, errOut bytes.Buffer
	cmd := sumdCommand(t, "mirror", "import", "-mirror", inside, "-", "-")
	cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr = dir, strings.NewReader(""), &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(errOut.String(), "standard input (-) is named twice") {
		t.Fatalf("import - -: %v\n%s%s", err, &out, &errOut)
	}
}

// TestImportLowDisk: sumd mirror import stopped by -min-free-disk is told
// to free space on the mirror's disk or lower -min-free-disk. Into a new
// mirror database, it was told that -mirror names a mirror's database, and
// left an empty file behind; into an existing mirror, to fetch the bundle
// again as if it were damaged.
func TestImportLowDisk(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 20)
	first := exportPrimary(t, db, key, filepath.Join(dir, "first.bundle"))
	inside := filepath.Join(dir, "inside.db")
	const floor = "100000000" // MiB: more than any test machine's disk
	_, errOut, err := sumdRun(t, "mirror", "import", "-mirror", inside, "-origin-key", vkey, "-min-free-disk", floor, first)
	if err == nil || !strings.Contains(errOut, "lower -min-free-disk") || strings.Contains(errOut, "-mirror names") {
		t.Errorf("import into a new mirror under -min-free-disk: %v\n%s\nwant a hint to free space or lower -min-free-disk", err, errOut)
	}
	if _, err := os.Stat(inside); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the import refused by -min-free-disk left %s: %v", inside, err)
	}
	sumd(t, "mirror", "import", "-mirror", inside, "-origin-key", vkey, first)

	var buf bytes.Buffer
	for _, r := range syntheticRecords(20, 10) {
		buf.Write(r.Text())
	}
	sumd(t, "add", "-db", db, "-key", key, "-gosum", writeFile(t, filepath.Join(dir, "more.sum"), buf.Bytes()))
	second := exportPrimary(t, db, key, filepath.Join(dir, "second.bundle"))
	_, errOut, err = sumdRun(t, "mirror", "import", "-mirror", inside, "-min-free-disk", floor, second)
	if err == nil || !strings.Contains(errOut, "lower -min-free-disk") || strings.Contains(errOut, "damaged on the way") {
		t.Errorf("import into a mirror under -min-free-disk: %v\n%s\nwant a hint to free space or lower -min-free-disk", err, errOut)
	}
	if out := sumd(t, "mirror", "import", "-mirror", inside, second); !strings.Contains(out, "tree 30 (was 20)") {
		t.Errorf("the same import with the room printed %q", out)
	}
}

// TestImportForkRefused offers sumd mirror import bundles signed by the
// origin's key that would fork the mirror's history — a tree of the same
// size with other records, a smaller one that is not its prefix, a larger
// one that does not contain it, whole or starting inside the mirror's
// tree — each refused with a non-zero exit status, a SECURITY error, a
// hint saying what to do, and the mirror's file unchanged.
func TestImportForkRefused(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "origin.db", 300)
	mdb := filepath.Join(dir, "mirror.db")
	sumd(t, "mirror", "import", "-mirror", mdb, "-origin-key", vkey, exportPrimary(t, db, key, filepath.Join(dir, "origin.bundle")))

	// Another history under the same key: an old backup restored, say.
	fork := filepath.Join(dir, "fork.db")
	grow := func(first, n int) {
		var buf bytes.Buffer
		for _, r := range syntheticRecords(first, n) {
			buf.Write(r.Text())
		}
		sumd(t, "add", "-create", "-db", fork, "-key", key, "-gosum", writeFile(t, filepath.Join(dir, fmt.Sprintf("fork%d.sum", first)), buf.Bytes()))
	}
	grow(0, 150) // a common prefix
	var bundles []string
	for _, step := range []struct {
		name  string
		first int
		n     int
		since int64
	}{
		{"smaller", 10_000, 50, 0},
		{"same size", 10_050, 100, 0},
		{"larger", 10_150, 100, 0},
		{"larger, from inside the mirror's tree", 10_250, 0, 200},
	} {
		if step.n > 0 {
			grow(step.first, step.n)
		}
		bundles = append(bundles, exportPrimarySince(t, fork, key, filepath.Join(dir, fmt.Sprintf("fork-%d.bundle", len(bundles))), step.since))
	}
	head := storedHead(t, mdb)
	before, err := os.ReadFile(mdb)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bundles {
		out, errOut, err := sumdRun(t, "mirror", "import", "-mirror", mdb, b)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("bundle %d: import = %v, want a non-zero exit status\n%s%s", i, err, out, errOut)
		}
		for _, want := range []string{"SECURITY", "hint: nothing was stored", "find out where it was made"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("bundle %d: the refusal does not say %q:\n%s", i, want, errOut)
			}
		}
		if got := storedHead(t, mdb); !bytes.Equal(got, head) {
			t.Errorf("bundle %d: the mirror's head moved:\n%s", i, got)
		}
		if after, _ := os.ReadFile(mdb); !bytes.Equal(after, before) {
			t.Errorf("bundle %d: refused, but the mirror's file changed", i)
		}
	}
}

// exportPrimarySince writes a bundle of the log db from tree since to its
// head (a primary's own export) to NAME.
func exportPrimarySince(t *testing.T, db, key, name string, since int64) string {
	t.Helper()
	k, err := readKeys(config.Database{Key: key}, "export")
	if err != nil {
		t.Fatal(err)
	}
	l, err := itlog.Open(db, itlog.Options{Keys: k, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var b bytes.Buffer
	if _, err := mirror.Export(context.Background(), l, &b, since); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, name, b.Bytes())
}
