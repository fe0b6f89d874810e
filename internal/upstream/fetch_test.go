package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"

	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/regfile"
	"github.com/sumd-project/sumd/internal/testnet"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestFetchHashes checks that a fetched record holds the hashes modhash
// computes on the proxy's own files, over HTTP and from a file:// tree,
// for escaped paths, +incompatible and a go.mod-less module.
func TestFetchHashes(t *testing.T) {
	mods := []testproxy.Module{
		goodModule("example.com/Upper/m", "v1.0.0-RC.1"),
		{Path: "example.com/old", Version: "v2.0.0+incompatible", Files: map[string]string{"old.go": "package old\n"}},
		goodModule("example.com/m/v2", "v2.1.0"),
	}
	p := newProxy(t, mods...)
	fileURL, err := testproxy.Build(p.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, list := range []string{p.url, fileURL} {
		f := newFetcher(t, list, FetcherOptions{})
		for _, tm := range mods {
			m := mv(tm.Path, tm.Version)
			rec, err := f.Fetch(context.Background(), m)
			if err != nil {
				t.Fatalf("%s: Fetch(%s): %v", list, m, err)
			}
			want := wantHashes(t, p.dir, m)
			if rec.Path != m.Path || rec.Version != m.Version || rec.Hash != want.Hash || rec.GoMod != want.GoMod {
				t.Errorf("%s: Fetch(%s) = %+v, want hashes %+v", list, m, rec, want)
			}
		}
	}
}

// TestFetchZipSizes: from an HTTP source, a zip of up to memoryZip bytes
// is hashed in memory, without a temporary file (so without a temporary
// directory: it need not exist), and a larger one through a temporary file
// that is gone once it is hashed; both get the hash the go command
// computes from the zip.
func TestFetchZipSizes(t *testing.T) {
	small, large := goodModule("example.com/m", "v1.0.0"), largeModule("example.com/large", "v1.0.0")
	p := newProxy(t, small, large)
	missing := filepath.Join(t.TempDir(), "missing")
	tmp := t.TempDir()
	for _, tt := range []struct {
		mod   testproxy.Module
		dir   string
		files int // temporary files created
	}{
		{small, missing, 0},
		{small, tmp, 0},
		{large, tmp, 1},
	} {
		m := mv(tt.mod.Path, tt.mod.Version)
		zipPath := testproxy.ZipPath(p.dir, m)
		fi, err := os.Stat(zipPath)
		if err != nil {
			t.Fatal(err)
		}
		if isLarge := fi.Size() > memoryZip; isLarge != (tt.files == 1) {
			t.Fatalf("%s: zip of %d bytes, memoryZip %d: the test needs one of each side", m, fi.Size(), memoryZip)
		}
		f := newFetcher(t, p.url, FetcherOptions{TempDir: tt.dir})
		created := 0
		create := f.createTemp
		f.createTemp = func(dir string) (tempFile, error) {
			created++
			return create(dir)
		}
		rec, err := f.Fetch(context.Background(), m)
		if err != nil {
			t.Fatalf("Fetch(%s) with -tmp-dir %s: %v", m, tt.dir, err)
		}
		want, err := dirhash.HashZip(zipPath, dirhash.Hash1)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Hash != want {
			t.Errorf("Fetch(%s) recorded %s, want %s", m, rec.Hash, want)
		}
		if created != tt.files {
			t.Errorf("Fetch(%s) created %d temporary files, want %d", m, created, tt.files)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("Fetch(%s) left %d files in the temporary directory", m, len(left))
		}
	}
}

// TestZipWriterLimit: a zip of exactly memoryZip bytes stays in memory;
// one byte more and the temporary file gets all of it, in order.
func TestZipWriterLimit(t *testing.T) {
	data := make([]byte, memoryZip+1)
	rand.NewChaCha8([32]byte{1}).Read(data)
	dir := t.TempDir()
	created := 0
	zw := &zipWriter{dir: dir, limit: memoryZip, create: func(dir string) (tempFile, error) {
		created++
		return os.CreateTemp(dir, "zip-*")
	}}
	for _, part := range [][]byte{data[:1000], data[1000:memoryZip]} {
		if n, err := zw.Write(part); n != len(part) || err != nil {
			t.Fatalf("Write of %d bytes = %d, %v", len(part), n, err)
		}
	}
	if created != 0 || !bytes.Equal(zw.mem, data[:memoryZip]) {
		t.Fatalf("after memoryZip bytes: %d files created, %d bytes in memory; want none and all", created, len(zw.mem))
	}
	if n, err := zw.Write(data[memoryZip:]); n != 1 || err != nil {
		t.Fatalf("Write of the byte past memoryZip = %d, %v", n, err)
	}
	if created != 1 || zw.file == nil || zw.mem != nil {
		t.Fatalf("past memoryZip: %d files created, %d bytes still in memory; want one file and none", created, len(zw.mem))
	}
	zw.file.Close()
	if got, err := os.ReadFile(zw.file.Name()); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the temporary file holds %d bytes (%v), want the %d written, in order", len(got), err, len(data))
	}
}

