package seed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/regfile"
	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/tlog"
)

const (
	hashA = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	hashB = "h1:Ecm3bQzABmxvvAZb9E2gIS5T8SUqmmlBVHRj2vYSMC4="
	hashC = "h1:VlbKKnNfV8bJzeqoa4cOKqO6bYr3WgKZxO8Z16+hsOM="
)

func write(t *testing.T, dir, name string, lines ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReadPairs pairs the lines of two files: a version complete in one
// file, one whose lines are split over two files, repeats, a CRLF line, and
// versions with only one line, each kept with the place it is at.
func TestReadPairs(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a/go.sum",
		"example.com/a v1.0.0 "+hashA,
		"example.com/a v1.0.0/go.mod "+hashB,
		"",
		"example.com/modonly v1.1.0/go.mod "+hashB,
		"example.com/split v0.1.0/go.mod "+hashA+"\r",
	)
	b := write(t, dir, "b/go.sum",
		"example.com/a v1.0.0 "+hashA, // the same line again: fine
		"example.com/split v0.1.0 "+hashC,
		"example.com/ziponly v2.0.0+incompatible "+hashC,
	)
	s, err := Read([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	wantRecs := []gosum.Record{{Path: "example.com/a", Version: "v1.0.0", Hash: hashA, GoMod: hashB}, {Path: "example.com/split", Version: "v0.1.0", Hash: hashC, GoMod: hashA}}
	if !slices.Equal(s.Records, wantRecs) {
		t.Errorf("Records = %v\nwant %v", s.Records, wantRecs)
	}
	wantInc := []Incomplete{
		{module.Version{Path: "example.com/modonly", Version: "v1.1.0"}, true, hashB, Pos{a, 4}},
		{module.Version{Path: "example.com/ziponly", Version: "v2.0.0+incompatible"}, false, hashC, Pos{b, 3}},
	}
	if !slices.Equal(s.Incomplete, wantInc) {
		t.Errorf("Incomplete = %v\nwant %v", s.Incomplete, wantInc)
	}
	if s.Lines != 7 {
		t.Errorf("Lines = %d, want 7", s.Lines)
	}
	if got, want := s.Incomplete[0].Describe(), a+":4: example.com/modonly@v1.1.0 has only a go.mod line (no zip hash)"; got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
}

// TestReadRefuses checks what stops an import: a malformed line and two
// hashes for one line, in one file or in two, each named by file and line.
func TestReadRefuses(t *testing.T) {
	dir := t.TempDir()
	ok := write(t, dir, "ok.sum", "example.com/a v1.0.0 "+hashA, "example.com/a v1.0.0/go.mod "+hashB)
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"malformed", []string{"example.com/b v1.0.0 " + hashA, "not a go.sum line"}, ":2: malformed go.sum line"},
		{"noncanonical", []string{"example.com/b v1.0 " + hashA}, ":1: example.com/b@v1.0: version is not canonical"},
		{"two hashes in one file", []string{"example.com/b v1.0.0 " + hashA, "example.com/b v1.0.0 " + hashB}, ":2: example.com/b v1.0.0 has hash " + hashB + ", but "},
		{"two hashes in two files", []string{"example.com/a v1.0.0/go.mod " + hashC}, ":1: example.com/a v1.0.0/go.mod has hash " + hashC + ", but " + ok + ":2 says " + hashB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := write(t, t.TempDir(), "go.sum", tc.lines...)
			_, err := Read([]string{ok, bad})
			if err == nil || !strings.Contains(err.Error(), bad+tc.want) {
				t.Errorf("Read = %v, want error containing %q", err, bad+tc.want)
			}
		})
	}
}

