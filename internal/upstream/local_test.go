package upstream

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestStoredZipRemoved: the zip sumd downloaded is removed from -tmp-dir
// before it is hashed (another sumd started on the same directory removed
// it as a crash's leftover). That is sumd's failure, not the module's: 503
// with a text that names no path, not remembered, no other source tried
// after "|", and an Error log that names the file. The zip is larger than
// memoryZip: a smaller one never reaches -tmp-dir.
func TestStoredZipRemoved(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	tmp := t.TempDir()
	first, second := newProxy(t, largeModule(m.Path, m.Version)), newProxy(t, largeModule(m.Path, m.Version))
	var logs bytes.Buffer
	f := newFetcher(t, first.url+"|"+second.url, FetcherOptions{TempDir: tmp})
	create := f.createTemp
	f.createTemp = func(dir string) (tempFile, error) {
		file, err := create(dir)
		removeAll(t, tmp) // as another sumd starting would, while the zip is written
		return file, err
	}
	rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: f, NegativeTTL: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	for i := range 2 {
		_, err := rec.Lookup(context.Background(), m)
		e := asError(t, err)
		if want := "server error: example.com/m@v1.0.0: sumd could not read back the module zip it stored; try again later"; e.Kind != KindLocal || e.HTTPStatus() != http.StatusServiceUnavailable || e.Error() != want {
			t.Fatalf("lookup %d: %q (kind %v, status %d); want 503 %q", i, e, e.Kind, e.HTTPStatus(), want)
		}
		if got := first.count(".zip"); got != i+1 {
			t.Errorf("lookup %d: upstream asked for the zip %d times, want %d: not remembered", i, got, i+1)
		}
	}
	if n := rec.neg.len(); n != 0 {
		t.Errorf("negative cache holds %d entries", n)
	}
	if n := second.total(); n != 0 {
		t.Errorf("the source after | was asked %d times; sumd's own failure is not the first source's", n)
	}
	if s := logs.String(); !strings.Contains(s, "level=ERROR") || !strings.Contains(s, tmp) || !strings.Contains(s, "no such file or directory") {
		t.Errorf("log %q: want an error naming the temporary file and why it failed", s)
	}
}

// removeAll removes the files in dir.
func removeAll(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
	}
	for _, e := range entries {
		os.Remove(filepath.Join(dir, e.Name()))
	}
}

// A fullFile is a temporary file on a full disk: every write fails.
type fullFile struct{ *os.File }

func (f fullFile) Write(p []byte) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

// TestStoreFails: a -tmp-dir that cannot take the zip (full, or missing)
// is sumd's failure, not the upstream's: 503 "sumd cannot store the module
// zip now", not 502; not remembered; no fall-through after "|"; the
// detail, for the log, names the directory and the cause; no file is left.
// The zip is larger than memoryZip: a smaller one never reaches -tmp-dir
// (TestFetchZipSizes).
func TestStoreFails(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	first, second := newProxy(t, largeModule(m.Path, m.Version)), newProxy(t, largeModule(m.Path, m.Version))
	tmp := t.TempDir()
	full := newFetcher(t, first.url+"|"+second.url, FetcherOptions{TempDir: tmp})
	full.createTemp = func(dir string) (tempFile, error) {
		f, err := os.CreateTemp(dir, "sumd-upstream-*.zip")
		return fullFile{f}, err
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tt := range []struct {
		name   string
		f      *Fetcher
		dir    string
		detail string
	}{
		{"full", full, tmp, "no space left on device"},
		{"missing", newFetcher(t, first.url+"|"+second.url, FetcherOptions{TempDir: missing}), missing, "failed to create a temporary file"},
	} {
		rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: tt.f, NegativeTTL: time.Hour})
		for range 2 {
			_, err := rec.Lookup(context.Background(), m)
			e := asError(t, err)
			if want := "server error: example.com/m@v1.0.0: sumd cannot store the module zip now; try again later"; e.Kind != KindLocal || e.HTTPStatus() != http.StatusServiceUnavailable || e.Error() != want {
				t.Fatalf("%s: %q (kind %v, status %d); want 503 %q", tt.name, e, e.Kind, e.HTTPStatus(), want)
			}
			if d := e.Detail(); !strings.Contains(d, "temporary directory "+tt.dir+" (-tmp-dir)") || !strings.Contains(d, tt.detail) {
				t.Errorf("%s: detail %q; want the directory and %q", tt.name, d, tt.detail)
			}
		}
		if n := rec.neg.len(); n != 0 {
			t.Errorf("%s: negative cache holds %d entries", tt.name, n)
		}
		// The server's health shows them (degraded), naming no path.
		if p := rec.Problems(); len(p) != 1 || !strings.Contains(p[0], "could not store or read back module zips in its temporary directory (-tmp-dir) 2 times") || strings.Contains(p[0], tt.dir) {
			t.Errorf("%s: Problems() = %q, want the two failures, no path", tt.name, p)
		}
	}
	if n := second.total(); n != 0 {
		t.Errorf("the source after | was asked %d times; sumd's own failure is not the first source's", n)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("files left in -tmp-dir: %v", entries)
	}
}

