package admin

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/testproxy"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/upstream"
	"net"
	"syscall"
)

var _ Recorder = (*upstream.Recorder)(nil)

var quiet = slog.New(slog.DiscardHandler)

const testToken = "0123456789abcdef-admin-token"

func mv(path, version string) module.Version { return module.Version{Path: path, Version: version} }

func goodModule(path, version string) testproxy.Module {
	return testproxy.Module{Path: path, Version: version, Files: map[string]string{
		"go.mod": "module " + path + "\n\ngo 1.21\n",
		"m.go":   "package m\n\nconst V = \"" + version + "\"\n",
	}}
}

// setup is sumd's admin API over a real log and Recorder, with an upstream
// proxy serving mods.
type setup struct {
	proxyDir string
	log      *tlog.Log
	rec      *upstream.Recorder
	srv      *httptest.Server
	client   *Client
}

func newSetup(t testing.TB, opts Options, mods ...testproxy.Module) *setup {
	t.Helper()
	s := &setup{proxyDir: t.TempDir()}
	if _, err := testproxy.Build(s.proxyDir, mods); err != nil {
		t.Fatal(err)
	}
	srcs, err := upstream.ParseList(testproxy.ServeHTTP(t, s.proxyDir))
	if err != nil {
		t.Fatal(err)
	}
	f, err := upstream.NewFetcher(upstream.FetcherOptions{Sources: srcs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s.log = openLog(t)
	rec, err := upstream.NewRecorder(s.log, upstream.RecorderOptions{Fetcher: f, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s.rec = rec
	opts.Authenticated, opts.Logger = true, quiet // the access layer's job, tested there
	s.srv = httptest.NewServer(New(rec, opts))
	t.Cleanup(s.srv.Close)
	s.client = &Client{URL: s.srv.URL, Token: testToken}
	return s
}

func openLog(t testing.TB) *tlog.Log {
	t.Helper()
	skey, _, err := tlog.GenerateKey("sumd.test")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := tlog.ParseKey(skey)
	l, err := tlog.Open(filepath.Join(t.TempDir(), "sumd.db"), tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func (s *setup) treeSize(t *testing.T) int64 {
	t.Helper()
	tree, err := s.log.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tree.N
}

// wantStatus checks that err is an API error with status and a message
// containing want.
func wantStatus(t *testing.T, err error, status int, want string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Status != status || !strings.Contains(e.Message, want) {
		t.Fatalf("error %v, want %d %q", err, status, want)
	}
}

// recordOf is the record text for m with the hashes modhash computes.
func recordOf(t *testing.T, m module.Version, zipPath string, mod []byte) string {
	t.Helper()
	sums, err := modhash.HashZip(m, zipPath, mod)
	if err != nil {
		t.Fatal(err)
	}
	return string(gosum.Record{Path: m.Path, Version: m.Version, Hash: sums.Hash, GoMod: sums.GoMod}.Text())
}

// TestFetch records a version from upstream, by JSON and by form.
func TestFetch(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	s := newSetup(t, Options{}, goodModule(m.Path, m.Version))
	res, err := s.client.Fetch(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	mod, _ := os.ReadFile(testproxy.ModPath(s.proxyDir, m))
	want := Result{ID: 0, Record: recordOf(t, m, testproxy.ZipPath(s.proxyDir, m), mod), TreeSize: 1}
	if *res != want {
		t.Errorf("Fetch = %+v, want %+v", *res, want)
	}
	form := url.Values{"module": {m.Path}, "version": {m.Version}}
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/admin/fetch", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("form fetch: %v, %v", resp.Status, err)
	}
	resp.Body.Close()
	if n := s.treeSize(t); n != 1 {
		t.Errorf("tree size %d after fetching one version twice, want 1", n)
	}
}

// TestUpload records uploaded zips with exactly modhash's hashes, with and
// without a separate go.mod.
func TestUpload(t *testing.T) {
	s := newSetup(t, Options{})
	dir := t.TempDir()
	m1, m2 := mv("example.com/up", "v1.0.0"), mv("example.com/up", "v1.1.0")
	if _, err := testproxy.Build(dir, []testproxy.Module{goodModule(m1.Path, m1.Version), goodModule(m2.Path, m2.Version)}); err != nil {
		t.Fatal(err)
	}
	mod, _ := os.ReadFile(testproxy.ModPath(dir, m1))
	res, err := s.client.Upload(context.Background(), m1, testproxy.ZipPath(dir, m1), testproxy.ModPath(dir, m1))
	if err != nil {
		t.Fatal(err)
	}
	if want := recordOf(t, m1, testproxy.ZipPath(dir, m1), mod); res.Record != want || res.TreeSize != 1 {
		t.Errorf("Upload = %+v, want record %q in a tree of 1", *res, want)
	}
	res, err = s.client.Upload(context.Background(), m2, testproxy.ZipPath(dir, m2), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := recordOf(t, m2, testproxy.ZipPath(dir, m2), nil); res.Record != want || res.ID != 1 {
		t.Errorf("Upload without go.mod = %+v, want record %q as id 1", *res, want)
	}
}

// TestUploadConflict refuses other content for a recorded version with a
// 409 naming both hashes, and records nothing.
func TestUploadConflict(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	s := newSetup(t, Options{}, goodModule(m.Path, m.Version))
	first, err := s.client.Fetch(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	other := goodModule(m.Path, m.Version)
	other.Files["m.go"] += "// retagged\n"
	dir := t.TempDir()
	testproxy.Build(dir, []testproxy.Module{other})
	_, err = s.client.Upload(context.Background(), m, testproxy.ZipPath(dir, m), "")
	recorded, _ := gosum.Parse([]byte(first.Record))
	offered, _ := gosum.Parse([]byte(recordOf(t, m, testproxy.ZipPath(dir, m), nil)))
	wantStatus(t, err, http.StatusConflict, "already recorded as record 0 with different hashes")
	for _, h := range []string{recorded.Hash, offered.Hash} {
		if !strings.Contains(err.Error(), h) {
			t.Errorf("conflict %q does not show %s", err, h)
		}
	}
	if n := s.treeSize(t); n != 1 {
		t.Errorf("tree size %d after a conflict, want 1", n)
	}
}

// TestFetchUploadRefuseIncompatible: fetch and upload refuse, as add does
// (gosum.ParseLine), a +incompatible version the go command never makes,
// and so does the first lookup of one (the Recorder's Record, which serves
// the go command's lookups, 410 as other invalid versions): each recorded
// it as a new record no go command would look up.
func TestFetchUploadRefuseIncompatible(t *testing.T) {
	for _, m := range []module.Version{mv("example.com/m", "v1.0.0+incompatible"), mv("example.com/m/v2", "v2.0.0+incompatible")} {
		t.Run(m.String(), func(t *testing.T) {
			s := newSetup(t, Options{}, goodModule(m.Path, m.Version))
			want := m.String() + ": invalid version: +incompatible suffix not allowed"
			_, err := s.client.Fetch(context.Background(), m)
			wantStatus(t, err, http.StatusBadRequest, want)
			_, err = s.client.Upload(context.Background(), m, testproxy.ZipPath(s.proxyDir, m), "")
			wantStatus(t, err, http.StatusBadRequest, want)
			_, _, err = s.rec.Record(context.Background(), m)
			var ue *upstream.Error
			if !errors.As(err, &ue) || ue.HTTPStatus() != http.StatusGone || !strings.Contains(err.Error(), want) {
				t.Errorf("first lookup: %v, want 410 %q", err, want)
			}
			if n := s.treeSize(t); n != 0 {
				t.Errorf("tree size %d after the refusals, want 0", n)
			}
		})
	}
}

// TestUploadRefusals: invalid modules are 422 (the client's input, not the
// 410 a first lookup of an invalid version from upstream gets), oversized
// files 413, bad requests 400; none records anything. A zip over
// memoryZip whose go.mod entry lies at 2^63-8 was a 503 "cannot store":
// reading there failed with EINVAL, taken for the disk's failure.
func TestUploadRefusals(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	dir := t.TempDir()
	big := goodModule(m.Path, m.Version)
	big.Files["big.go"] = "package m\n\n// " + strings.Repeat("incompressible? no, but big enough ", 200) + "\n"
	testproxy.Build(dir, []testproxy.Module{big})
	zipPath, modPath := testproxy.ZipPath(dir, m), testproxy.ModPath(dir, m)
	otherMod := filepath.Join(dir, "other.mod")
	os.WriteFile(otherMod, []byte("module example.com/m\n\ngo 1.22\n"), 0o644)
	far, err := testproxy.FarOffsetZip(m, "module example.com/m\n")
	if err != nil {
		t.Fatal(err)
	}
	farZip := filepath.Join(dir, "far.zip")
	os.WriteFile(farZip, far, 0o644)
	tests := []struct {
		name    string
		opts    Options
		m       module.Version
		zip     string
		mod     string
		status  int
		message string
	}{
		{"go.mod differs", Options{}, m, zipPath, otherMod, 422, "invalid module: the go.mod sent differs from the go.mod in the zip; send that one, or none"},
		{"wrong version", Options{}, mv(m.Path, "v1.0.1"), zipPath, "", 422, `path does not have prefix "example.com/m@v1.0.1/"`},
		{"far offset", Options{}, m, farZip, "", 422, "invalid module: failed to hash example.com/m@v1.0.0: zip is truncated or malformed: an entry lies past the end of the file"},
		{"zip too large", Options{MaxZipSize: 512}, m, zipPath, "", 413, "module zip is larger than the limit of 512 bytes"},
		{"mod too large", Options{MaxModSize: 10}, m, zipPath, modPath, 413, "go.mod file is larger than the limit of 10 bytes"},
		{"non-canonical", Options{}, mv(m.Path, "v1.0"), zipPath, "", 400, "not canonical"},
		{"no version", Options{}, mv(m.Path, ""), zipPath, "", 400, "want both module and version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.TempDir = t.TempDir()
			s := newSetup(t, tt.opts)
			_, err := s.client.Upload(context.Background(), tt.m, tt.zip, tt.mod)
			wantStatus(t, err, tt.status, tt.message)
			if n := s.treeSize(t); n != 0 {
				t.Errorf("tree size %d after a refusal, want 0", n)
			}
			if left, _ := os.ReadDir(tt.opts.TempDir); len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

// TestUploadTmpDirFails: a temporary directory sumd cannot write is sumd's
// failure, a 503 that names no path, not the client's bad input (it was a
// 400 quoting the temporary file's path); nothing is recorded.
func TestUploadTmpDirFails(t *testing.T) {
	small, large := mv("example.com/m", "v1.0.0"), mv("example.com/large", "v1.0.0")
	dir := t.TempDir()
	testproxy.Build(dir, []testproxy.Module{goodModule(small.Path, small.Version), largeModule(large.Path, large.Version)})
	tmp := filepath.Join(t.TempDir(), "tmp")
	s := newSetup(t, Options{TempDir: tmp}) // never created: every file in it fails
	// A small zip is hashed in memory: no temporary file, so no failure.
	if _, err := s.client.Upload(context.Background(), small, testproxy.ZipPath(dir, small), ""); err != nil {
		t.Fatalf("small upload with no temporary directory: %v", err)
	}
	_, err := s.client.Upload(context.Background(), large, testproxy.ZipPath(dir, large), "")
	wantStatus(t, err, http.StatusServiceUnavailable, "sumd cannot store the uploaded zip now")
	if strings.Contains(err.Error(), tmp) {
		t.Errorf("the answer names the temporary directory: %v", err)
	}
	if n := s.treeSize(t); n != 1 {
		t.Errorf("tree size %d after a refusal, want 1", n)
	}
}

// largeModule is a module whose zip is larger than memoryZip: its data
// file does not compress.
func largeModule(path, version string) testproxy.Module {
	return testproxy.WithNoise(goodModule(path, version), memoryZip+memoryZip/4)
}

// TestUploadSizes: a zip kept in memory (up to memoryZip bytes) and one
// spooled to a temporary file get the hashes the go command computes from
// the zip, and the temporary file is gone once the upload is answered.
func TestUploadSizes(t *testing.T) {
	dir := t.TempDir()
	mods := []testproxy.Module{goodModule("example.com/m", "v1.0.0"), largeModule("example.com/large", "v1.0.0")}
	testproxy.Build(dir, mods)
	tmp := t.TempDir()
	s := newSetup(t, Options{TempDir: tmp})
	for _, mod := range mods {
		m := mv(mod.Path, mod.Version)
		zipPath := testproxy.ZipPath(dir, m)
		fi, err := os.Stat(zipPath)
		if err != nil {
			t.Fatal(err)
		}
		if large := fi.Size() > memoryZip; large != (mod.Path == "example.com/large") {
			t.Fatalf("%s: zip of %d bytes, memoryZip %d: the test needs one of each side", m, fi.Size(), memoryZip)
		}
		res, err := s.client.Upload(context.Background(), m, zipPath, "")
		if err != nil {
			t.Fatalf("upload %s: %v", m, err)
		}
		want, err := dirhash.HashZip(zipPath, dirhash.Hash1)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(res.Record, want) {
			t.Errorf("upload %s recorded %q, want the hash %s", m, res.Record, want)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("upload %s left %d files in the temporary directory", m, len(left))
		}
	}
}

// TestStoreWriter: a failure to write the temporary file is told apart
// from a failure to read the request.
func TestStoreWriter(t *testing.T) {
	full := errors.New("no space left on device")
	sw := &storeWriter{FloorWriter: tlog.FloorWriter{W: failingWriter{full}}}
	if err := copyLimited(sw, strings.NewReader("zip bytes"), 100, "module zip"); err == nil || !errors.Is(sw.err, full) {
		t.Errorf("copyLimited = %v, storeWriter.err = %v; want the write failure remembered", err, sw.err)
	}
	sw = &storeWriter{FloorWriter: tlog.FloorWriter{W: io.Discard}}
	if err := copyLimited(sw, iotest.ErrReader(errors.New("client went away")), 100, "module zip"); err == nil || sw.err != nil {
		t.Errorf("copyLimited = %v, storeWriter.err = %v; want a read failure, not a write one", err, sw.err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

// TestUploadManyBadEntries: x/mod's CheckZip names every bad entry, so a
// zip of thousands of entries outside the module made a 422 body and a log
// line of megabytes (hundreds at the 500 MiB limit). Both are capped and
// say how much they left out.
func TestUploadManyBadEntries(t *testing.T) {
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	for i := range 4000 {
		if _, err := zw.Create(fmt.Sprintf("other@v1.0.0/%s/%d.go", strings.Repeat("x", 900), i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("module", "example.com/m")
	mw.WriteField("version", "v1.0.0")
	fw, _ := mw.CreateFormFile("zip", "zip")
	fw.Write(zbuf.Bytes())
	mw.Close()

	var logs bytes.Buffer
	h := New(&fakeRecorder{}, Options{TempDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	req := httptest.NewRequest(http.MethodPost, "/admin/upload", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	h.upload(w, req)
	got := w.Body.String()
	if w.Code != http.StatusUnprocessableEntity || len(got) > 2<<10 ||
		!strings.HasPrefix(got, "invalid module: ") || !strings.Contains(got, "more bytes)") || strings.Count(got, "\n") != 1 {
		t.Errorf("upload = %d, %d bytes %.300q…; want a 422 of one line under 2 KiB saying how much it left out", w.Code, len(got), got)
	}
	if logs.Len() > 10<<10 {
		t.Errorf("a log line of %d bytes", logs.Len())
	}
}

// failingBody is a request body whose connection fails after data.
type failingBody struct {
	data io.Reader
	err  error
}

func (b *failingBody) Read(p []byte) (int, error) {
	if n, _ := b.data.Read(p); n > 0 {
		return n, nil
	}
	return 0, b.err
}

// TestUploadConnectionLost: a body cut by the connection failing (the
// server shutting down, a reset) is no client's bad input: a 503, not the
// 400 of a malformed body, which stays a 400.
func TestUploadConnectionLost(t *testing.T) {
	s := newSetup(t, Options{TempDir: t.TempDir()})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("module", "example.com/m")
	mw.WriteField("version", "v1.0.0")
	part, _ := mw.CreateFormFile("zip", "m.zip")
	part.Write([]byte("PK\x03\x04 a zip cut short"))
	for name, c := range map[string]struct {
		err    error
		status int
	}{
		"closed":    {&net.OpError{Op: "read", Net: "tcp", Err: net.ErrClosed}, http.StatusServiceUnavailable},
		"reset":     {&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, http.StatusServiceUnavailable},
		"malformed": {io.ErrUnexpectedEOF, http.StatusBadRequest},
	} {
		r := httptest.NewRequest(http.MethodPost, "/admin/upload", &failingBody{bytes.NewReader(body.Bytes()), c.err})
		r.Header.Set("Content-Type", mw.FormDataContentType())
		r.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		s.srv.Config.Handler.ServeHTTP(w, r)
		if w.Code != c.status {
			t.Errorf("%s: an upload whose body failed with %v: %d %s, want %d", name, c.err, w.Code, w.Body, c.status)
		}
	}
}

// TestUploadMemoryBudget: a small upload is held in memory only with its
// share of modhash.MemoryBudget, given back once answered: with the budget
// spent it goes to a file (here a TempDir that cannot be created: 503),
// and once the budget is free it is hashed in memory again.
func TestUploadMemoryBudget(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	dir := t.TempDir()
	testproxy.Build(dir, []testproxy.Module{goodModule(m.Path, m.Version)})
	s := newSetup(t, Options{TempDir: filepath.Join(t.TempDir(), "missing")})
	all, ok := modhash.HoldMemory(modhash.MemoryBudget)
	if !ok {
		t.Fatal("the memory budget is not free at the start")
	}
	_, err := s.client.Upload(context.Background(), m, testproxy.ZipPath(dir, m), "")
	wantStatus(t, err, http.StatusServiceUnavailable, "sumd cannot store the uploaded zip now")
	all()
	if _, err := s.client.Upload(context.Background(), m, testproxy.ZipPath(dir, m), ""); err != nil {
		t.Fatalf("upload with the budget free: %v", err)
	}
	again, ok := modhash.HoldMemory(modhash.MemoryBudget)
	if !ok {
		t.Fatal("the uploads did not give back their share of the memory budget")
	}
	again()
}

// TestUploadAbandoned: an upload whose client left while its zip (over
// 1 MiB, on disk) was hashed stops hashing, records nothing and is not
// called an invalid module: a cancellation says nothing of the zip.
func TestUploadAbandoned(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	src := t.TempDir()
	testproxy.Build(src, []testproxy.Module{testproxy.WithNoise(goodModule(m.Path, m.Version), 3<<20)})
	zipData, err := os.ReadFile(testproxy.ZipPath(src, m))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("module", m.Path)
	mw.WriteField("version", m.Version)
	fw, _ := mw.CreateFormFile("zip", "m.zip")
	fw.Write(zipData)
	mw.Close()
	var logs bytes.Buffer
	rec := &countingRecorder{}
	h := New(rec, Options{TempDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/admin/upload", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	h.upload(w, req)
	if w.Code == http.StatusUnprocessableEntity || strings.Contains(w.Body.String(), "invalid module") {
		t.Errorf("an abandoned upload answered %d %q, want no verdict on the module", w.Code, w.Body)
	}
	if strings.Contains(logs.String(), "invalid module") {
		t.Errorf("an abandoned upload logged as an invalid module:\n%s", logs.String())
	}
	if rec.adds != 0 {
		t.Errorf("an upload abandoned before its hash went on to record it (%d adds)", rec.adds)
	}
}

// countingRecorder is a fakeRecorder counting its Add calls.
type countingRecorder struct {
	fakeRecorder
	adds int
}

func (c *countingRecorder) Add(ctx context.Context, rec gosum.Record) (int64, error) {
	c.adds++
	return c.fakeRecorder.Add(ctx, rec)
}

// TestNotEnabledNotCached: the 404 of a server whose admin API is off is
// an error like the others, "no-store" (README, HTTP endpoints): a shared
// cache that kept a GET /admin/backup's 404 would go on answering it once
// an operator enables the API.
func TestNotEnabledNotCached(t *testing.T) {
	w := httptest.NewRecorder()
	NotEnabled.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/admin/backup", nil))
	if w.Code != http.StatusNotFound || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("GET /admin/backup with the API off: %d, Cache-Control %q; want 404, no-store", w.Code, w.Header().Get("Cache-Control"))
	}
}

// TestUploadModOfZipWithoutGoMod: a go.mod sent with a zip that has none
// must be the one the go command makes up for it ("module PATH"): the go
// command fetching the version from its origin hashes that one, and would
// call a record of another go.mod a security error. It was recorded as
// sent. A +incompatible version keeps the go.mod sent (modhash.HashZip), as
// one with a go.mod in its zip must send that one.
func TestUploadModOfZipWithoutGoMod(t *testing.T) {
	dir := t.TempDir()
	small := testproxy.Module{Path: "example.com/nomod", Version: "v1.0.0", Files: map[string]string{"m.go": "package m\n"}}
	large := testproxy.WithNoise(small, memoryZip+memoryZip/4)
	large.Path = "example.com/largenomod"
	if _, err := testproxy.Build(dir, []testproxy.Module{small, large}); err != nil {
		t.Fatal(err)
	}
	for _, mod := range []testproxy.Module{small, large} {
		t.Run(mod.Path, func(t *testing.T) {
			m := mv(mod.Path, mod.Version)
			s := newSetup(t, Options{TempDir: t.TempDir()})
			other := filepath.Join(t.TempDir(), "other.mod")
			os.WriteFile(other, []byte("module "+m.Path+"\n\nrequire example.com/x v1.0.0\n"), 0o644)
			_, err := s.client.Upload(context.Background(), m, testproxy.ZipPath(dir, m), other)
			wantStatus(t, err, http.StatusUnprocessableEntity, "is not the one the go command uses for example.com/")
			if n := s.treeSize(t); n != 0 {
				t.Fatalf("tree size %d after the refusal, want 0", n)
			}
			made := filepath.Join(t.TempDir(), "made.mod")
			os.WriteFile(made, modhash.SynthesizedGoMod(m.Path), 0o644)
			res, err := s.client.Upload(context.Background(), m, testproxy.ZipPath(dir, m), made)
			if err != nil {
				t.Fatalf("upload with the go.mod the go command makes up: %v", err)
			}
			if want := recordOf(t, m, testproxy.ZipPath(dir, m), nil); res.Record != want {
				t.Errorf("recorded %q, want %q", res.Record, want)
			}
		})
	}
}

// TestUploadModMemory: a go.mod sent with an upload is held in memory, up
// to MaxModSize (16 MiB): one over 64 KiB takes MaxModSize of the memory
// adds take (maxBodyMemory), and with none left the upload is a 503 that
// records nothing. Every upload held its go.mod outside any budget, as
// many as came at once. A small go.mod takes nothing.
func TestUploadModMemory(t *testing.T) {
	m := mv("example.com/bigmod", "v1.0.0")
	mod := goodModule(m.Path, m.Version)
	mod.Files["go.mod"] += "\n// " + strings.Repeat("x", 100<<10) + "\n"
	small := goodModule("example.com/smallmod", "v1.0.0")
	dir := t.TempDir()
	testproxy.Build(dir, []testproxy.Module{mod, small})
	s := newSetup(t, Options{TempDir: t.TempDir()})
	h := s.srv.Config.Handler.(*Handler)
	h.bodyMemory.Acquire(context.Background(), maxBodyMemory)
	_, err := s.client.Upload(context.Background(), m, testproxy.ZipPath(dir, m), testproxy.ModPath(dir, m))
	wantStatus(t, err, http.StatusServiceUnavailable, "try again")
	if n := s.treeSize(t); n != 0 {
		t.Fatalf("tree size %d after the refusal, want 0", n)
	}
	sm := mv(small.Path, small.Version)
	if _, err := s.client.Upload(context.Background(), sm, testproxy.ZipPath(dir, sm), testproxy.ModPath(dir, sm)); err != nil {
		t.Fatalf("upload with a small go.mod, the memory held: %v", err)
	}
	h.bodyMemory.Release(maxBodyMemory)
	if _, err := s.client.Upload(context.Background(), m, testproxy.ZipPath(dir, m), testproxy.ModPath(dir, m)); err != nil {
		t.Fatalf("upload with a large go.mod, the memory free: %v", err)
	}
	if !h.bodyMemory.TryAcquire(maxBodyMemory) {
		t.Fatal("the upload did not give back the memory of its go.mod")
	}
}

// TestFetchUploadPresent: the answer of a fetch or upload says whether the
// version was recorded before the request ("present"), so that the client
// does not call a version it recorded long ago new; an answer without it
// (a new version, or an older server's) decodes as not present.
func TestFetchUploadPresent(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	s := newSetup(t, Options{}, goodModule(m.Path, m.Version))
	for i, want := range []bool{false, true} {
		res, err := s.client.Fetch(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		if res.Present != want {
			t.Errorf("fetch %d: present %v, want %v", i+1, res.Present, want)
		}
	}
	up := mv("example.com/up", "v1.0.0")
	dir := t.TempDir()
	if _, err := testproxy.Build(dir, []testproxy.Module{goodModule(up.Path, up.Version)}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, true} {
		res, err := s.client.Upload(context.Background(), up, testproxy.ZipPath(dir, up), "")
		if err != nil {
			t.Fatal(err)
		}
		if res.Present != want || res.ID != 1 {
			t.Errorf("upload %d: %+v, want id 1 and present %v", i+1, *res, want)
		}
	}
	if res, err := decodeResult([]byte(`{"id":3,"record":"r","tree_size":4}`)); err != nil || res.Present {
		t.Errorf("an answer without present: %+v, %v; want it not present", res, err)
	}
}