// TestOwnGoSum reads sumd's own go.sum, a real one: it has a
// +incompatible version with only its zip line and many versions with only
// their go.mod line, and every other version becomes a record.
func TestOwnGoSum(t *testing.T) {
	file := filepath.Join("..", "..", "go.sum")
	s, err := Read([]string{file})
	if err != nil {
		t.Fatal(err)
	}
	zips, mods := map[string]bool{}, map[string]bool{}
	data, _ := os.ReadFile(file)
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if v, ok := strings.CutSuffix(f[1], "/go.mod"); ok {
			mods[f[0]+"@"+v] = true
		} else {
			zips[f[0]+"@"+f[1]] = true
		}
	}
	var both, modOnly, zipOnly int
	for k := range zips {
		if mods[k] {
			both++
		} else {
			zipOnly++
		}
	}
	modOnly = len(mods) - both
	var gotMod, gotZip int
	for _, inc := range s.Incomplete {
		if inc.GoMod {
			gotMod++
		} else {
			gotZip++
		}
	}
	if len(s.Records) != both || gotMod != modOnly || gotZip != zipOnly || zipOnly == 0 || modOnly == 0 {
		t.Errorf("%d records, %d go.mod-only, %d zip-only; want %d, %d, %d (and some of each)", len(s.Records), gotMod, gotZip, both, modOnly, zipOnly)
	}
	azure := slices.IndexFunc(s.Incomplete, func(inc Incomplete) bool { return inc.Path == "github.com/Azure/azure-sdk-for-go" })
	if azure < 0 || s.Incomplete[azure].GoMod || !strings.HasSuffix(s.Incomplete[azure].Version.Version, "+incompatible") {
		t.Errorf("the zip-only github.com/Azure/azure-sdk-for-go +incompatible version is not an incomplete zip line: %v", s.Incomplete)
	}
}

// TestFiles walks a monorepo for its go.sum files, skipping what the go
// command skips, and takes named files as they are.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"go.sum", "svc/a/go.sum", "svc/b/go.sum", "svc/b/testdata/go.sum", "vendor/x/go.sum", ".git/go.sum", "_old/go.sum", "svc/a/other.sum"} {
		write(t, dir, name, "example.com/a v1.0.0 "+hashA)
	}
	extra := filepath.Join(dir, "svc/a/other.sum")
	got, err := Files([]string{dir, extra, filepath.Join(dir, "svc", "a", "go.sum")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "go.sum"), filepath.Join(dir, "svc/a/go.sum"), filepath.Join(dir, "svc/b/go.sum"), extra}
	if !slices.Equal(got, want) {
		t.Errorf("Files = %q\nwant %q", got, want)
	}
	if _, err := Files([]string{filepath.Join(dir, "nope")}); err == nil {
		t.Error("Files of a missing path succeeded")
	}
	empty := t.TempDir()
	if _, err := Files([]string{empty}); err == nil || !strings.Contains(err.Error(), "holds no go.sum file") {
		t.Errorf("Files of a directory without go.sum = %v, want an error", err)
	}
}