// TestFetchInvalid serves versions the go command would refuse, over HTTP
// and from a file:// tree: each is a 410 "not found" naming the reason,
// and no temporary file is left.
func TestFetchInvalid(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	const pre = "example.com/m@v1.0.0/"
	goMod := "module example.com/m\n\ngo 1.21\n" // as goodModule's
	noise := make([]byte, 4096)                  // incompressible
	rand.NewChaCha8([32]byte{}).Read(noise)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		opts  FetcherOptions
		want  string
	}{
		{"path traversal", func(t *testing.T, dir string) {
			writeRawZip(t, dir, m, []string{pre + "go.mod", pre + "../x.go"}, []string{goMod, "package x\n"})
		}, FetcherOptions{}, `malformed file path "../x.go"`},
		{"duplicate names", func(t *testing.T, dir string) {
			writeRawZip(t, dir, m, []string{pre + "go.mod", pre + "a.go", pre + "a.go"}, []string{goMod, "package a\n", "package b\n"})
		}, FetcherOptions{}, `multiple entries for file "a.go"`},
		{"case-fold collision", func(t *testing.T, dir string) {
			writeRawZip(t, dir, m, []string{pre + "go.mod", pre + "a.go", pre + "A.go"}, []string{goMod, "package a\n", "package a\n"})
		}, FetcherOptions{}, `case-insensitive file name collision: "a.go" and "A.go"`},
		{"zip over the limit", func(t *testing.T, dir string) {
			writeRawZip(t, dir, m, []string{pre + "go.mod", pre + "big.go"}, []string{goMod, string(noise)})
		}, FetcherOptions{MaxZipSize: 1024}, "module zip is larger than the limit of 1024 bytes"},
		{"go.mod over the limit", func(t *testing.T, dir string) {
			os.WriteFile(testproxy.ModPath(dir, m), []byte(goMod+strings.Repeat("\n", 200)), 0o644)
		}, FetcherOptions{MaxModSize: 100}, "go.mod file is larger than the limit of 100 bytes"},
		{".mod disagrees with the zip's go.mod", func(t *testing.T, dir string) {
			os.WriteFile(testproxy.ModPath(dir, m), []byte(goMod+"\nrequire example.com/x v1.0.0\n"), 0o644)
		}, FetcherOptions{}, "go.mod differs from the go.mod in the zip"},
		{"go.mod declares another path", func(t *testing.T, dir string) {
			writeRawZip(t, dir, m, []string{pre + "go.mod"}, []string{"module example.com/other\n"})
			os.WriteFile(testproxy.ModPath(dir, m), []byte("module example.com/other\n"), 0o644)
		}, FetcherOptions{}, `go.mod declares module path "example.com/other"`},
		{"more files than modhash hashes", func(t *testing.T, dir string) {
			n := modhash.MaxFiles
			t.Cleanup(func() { modhash.MaxFiles = n })
			modhash.MaxFiles = 3
			writeRawZip(t, dir, m, []string{pre + "go.mod", pre + "a.go", pre + "b.go", pre + "c.go"}, []string{goMod, "package a\n", "package a\n", "package a\n"})
		}, FetcherOptions{}, "the zip holds 4 files, more than sumd hashes (3)"},
		{"empty .mod", func(t *testing.T, dir string) {
			os.WriteFile(testproxy.ModPath(dir, m), nil, 0o644)
		}, FetcherOptions{}, "go.mod differs from the go.mod in the zip"},
		{"thousands of bad entries", func(t *testing.T, dir string) {
			// CheckZip names each of them: 4 MB of reasons, capped.
			var names, bodies []string
			for i := range 1000 {
				names = append(names, fmt.Sprintf("other@v1.0.0/%s/%d.go", strings.Repeat("x", 4000), i))
				bodies = append(bodies, "")
			}
			writeRawZip(t, dir, m, names, bodies)
		}, FetcherOptions{}, "more bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxy(t, goodModule(m.Path, m.Version))
			tt.setup(t, p.dir)
			fileURL, err := testproxy.Build(p.dir, nil) // the same files as a file:// tree
			if err != nil {
				t.Fatal(err)
			}
			for _, list := range []string{p.url, fileURL} {
				tt.opts.TempDir = t.TempDir()
				_, err := newFetcher(t, list, tt.opts).Fetch(context.Background(), m)
				e := asError(t, err)
				prefix := "not found: example.com/m@v1.0.0: invalid module: "
				if e.Kind != KindInvalid || e.HTTPStatus() != http.StatusGone ||
					!strings.HasPrefix(e.Error(), prefix) || !strings.Contains(e.Error(), tt.want) {
					t.Errorf("%s: error %.2000q (kind %v, status %d), want 410 %q…%q", list, e, e.Kind, e.HTTPStatus(), prefix, tt.want)
				}
				c := 0
				if e.Cause != nil {
					c = len(e.Cause.Error())
				}
				if n := len(e.Error()); n > 2<<10 || c > 10<<10 {
					t.Errorf("%s: error of %d bytes, cause of %d: the negative cache and the log would keep them", list, n, c)
				}
				if left, _ := os.ReadDir(tt.opts.TempDir); len(left) != 0 {
					t.Errorf("%s: temporary files left behind: %v", list, left)
				}
			}
		})
	}
}