// TestLocalProblemsExpire: a failure of the temporary directory is a
// problem for five minutes, then forgotten.
func TestLocalProblemsExpire(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	rec := newRecorder(t, testLog(t), RecorderOptions{Now: func() time.Time { return now }})
	if p := rec.Problems(); p != nil {
		t.Fatalf("Problems() = %q before any failure", p)
	}
	rec.localFailure()
	now = now.Add(4 * time.Minute)
	rec.localFailure()
	if p := rec.Problems(); len(p) != 1 || !strings.Contains(p[0], " 2 times") {
		t.Errorf("Problems() = %q, want two failures", p)
	}
	now = now.Add(2 * time.Minute)
	if p := rec.Problems(); len(p) != 1 || !strings.Contains(p[0], "(-tmp-dir) once") {
		t.Errorf("Problems() = %q, want the first failure forgotten", p)
	}
	now = now.Add(5 * time.Minute)
	if p := rec.Problems(); p != nil {
		t.Errorf("Problems() = %q, want none after five minutes", p)
	}
}

// TestCraftedZipIsInvalid: a zip over memoryZip whose go.mod entry's
// header lies at 2^63-8 made the read of it fail with EINVAL, which was
// taken for sumd's own failure: from HTTP a 503 blaming -tmp-dir in
// /healthz, from a file:// tree a 502, neither remembered, so every retry
// downloaded it again. It is an invalid module, 410 and remembered, from
// either, and no problem of the server's.
func TestCraftedZipIsInvalid(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	data, err := testproxy.FarOffsetZip(m, "module example.com/m\n\ngo 1.21\n")
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, goodModule(m.Path, m.Version))
	fileURL, err := testproxy.Build(p.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(testproxy.ZipPath(p.dir, m), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, list := range []string{p.url, fileURL} {
		f := newFetcher(t, list, FetcherOptions{TempDir: t.TempDir()})
		rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: f, NegativeTTL: time.Hour})
		_, err := rec.Lookup(context.Background(), m)
		e := asError(t, err)
		if e.Kind != KindInvalid || e.HTTPStatus() != http.StatusGone {
			t.Errorf("%s: %q (kind %v, status %d); want an invalid module, 410", list, e, e.Kind, e.HTTPStatus())
		}
		// The reason the go command shows says what is wrong ("invalid
		// module: EOF" did not).
		if want := "zip is truncated or malformed"; !strings.Contains(e.Error(), want) {
			t.Errorf("%s: %q, want it to say %q", list, e, want)
		}
		if n := rec.neg.len(); n != 1 {
			t.Errorf("%s: negative cache holds %d entries, want 1", list, n)
		}
		if pr := rec.Problems(); pr != nil {
			t.Errorf("%s: Problems() = %q, want none", list, pr)
		}
	}
}