// TestComplete completes incomplete versions from a fetcher: a match is a
// record, another hash or a fetch failure is a failure, in input order.
func TestComplete(t *testing.T) {
	v := func(p string) module.Version { return module.Version{Path: p, Version: "v1.0.0"} }
	served := map[string]gosum.Record{
		"example.com/ok":       {Path: "example.com/ok", Version: "v1.0.0", Hash: hashA, GoMod: hashB},
		"example.com/zip":      {Path: "example.com/zip", Version: "v1.0.0", Hash: hashC, GoMod: hashB},
		"example.com/modother": {Path: "example.com/modother", Version: "v1.0.0", Hash: hashA, GoMod: hashC},
	}
	fetch := func(_ context.Context, m module.Version) (gosum.Record, error) {
		if r, ok := served[m.Path]; ok {
			return r, nil
		}
		return gosum.Record{}, errors.New("410 Gone")
	}
	incs := []Incomplete{
		{v("example.com/ok"), true, hashB, Pos{"go.sum", 1}},
		{v("example.com/modother"), true, hashB, Pos{"go.sum", 2}},
		{v("example.com/gone"), true, hashB, Pos{"go.sum", 3}},
		{v("example.com/zip"), false, hashC, Pos{"go.sum", 4}},
	}
	recs, failed, err := Complete(context.Background(), fetch, incs, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []gosum.Record{served["example.com/ok"], served["example.com/zip"]}; !slices.Equal(recs, want) {
		t.Errorf("records %v, want %v", recs, want)
	}
	if len(failed) != 2 || failed[0].Path != "example.com/modother" || !errors.Is(failed[0].Err, ErrHashMismatch) ||
		failed[1].Path != "example.com/gone" || failed[1].Err.Error() != "410 Gone" {
		t.Errorf("failures %v, want modother (hash mismatch) and gone", failed)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := Complete(ctx, fetch, incs, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Complete after cancel = %v, want context.Canceled", err)
	}
}

// FuzzRead checks that the go.sum reader never panics, that what it pairs
// into records are records the log would accept, and that sorting through
// temporary files (a memory budget of a few lines) reads exactly what
// sorting in memory does.
func FuzzRead(f *testing.F) {
	f.Add([]byte("example.com/a v1.0.0 " + hashA + "\nexample.com/a v1.0.0/go.mod " + hashB + "\n"))
	f.Add([]byte("example.com/a v1.0.0/go.mod " + hashB + "\r\n\n"))
	f.Add([]byte("example.com/b v1.0.0 " + hashA + "\nexample.com/a v1.0.0/go.mod " + hashB + "\nexample.com/b v1.0.0/go.mod " + hashC + "\nexample.com/a v1.0.0 " + hashC + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), "go.sum")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		mem, err := scanAll(file, 1<<30)
		disk, derr := scanAll(file, 1)
		if (err == nil) != (derr == nil) || err != nil && err.Error() != derr.Error() {
			t.Fatalf("in memory: %v; through disk: %v", err, derr)
		}
		if err != nil {
			return
		}
		if !slices.Equal(mem, disk) {
			t.Fatalf("in memory:\n%q\nthrough disk:\n%q", mem, disk)
		}
		for _, line := range mem {
			if rec, ok := strings.CutPrefix(line, "record "); ok {
				if _, err := gosum.Parse([]byte(rec)); err != nil {
					t.Fatalf("Read paired a record Parse refuses: %v", err)
				}
			}
		}
	})
}

// FuzzReadMaxFileSize checks Options.MaxFileSize (Read's gosum.MaxFileSize,
// scaled down): a file within it reads exactly as with no limit, and one
// over it is refused, saying it is larger than the limit unless the read
// stopped first at an error reading with no limit gives too.
func FuzzReadMaxFileSize(f *testing.F) {
	lines := []byte("example.com/a v1.0.0 " + hashA + "\nexample.com/a v1.0.0/go.mod " + hashB + "\n")
	f.Add(lines, uint16(len(lines)))
	f.Add(lines, uint16(len(lines)-1))
	f.Add(lines, uint16(0))
	f.Add([]byte("garbage\n"+string(lines)), uint16(10))
	f.Add([]byte(strings.Repeat(" ", 300)+"\n"), uint16(299))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		file := filepath.Join(t.TempDir(), "go.sum")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		max := int64(limit) + 1 // 0 is no limit
		free, ferr := scanAll(file, 1<<30)
		capped, err := scanFile(file, Options{TempDir: filepath.Dir(file), MemoryBytes: 1 << 30, MaxFileSize: max})
		if int64(len(data)) <= max {
			if (err == nil) != (ferr == nil) || err != nil && err.Error() != ferr.Error() || !slices.Equal(free, capped) {
				t.Fatalf("a file of %d bytes within a limit of %d: %q, %v; with no limit: %q, %v", len(data), max, capped, err, free, ferr)
			}
			return
		}
		switch {
		case err == nil:
			t.Fatalf("a file of %d bytes over a limit of %d was read: %q", len(data), max, capped)
		case strings.Contains(err.Error(), fmt.Sprintf("larger than %d bytes", max)):
		case ferr == nil || err.Error() != ferr.Error():
			t.Fatalf("a file of %d bytes over a limit of %d: %v, not its size nor the error with no limit (%v)", len(data), max, err, ferr)
		}
	})
}