// TestFetchStatuses checks the classification of upstream failures.
func TestFetchStatuses(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	downURL := "http://" + testnet.RefusingAddr(t)
	slow := newProxy(t, goodModule(m.Path, m.Version))
	slow.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		<-r.Context().Done() // never answers; the client gives up
		return true
	})
	broken := newProxy(t, goodModule(m.Path, m.Version))
	broken.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "database on fire", http.StatusInternalServerError)
		return true
	})
	tests := []struct {
		name   string
		list   string
		kind   Kind
		status int
		want   string
	}{
		{"404", newProxy(t).url, KindGone, 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version: 404 page not found"},
		{"down", downURL, KindUnavailable, 502, "upstream proxy error: example.com/m@v1.0.0: upstream proxy could not be reached"},
		{"slow", slow.url, KindTimeout, 504, "upstream proxy error: example.com/m@v1.0.0: upstream proxy gave no complete answer within 200ms"},
		{"5xx", broken.url, KindUnavailable, 502, "upstream proxy error: example.com/m@v1.0.0: upstream proxy answered 500 Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFetcher(t, tt.list, FetcherOptions{Timeout: 200 * time.Millisecond})
			_, err := f.Fetch(context.Background(), m)
			e := asError(t, err)
			if e.Kind != tt.kind || e.HTTPStatus() != tt.status || e.Error() != tt.want {
				t.Errorf("error %q (kind %v, status %d), want kind %v, %d, %q", e, e.Kind, e.HTTPStatus(), tt.kind, tt.status, tt.want)
			}
			// The operator's detail names the proxy.
			if tt.name != "404" && !strings.Contains(e.Detail(), strings.TrimPrefix(tt.list, "http://")) {
				t.Errorf("detail %q does not name the proxy", e.Detail())
			}
		})
	}
}

// TestFallback checks the "," and "|" semantics: "," moves on only after a
// 404 or 410, "|" after any error, and an error beats a 404 in the result.
func TestFallback(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	good := newProxy(t, goodModule(m.Path, m.Version))
	missing := newProxy(t)
	broken := newProxy(t)
	broken.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	tests := []struct {
		list string
		kind Kind // 0: success
		hits []*proxy
	}{
		{missing.url + "," + good.url, 0, []*proxy{missing, good}},
		{broken.url + "," + good.url, KindUnavailable, []*proxy{broken}},
		{broken.url + "|" + good.url, 0, []*proxy{broken, good}},
		{broken.url + "|" + missing.url, KindUnavailable, []*proxy{broken, missing}},
		{missing.url + "|" + broken.url, KindUnavailable, []*proxy{missing, broken}},
		{missing.url + "," + missing.url, KindGone, []*proxy{missing}},
		{good.url + "," + broken.url, 0, []*proxy{good}},
	}
	for _, tt := range tests {
		before := map[*proxy]int{good: good.total(), missing: missing.total(), broken: broken.total()}
		_, err := newFetcher(t, tt.list, FetcherOptions{}).Fetch(context.Background(), m)
		if got := kindOf(err); got != tt.kind || (tt.kind == 0) != (err == nil) {
			t.Errorf("%s: error %v (kind %v), want kind %v", tt.list, err, got, tt.kind)
		}
		for p, n := range before {
			asked := p.total() > n
			want := false
			for _, h := range tt.hits {
				want = want || h == p
			}
			if asked != want {
				t.Errorf("%s: proxy %s asked = %v, want %v", tt.list, p.url, asked, want)
			}
		}
	}
}

// TestMissingFileTree: a file:// tree whose root is not there (a volume
// not mounted, a directory renamed) or is not a directory lacks every
// file, and every version was gone: a 410 remembered for -negative-ttl,
// and after "," the next source asked as if the tree lacked only that
// version. The tree is down instead: 502, not remembered, the next source
// asked only after "|", and a warning that names the root in the log and
// nowhere in the answer. A tree that is there and lacks the version still
// says it is gone.
func TestMissingFileTree(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	good := newProxy(t, goodModule(m.Path, m.Version))
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	for _, root := range []string{filepath.Join(t.TempDir(), "not-mounted"), notDir} {
		tree := "file://" + filepath.ToSlash(root)
		var logs bytes.Buffer
		f := newFetcher(t, tree, FetcherOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: f, NegativeTTL: time.Hour})
		for range 2 {
			_, err := rec.Lookup(context.Background(), m)
			e := asError(t, err)
			want := "upstream proxy error: example.com/m@v1.0.0: the upstream proxy's file tree is missing"
			if e.Kind != KindUnavailable || e.HTTPStatus() != http.StatusBadGateway || e.Error() != want {
				t.Fatalf("%s: %q (kind %v, status %d); want 502 %q", root, e, e.Kind, e.HTTPStatus(), want)
			}
		}
		if n := rec.neg.len(); n != 0 {
			t.Errorf("%s: negative cache holds %d entries", root, n)
		}
		if s := logs.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, root) {
			t.Errorf("%s: log %q; want a warning naming the root", root, s)
		}
		before := good.total()
		if _, err := newFetcher(t, tree+","+good.url, FetcherOptions{}).Fetch(context.Background(), m); kindOf(err) != KindUnavailable || good.total() != before {
			t.Errorf("%s,: %v, good proxy asked %d times; want KindUnavailable, not asked", root, err, good.total()-before)
		}
		if _, err := newFetcher(t, tree+"|"+good.url, FetcherOptions{}).Fetch(context.Background(), m); err != nil {
			t.Errorf("%s|: %v, want the version from the next source", root, err)
		}
	}
	if _, err := newFetcher(t, "file://"+filepath.ToSlash(t.TempDir()), FetcherOptions{}).Fetch(context.Background(), m); kindOf(err) != KindGone {
		t.Errorf("an empty tree: %v, want KindGone", err)
	}
}