// scanAll sorts file with a memory budget and returns what Scan reads.
func scanAll(file string, budget int) ([]string, error) {
	return scanFile(file, Options{TempDir: filepath.Dir(file), MemoryBytes: budget})
}

// scanFile sorts file with opts and returns what Scan reads.
func scanFile(file string, opts Options) ([]string, error) {
	s, err := Sort(context.Background(), []string{file}, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []string
	err = s.Scan(func(r gosum.Record, at Pos) error {
		out = append(out, "record "+string(r.Text()), at.String())
		return nil
	}, func(inc Incomplete) error {
		out = append(out, inc.Describe())
		return nil
	})
	return out, err
}

// TestFilesRefusesFIFO: a named pipe given as a go.sum file is refused,
// naming it, before anything opens it (opening one without a writer
// blocks for ever).
func TestFilesRefusesFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "go.sum")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Files([]string{fifo})
	if err == nil || !strings.Contains(err.Error(), fifo) || !strings.Contains(err.Error(), "named pipe") {
		t.Errorf("Files of a FIFO = %v, want an error naming it as a named pipe", err)
	}
}

// TestSortCanceled: Sort stops on its context, within the file it is
// reading, and leaves no run behind.
func TestSortCanceled(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 50000 {
		lines = append(lines, fmt.Sprintf("example.com/m%d v1.0.0 %s", i, hashA))
	}
	file := write(t, t.TempDir(), "go.sum", lines...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := Sort(ctx, []string{file}, Options{TempDir: dir, MemoryBytes: 1000})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Sort with a canceled context = %v, %v; want context.Canceled", s, err)
	}
	// Canceled while reading the one file: only a check between its lines
	// sees it.
	_, err = Sort(&cancelAfter{Context: context.Background(), n: 1}, []string{file}, Options{TempDir: dir, MemoryBytes: 1000})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Sort canceled while reading = %v, want context.Canceled", err)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("a canceled Sort left %d runs in %s", len(left), dir)
	}
}

// cancelAfter is a context whose Err is nil n times, then Canceled.
type cancelAfter struct {
	context.Context
	n int
}

func (c *cancelAfter) Err() error {
	if c.n--; c.n >= 0 {
		return nil
	}
	return context.Canceled
}

// TestScanClosesBadRun: a Scan that fails on the first entry of a run
// closes that run's file (it was left open, one descriptor lost to every
// failed Scan of a long-running process).
func TestScanClosesBadRun(t *testing.T) {
	var lines []string
	for i := range 100 {
		lines = append(lines, fmt.Sprintf("example.com/m%d v1.0.0 %s", i, hashA))
	}
	s, err := Sort(context.Background(), []string{write(t, t.TempDir(), "go.sum", lines...)}, Options{TempDir: t.TempDir(), MemoryBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.runs) == 0 {
		t.Fatal("Sort wrote no run: the test needs one")
	}
	// A key length, then end of file: the first entry cannot be read.
	if err := os.WriteFile(s.runs[0], []byte{10, 'e'}, 0o600); err != nil {
		t.Fatal(err)
	}
	before := openFiles(t)
	for range 5 {
		err := s.Scan(func(gosum.Record, Pos) error { return nil }, func(Incomplete) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "failed to read a temporary file for sorting") {
			t.Fatalf("Scan of a truncated run = %v, want it to fail reading the run", err)
		}
	}
	if after := openFiles(t); after != before {
		t.Errorf("5 failed Scans left %d files open, want 0", after-before)
	}
}

// openFiles counts this process's open file descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	testenv.Need(t, "/proc/self/fd (Linux) to count open files", err)
	return len(fds)
}

// TestSortBufferBudget: the sort's buffer, its slice and the keys, stays
// within Options.MemoryBytes: it was preallocated at MemoryBytes/90
// entries of 96 bytes each, more than the budget before any key.
func TestSortBufferBudget(t *testing.T) {
	var lines []string
	for i := range 100_000 {
		lines = append(lines, fmt.Sprintf("example.com/m%d v1.0.0 %s", i, hashA))
	}
	const budget = 4 << 20
	s, err := Sort(context.Background(), []string{write(t, t.TempDir(), "go.sum", lines...)}, Options{TempDir: t.TempDir(), MemoryBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := s.mems[0]
	keys := 0
	for _, e := range buf {
		keys += len(e.key)
	}
	if used := cap(buf)*int(unsafe.Sizeof(entry{})) + keys; used > budget || len(s.runs) == 0 {
		t.Errorf("the sort buffer holds %d bytes (%d runs written), want at most MemoryBytes, %d", used, len(s.runs), budget)
	}
}

// TestScanDropsRepeats: Scan keeps nothing of a line repeated with the
// same hash (it kept every repeat of a version in memory: 2M copies of
// one version's lines took 284 MB), and still finds a repeat with another
// hash, however many agreeing ones came before.
func TestScanDropsRepeats(t *testing.T) {
	var lines []string
	for range 50_000 {
		lines = append(lines, "example.com/m v1.0.0 "+hashA, "example.com/m v1.0.0/go.mod "+hashB)
	}
	s, err := Sort(context.Background(), []string{write(t, t.TempDir(), "go.sum", lines...)}, Options{TempDir: t.TempDir(), MemoryBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := 0
	err = s.Scan(func(gosum.Record, Pos) error { n++; return nil }, func(Incomplete) error { return nil })
	runtime.ReadMemStats(&after)
	if err != nil || n != 1 {
		t.Fatalf("Scan of one version repeated = %d records, %v; want 1", n, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("Scan of 50,000 repeats of one version allocated %d bytes, want under 1 MiB", alloc)
	}

	conflicting := write(t, t.TempDir(), "go.sum", append(lines, "example.com/m v1.0.0/go.mod "+hashC)...)
	s2, err := Sort(context.Background(), []string{conflicting}, Options{TempDir: t.TempDir(), MemoryBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	err = s2.Scan(func(gosum.Record, Pos) error { return nil }, func(Incomplete) error { return nil })
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.First.Line != 2 || ce.Then.Line != 100_001 || ce.Hashes != [2]string{hashB, hashC} {
		t.Errorf("Scan of repeats then another hash = %v, want the conflict of lines 2 and 100001", err)
	}
}

// emptyGoMod is the hash of a go.mod of zero bytes, which old go commands
// wrote as the go.mod line of non-modules and every go command since drops.
const emptyGoMod = "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="

// TestReadDropsEmptyGoMod: a line with the hash of an empty go.mod is
// dropped and counted, as the go command drops it (cmd/go's readGoSum): it
// never becomes the go.mod hash of a record, and it contradicts no file
// holding the real go.mod line.
func TestReadDropsEmptyGoMod(t *testing.T) {
	dir := t.TempDir()
	old := write(t, dir, "old/go.sum", "github.com/old/lib v1.0.0 "+hashA, "github.com/old/lib v1.0.0/go.mod "+emptyGoMod)
	s, err := Read([]string{old})
	if err != nil {
		t.Fatal(err)
	}
	want := []Incomplete{{module.Version{Path: "github.com/old/lib", Version: "v1.0.0"}, false, hashA, Pos{old, 1}}}
	if len(s.Records) != 0 || !slices.Equal(s.Incomplete, want) || s.Lines != 1 || s.Ignored != 1 {
		t.Errorf("Read = records %v, incomplete %v, %d lines, %d ignored; want no record, %v, 1 line, 1 ignored", s.Records, s.Incomplete, s.Lines, s.Ignored, want)
	}

	fixed := write(t, dir, "new/go.sum", "github.com/old/lib v1.0.0 "+hashA, "github.com/old/lib v1.0.0/go.mod "+hashB)
	s, err = Read([]string{old, fixed})
	wantRec := []gosum.Record{{Path: "github.com/old/lib", Version: "v1.0.0", Hash: hashA, GoMod: hashB}}
	if err != nil || !slices.Equal(s.Records, wantRec) || len(s.Incomplete) != 0 {
		t.Errorf("Read with the real go.mod line in another file = %v, %v; want %v", s, err, wantRec)
	}
}

// TestReadRefusesOversizeRecord: two lines each under gosum.MaxRecordSize
// can pair into a record over it, which no log may hold: the version is
// refused as a LineError at its first line, saying the size and the limit.
func TestReadRefusesOversizeRecord(t *testing.T) {
	dir := t.TempDir()
	long := "example.com/" + strings.Repeat("a", 1000)
	f := write(t, dir, "go.sum", "example.com/ok v1.0.0 "+hashA, long+" v1.0.0 "+hashA, long+" v1.0.0/go.mod "+hashB)
	_, err := Read([]string{f})
	var le *LineError
	if !errors.As(err, &le) || le.At != (Pos{f, 2}) || !strings.Contains(err.Error(), "more than the limit of 2048") {
		t.Errorf("Read of a version whose lines pair into a record of over %d bytes = %v, want a LineError at line 2 saying the limit", gosum.MaxRecordSize, err)
	}
}

// TestReadRefusesOversizeOneLine: a version with one go.sum line whose
// record would be over gosum.MaxRecordSize can never be recorded, whatever
// its other line: it is refused as a LineError at its line, as a complete
// one is. Listed as incomplete, it was sent to the log as a probe, which
// sumd add -server's admin API refused with a 400 naming the probe's line in
// its request, failing the run, where a local run listed it and succeeded.
func TestReadRefusesOversizeOneLine(t *testing.T) {
	dir := t.TempDir()
	long := "example.com/" + strings.Repeat("a", 1100)
	for _, line := range []string{long + " v1.0.0/go.mod " + hashB, long + " v1.0.0 " + hashA} {
		f := write(t, dir, "go.sum", "example.com/ok v1.0.0 "+hashA, "example.com/ok v1.0.0/go.mod "+hashB, line)
		s, err := Read([]string{f})
		if s == nil {
			s = &Set{}
		}
		var le *LineError
		if !errors.As(err, &le) || le.At != (Pos{f, 3}) || !strings.Contains(err.Error(), "more than the limit of 2048") {
			t.Errorf("Read of a one-line version whose record would be over %d bytes = %d records, %d incomplete, %v; want a LineError at line 3 saying the limit", gosum.MaxRecordSize, len(s.Records), len(s.Incomplete), err)
		}
	}
}

// TestReadLinesAsGoCommand: go.sum lines are read as the go command reads
// them (strings.Fields): tabs and runs of spaces separate the fields, and
// a line of white space only is blank, not a malformed line.
func TestReadLinesAsGoCommand(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "go.sum", "github.com/a/b\tv1.0.0  "+hashA, " \t", "  github.com/a/b v1.0.0/go.mod\t"+hashB+" \r")
	s, err := Read([]string{f})
	want := []gosum.Record{{Path: "github.com/a/b", Version: "v1.0.0", Hash: hashA, GoMod: hashB}}
	if err != nil || !slices.Equal(s.Records, want) || s.Lines != 2 {
		t.Errorf("Read of lines split by tabs and spaces = %+v, %v; want %v from 2 lines", s, err, want)
	}
}

// TestDedupeLinear: dropping the repeats of the files found costs in
// proportion to their number. It compared each file with all kept before,
// cleaning both each time: a directory of 100,000 go.sum files (a corpus
// of repositories) took minutes before reading one. Measured in the
// allocations of cleaning names given unclean ("./d/go.sum").
func TestDedupeLinear(t *testing.T) {
	const n = 2000
	files := make([]string, n)
	for i := range files {
		files[i] = fmt.Sprintf("./d%d/go.sum", i)
	}
	var got []string
	allocs := testing.AllocsPerRun(1, func() { got = dedupe(append(files, "d7/./go.sum")) })
	if len(got) != n || got[7] != files[7] {
		t.Fatalf("dedupe kept %d files, want %d, the first of each", len(got), n)
	}
	if allocs > 10*n {
		t.Errorf("dedupe of %d files: %v allocations, want about one per file", n, allocs)
	}
}

// TestSortRefusesNonRegular: Sort opens each file as a regular file or
// not at all. Files checks the names it returns, but a name may be
// another file by the time Sort opens it: a named pipe put there would
// block sumd add for ever, and a device never end. /dev/null stands in for
// them here, as it ends.
func TestSortRefusesNonRegular(t *testing.T) {
	if _, err := os.Stat(os.DevNull); err != nil || runtime.GOOS == "windows" {
		testenv.Need(t, os.DevNull+" as a device", fmt.Errorf("%v (%s)", err, runtime.GOOS))
	}
	_, err := Sort(context.Background(), []string{os.DevNull}, Options{TempDir: t.TempDir()})
	if !errors.Is(err, regfile.ErrNotRegular) {
		t.Errorf("Sort of %s = %v, want it refused as not a regular file", os.DevNull, err)
	}
}

// TestSortKeepsFloor: the sort's runs keep Options.MinFree free on the
// file system of TempDir, as the zips sumd writes there do: a run that
// would go under it is refused with tlog.ErrLowDisk, and no run is left.
// They filled it to the last byte, and TempDir is by default beside the
// database (or $TMPDIR, often a running server's disk too), where a full
// disk fails a commit half-way and stops the log.
func TestSortKeepsFloor(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 1000 {
		lines = append(lines, fmt.Sprintf("example.com/m%d v1.0.0 %s", i, hashA))
	}
	file := write(t, t.TempDir(), "go.sum", lines...)
	free := int64(tlog.DefaultMinFree) // exactly the floor: no room for a run
	defer func(f func(string) (int64, bool)) { freeSpace = f }(freeSpace)
	freeSpace = func(string) (int64, bool) { return free, true }
	s, err := Sort(context.Background(), []string{file}, Options{TempDir: dir, MemoryBytes: 1000})
	if !errors.Is(err, tlog.ErrLowDisk) {
		t.Fatalf("Sort with no room above the floor: %v; want tlog.ErrLowDisk", err)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("a Sort refused for disk space left %d runs in %s", len(left), dir)
	}
	// No floor: the same sort goes on.
	s, err = Sort(context.Background(), []string{file}, Options{TempDir: dir, MemoryBytes: 1000, MinFree: -1})
	if err != nil {
		t.Fatalf("Sort without a floor: %v", err)
	}
	s.Close()
}

// TestReadCapsFileSize: Read holds what it reads in memory (sumd mirror
// -modules reads its go.sum files with it at every round), so a go.sum
// file over gosum.MaxFileSize is refused, as sumd verify -gosum refuses
// it, before it can take the memory: one of that size is accepted, one
// byte more is not. The files are lines of white space, blank to the go
// command, so that reading them costs no parsing.
func TestReadCapsFileSize(t *testing.T) {
	f := filepath.Join(t.TempDir(), "go.sum")
	line := []byte(strings.Repeat(" ", 1023) + "\n")
	text := bytes.Repeat(line, gosum.MaxFileSize/len(line))
	if err := os.WriteFile(f, text, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read([]string{f}); err != nil {
		t.Fatalf("Read of a go.sum file of exactly %d bytes: %v", gosum.MaxFileSize, err)
	}
	if err := os.WriteFile(f, append(text, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Read([]string{f}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Read of a go.sum file of %d bytes = %+v, %v; want an error saying it is larger than %d", gosum.MaxFileSize+1, s, err, gosum.MaxFileSize)
	}
}