// TestFetchFileInPlace checks that a file:// tree's zip, even one larger
// than memoryZip, is hashed where it is, with no temporary copy (the
// temporary directory does not even exist), while an HTTP source still
// needs one for it; and that a zip that changes while it is hashed is
// refused, not recorded.
func TestFetchFileInPlace(t *testing.T) {
	m, big := mv("example.com/inplace", "v1.0.0"), mv("example.com/big", "v1.0.0")
	p := newProxy(t, goodModule(m.Path, m.Version), largeModule(big.Path, big.Version))
	fileURL, err := testproxy.Build(p.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	noDir := filepath.Join(t.TempDir(), "missing")
	if _, err := newFetcher(t, fileURL, FetcherOptions{TempDir: noDir}).Fetch(context.Background(), big); err != nil {
		t.Errorf("Fetch from a file:// tree without a temporary directory: %v", err)
	}
	if _, err := newFetcher(t, p.url, FetcherOptions{TempDir: noDir}).Fetch(context.Background(), big); err == nil {
		t.Error("Fetch over HTTP of a large zip without a temporary directory succeeded: where did the zip go?")
	}

	zip := testproxy.ZipPath(p.dir, m)
	zf, err := regfile.Open(zip)
	if err != nil {
		t.Fatal(err)
	}
	defer zf.Close()
	if err := unchanged(zf, m); err != nil {
		t.Errorf("unchanged of an unchanged zip: %v", err)
	}
	data, _ := os.ReadFile(zip)
	os.Remove(zip)
	if err := os.WriteFile(zip, data, 0o644); err != nil { // the same bytes, another file
		t.Fatal(err)
	}
	if err := unchanged(zf, m); err != nil {
		t.Errorf("unchanged of a zip whose name now names another file: %v; the open one is unchanged", err)
	}
	zf2, err := regfile.Open(zip)
	if err != nil {
		t.Fatal(err)
	}
	defer zf2.Close()
	if err := os.WriteFile(zip, append(data, 0), 0o644); err != nil { // rewritten in place
		t.Fatal(err)
	}
	if err := unchanged(zf2, m); kindOf(err) != KindUnavailable || strings.Contains(err.Error(), p.dir) {
		t.Errorf("unchanged of a rewritten zip = %v, want a KindUnavailable error that does not name the tree", err)
	}
}

// TestHashInPlace checks how hashing a file:// tree's zip where it lies is
// judged. One written to meanwhile is tried again, whatever hashing said;
// one whose name was given to another file meanwhile is hashed as the file
// that was opened. Any other failure stays the module's. (A zip that
// cannot be opened is the tree's failure, 502: TestLookupErrorsShowNoUpstream.)
func TestHashInPlace(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	p := newProxy(t, goodModule(m.Path, m.Version))
	goMod, err := os.ReadFile(testproxy.ModPath(p.dir, m))
	if err != nil {
		t.Fatal(err)
	}
	f := newFetcher(t, "file:///srv/tree", FetcherOptions{})
	src := f.opts.Sources[0]
	const rel = "example.com/m/@v/v1.0.0.zip"
	ctx := context.Background()
	hash := func(zf *regfile.File) (modhash.Sums, error) {
		return f.hashInPlace(ctx, src, m, rel, zf, goMod)
	}
	open := func(name string) *regfile.File {
		zf, err := regfile.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { zf.Close() })
		return zf
	}
	// Files written an hour ago, so that a rewrite's time differs on a
	// file system of coarse timestamps.
	past := func(name string) string {
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(name, old, old); err != nil {
			t.Fatal(err)
		}
		return name
	}

	good := past(testproxy.ZipPath(p.dir, m))
	want := wantHashes(t, p.dir, m)
	if sums, err := hash(open(good)); err != nil || sums != want {
		t.Errorf("good zip: %+v, %v; want its hashes", sums, err)
	}

	garbage := filepath.Join(t.TempDir(), "v1.0.0.zip")
	if err := os.WriteFile(garbage, []byte("not a zip"), 0o644); err != nil {
		t.Fatal(err)
	}
	past(garbage)
	if _, err := hash(open(garbage)); err == nil || errors.As(err, new(*Error)) {
		t.Errorf("invalid zip: %v; want the hashing's own error, for fetchFrom to call the module invalid", err)
	}

	// The name given to another file after the open: the open one is
	// hashed.
	zf := open(good)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(garbage, good); err != nil {
		t.Fatal(err)
	}
	if sums, err := hash(zf); err != nil || sums != want {
		t.Errorf("good zip renamed over: %+v, %v; want the opened file's hashes", sums, err)
	}
	if err := os.WriteFile(good, data, 0o644); err != nil {
		t.Fatal(err)
	}
	past(good)

	for name, content := range map[string][]byte{"good": data, "invalid": []byte("not a zip")} {
		path := filepath.Join(t.TempDir(), "v1.0.0.zip")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		zf := open(past(path))
		// Rewritten in place, to the same size.
		if err := os.WriteFile(path, bytes.Repeat([]byte("x"), len(content)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := hash(zf)
		e := asError(t, err)
		if e.Kind != KindUnavailable || !strings.Contains(e.Error(), "changed in the upstream proxy's file tree while it was hashed; try again") {
			t.Errorf("%s zip changed: %q (kind %v); want a retry", name, e, e.Kind)
		}
	}
}

// TestZipMemoryBudget: a small zip is held in memory only with its share of
// modhash.MemoryBudget, which it gives back once hashed: with the budget
// spent it goes to a file (here a TempDir that cannot be created, so the
// fetch fails as sumd's own), and once the budget is free it is hashed in
// memory again, leaving the whole budget free after it.
func TestZipMemoryBudget(t *testing.T) {
	small := goodModule("example.com/m", "v1.0.0")
	p := newProxy(t, small)
	m := mv(small.Path, small.Version)
	f := newFetcher(t, p.url, FetcherOptions{TempDir: filepath.Join(t.TempDir(), "missing")})
	all := holdBudget(t, modhash.MemoryBudget)
	_, err := f.Fetch(context.Background(), m)
	if e := asError(t, err); e.Kind != KindLocal {
		t.Fatalf("fetch with the budget spent: %v (kind %v), want a failure to store the zip in the missing TempDir", err, e.Kind)
	}
	all()
	if _, err := f.Fetch(context.Background(), m); err != nil {
		t.Fatalf("fetch with the budget free: %v", err)
	}
	checkBudgetFree(t, modhash.MemoryBudget)
}

// TestFetchIncompatibleV1: the Fetcher hashes a v0/v1 +incompatible
// version, which the go command never makes and sumd never records anew
// (the Recorder refuses it: gosum.CheckNewModule), because sumd verify
// -recheck fetches with it the versions a log already holds, recorded by
// an older sumd or another database.
func TestFetchIncompatibleV1(t *testing.T) {
	tm := testproxy.Module{Path: "example.com/legacy", Version: "v1.0.0+incompatible", Files: map[string]string{"legacy.go": "package legacy\n"}}
	p := newProxy(t, tm)
	m := mv(tm.Path, tm.Version)
	rec, err := newFetcher(t, p.url, FetcherOptions{}).Fetch(context.Background(), m)
	if want := wantHashes(t, p.dir, m); err != nil || rec.Hash != want.Hash || rec.GoMod != want.GoMod {
		t.Errorf("Fetch(%s) = %+v, %v; want hashes %+v", m, rec, err, want)
	}
}

// TestLargeModMemoryBudget: a .mod is held in memory until its version is
// hashed, up to MaxModSize (16 MiB), and first lookups held theirs outside
// any budget, so that -upstream-parallel lookups of versions with large
// go.mod files (which anyone may publish, and make sumd look up) held
// hundreds of MiB at once. One over smallMod now waits for its share of
// modhash.MemoryBudget (TestLargeModShareBySize) and holds it until the
// hash is done; a small one takes nothing.
func TestLargeModMemoryBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := goodModule("example.com/bigmod", "v1.0.0")
		big.Files["go.mod"] += "\n// " + strings.Repeat("x", 100<<10) + "\n"
		small := goodModule("example.com/smallmod", "v1.0.0")
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: newSlowProxy(t, big, small), TempDir: t.TempDir()})
		all := holdBudget(t, modhash.MemoryBudget)
		if _, err := f.Fetch(context.Background(), mv(small.Path, small.Version)); err != nil {
			t.Fatalf("fetch of a small go.mod with the budget spent: %v", err)
		}
		wait, ended, err := fetchUntilBlocked(f, mv(big.Path, big.Version))
		all()
		if ended {
			t.Fatalf("a fetch of a version with a 100 KiB go.mod ended (%v) with the memory budget spent; want it to wait for its share", err)
		}
		if err := wait(); err != nil {
			t.Fatalf("fetch of a large go.mod once the budget is free: %v", err)
		}
		checkBudgetFree(t, modhash.MemoryBudget)
	})
}

// TestLargeModWaitNotUpstreamTimeout: a .mod over smallMod waited for its
// share of the memory budget in the middle of its download, its request
// open and its timeout running, so a wait longer than -upstream-timeout
// (the budget held by other large go.mod files' versions, whose zips take
// a while) failed the fetch as the upstream's timeout ("gave no complete
// answer") though it had answered at once. The wait is now taken with no
// request open, and the .mod downloaded again once the share is held.
func TestLargeModWaitNotUpstreamTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := goodModule("example.com/bigmod", "v1.0.0")
		big.Files["go.mod"] += "\n// " + strings.Repeat("x", 100<<10) + "\n"
		const timeout = 10 * time.Second
		client := &http.Client{Transport: ctxBodies{newSlowProxy(t, big).Transport}}
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: client, TempDir: t.TempDir(), Timeout: timeout})
		all := holdBudget(t, modhash.MemoryBudget)
		wait, ended, err := fetchUntilBlocked(f, mv(big.Path, big.Version))
		time.Sleep(2 * timeout) // the budget held by others that long
		all()
		if !ended {
			err = wait()
		}
		if err != nil {
			t.Fatalf("fetch of a large go.mod that waited %s for the memory budget: %v; want it fetched once the budget is free", 2*timeout, err)
		}
	})
}

// ctxBodies gives its transport's answers bodies that fail once their
// request's context is done, as net/http's do.
type ctxBodies struct{ base http.RoundTripper }

func (c ctxBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil {
		resp.Body = ctxBody{req.Context(), resp.Body}
	}
	return resp, err
}

type ctxBody struct {
	ctx context.Context
	io.ReadCloser
}

func (b ctxBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	return b.ReadCloser.Read(p)
}

// TestLargeModShareBySize: a .mod over smallMod took MaxModSize (16 MiB)
// of the memory budget whatever its size, so a 100 KiB one waited while
// 16 MiB were not free though far less would do. The share is now the
// size the answer announces (Content-Length).
func TestLargeModShareBySize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := goodModule("example.com/bigmod", "v1.0.0")
		big.Files["go.mod"] += "\n// " + strings.Repeat("x", 100<<10) + "\n"
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: newSlowProxy(t, big), TempDir: t.TempDir()})
		most := holdBudget(t, modhash.MemoryBudget-1<<20)
		defer most()
		wait, ended, err := fetchUntilBlocked(f, mv(big.Path, big.Version))
		if !ended {
			most()
			wait()
			t.Fatal("a fetch of a version with a 100 KiB go.mod waited with 1 MiB of the memory budget free; want it to take a share of its size")
		}
		if err != nil {
			t.Fatalf("fetch of a version with a 100 KiB go.mod, 1 MiB of the budget free: %v", err)
		}
		checkBudgetFree(t, 1<<20)
	})
}

// TestLargeModLongerThanAnnounced: the share sized by the answer's
// Content-Length does not let a body longer than announced be held past
// it: the .mod waits for the full share.
func TestLargeModLongerThanAnnounced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := goodModule("example.com/bigmod", "v1.0.0")
		big.Files["go.mod"] += "\n// " + strings.Repeat("x", 200<<10) + "\n"
		client := &http.Client{Transport: shortLength{newSlowProxy(t, big).Transport, 70 << 10}}
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: client, TempDir: t.TempDir()})
		most := holdBudget(t, modhash.MemoryBudget-1<<20)
		wait, ended, err := fetchUntilBlocked(f, mv(big.Path, big.Version))
		most()
		if ended {
			t.Fatalf("a fetch of a 200 KiB go.mod announced as 70 KiB ended (%v) with 1 MiB of the memory budget free; want it to wait for the full share", err)
		}
		if err := wait(); err != nil {
			t.Fatalf("fetch of a go.mod longer than announced once the budget is free: %v", err)
		}
		checkBudgetFree(t, modhash.MemoryBudget)
	})
}

// TestLargeModUnknownSizeGrows: a .mod over smallMod whose answer
// announces no size (no Content-Length) took the full share, MaxModSize
// (16 MiB), while it downloaded, so a few such fetches starved the others,
// and a 200 KiB one waited while 1 MiB was free. Its share now grows with
// its buffer, which doubles as bytes arrive.
func TestLargeModUnknownSizeGrows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := goodModule("example.com/bigmod", "v1.0.0")
		big.Files["go.mod"] += "\n// " + strings.Repeat("x", 200<<10) + "\n"
		client := &http.Client{Transport: shortLength{newSlowProxy(t, big).Transport, -1}}
		f := newFetcher(t, "http://proxy.test", FetcherOptions{HTTPClient: client, TempDir: t.TempDir()})
		most := holdBudget(t, modhash.MemoryBudget-1<<20)
		defer most()
		wait, ended, err := fetchUntilBlocked(f, mv(big.Path, big.Version))
		if !ended {
			most()
			wait()
			t.Fatal("a fetch of a version with a 200 KiB go.mod of unknown size waited with 1 MiB of the memory budget free; want its share to grow with it")
		}
		if err != nil {
			t.Fatalf("fetch of a version with a 200 KiB go.mod of unknown size, 1 MiB of the budget free: %v", err)
		}
		checkBudgetFree(t, 1<<20)
	})
}

// holdBudget holds n bytes of modhash.MemoryBudget, which must be free at
// the start of a test, until the returned release is called (more than
// once is fine: modhash's release is idempotent).
func holdBudget(t *testing.T, n int64) (release func()) {
	t.Helper()
	release, ok := modhash.HoldMemory(n)
	if !ok {
		t.Fatal("the memory budget is not free at the start")
	}
	return release
}

// checkBudgetFree fails the test unless n bytes of modhash.MemoryBudget
// are free, as they are once the fetches gave back their shares.
func checkBudgetFree(t *testing.T, n int64) {
	t.Helper()
	release, ok := modhash.HoldMemory(n)
	if !ok {
		t.Fatal("the fetch did not give back its share of the memory budget")
	}
	release()
}

// fetchUntilBlocked starts fetching m and, run in a synctest bubble, waits
// until the fetch has ended or every goroutine is durably blocked (as one
// waiting for its share of the memory budget is). ended says which, err is
// the ended fetch's answer, and wait gives a still waiting one's.
func fetchUntilBlocked(f *Fetcher, m module.Version) (wait func() error, ended bool, err error) {
	done := make(chan error, 1)
	go func() {
		_, err := f.Fetch(context.Background(), m)
		done <- err
	}()
	synctest.Wait()
	select {
	case err := <-done:
		return nil, true, err
	default:
		return func() error { return <-done }, false, nil
	}
}

// shortLength announces every .mod as n bytes long (-1: no size),
// whatever it is.
type shortLength struct {
	base http.RoundTripper
	n    int64
}

func (s shortLength) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err == nil && strings.HasSuffix(req.URL.Path, ".mod") {
		resp.ContentLength = s.n
	}
	return resp, err
}

// TestFallbackLoggedOncePerOutage: a source followed by "|" that was down
// had every fetch log "upstream proxy failed; trying the next" at warning
// level, thousands of lines a minute under load, while Problems already
// reported the outage. The start of a run of failures is warned of once,
// the rest logged at debug level, and its end once at info level.
func TestFallbackLoggedOncePerOutage(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	broken := newProxy(t, goodModule(m.Path, m.Version))
	broken.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	good := newProxy(t, goodModule(m.Path, m.Version))
	logs := &levelLog{}
	f := newFetcher(t, broken.url+"|"+good.url, FetcherOptions{Logger: slog.New(logs)})
	fetch := func() {
		t.Helper()
		if _, err := f.Fetch(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 {
		fetch()
	}
	if got := logs.count(slog.LevelWarn, "upstream proxy failed"); got != 1 {
		t.Errorf("50 fetches while the first proxy was down logged %d warnings of it; want 1", got)
	}
	if got := logs.count(slog.LevelDebug, "upstream fetch failed"); got != 50 {
		t.Errorf("50 fetches while the first proxy was down logged %d debug records of its failures; want 50", got)
	}
	broken.setHook(nil)
	fetch()
	fetch()
	if got := logs.count(slog.LevelInfo, "upstream proxy answers again"); got != 1 {
		t.Errorf("the first proxy answering again twice logged %d info records of it; want 1", got)
	}
	broken.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	fetch()
	if got := logs.count(slog.LevelWarn, "upstream proxy failed"); got != 2 {
		t.Errorf("a second outage after the first proxy answered again: %d warnings in all; want 2", got)
	}
}

// levelLog is a slog.Handler that keeps the level and message of every
// record.
type levelLog struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *levelLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *levelLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *levelLog) WithGroup(string) slog.Handler            { return l }
func (l *levelLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}

// count counts the records at level whose message starts with msg.
func (l *levelLog) count(level slog.Level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Level == level && strings.HasPrefix(r.Message, msg) {
			n++
		}
	}
	return n
}
