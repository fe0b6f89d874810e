package upstream

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/testproxy"
	"github.com/sumd-project/sumd/internal/tlog"
)

var quiet = slog.New(slog.DiscardHandler)

func mv(path, version string) module.Version { return module.Version{Path: path, Version: version} }

// goodModule is a small valid module version.
func goodModule(path, version string) testproxy.Module {
	return testproxy.Module{Path: path, Version: version, Files: map[string]string{
		"go.mod": "module " + path + "\n\ngo 1.21\n",
		"m.go":   "package m\n\nconst V = \"" + version + "\"\n",
	}}
}

// largeModule is a valid module version whose zip is larger than
// memoryZip, so that a fetch over HTTP needs a temporary file: its data
// file, deterministic random bytes, does not compress.
func largeModule(path, version string) testproxy.Module {
	return testproxy.WithNoise(goodModule(path, version), memoryZip+memoryZip/4)
}

// testLog opens a new, empty log.
func testLog(t testing.TB) *tlog.Log {
	t.Helper()
	return testLogNamed(t, "sumd.test")
}

func testLogNamed(t testing.TB, name string) *tlog.Log {
	t.Helper()
	skey, _, err := tlog.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return openLog(t, skey)
}

// openLog opens a new log in a fresh file, signing with skey.
func openLog(t testing.TB, skey string) *tlog.Log {
	t.Helper()
	k, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tlog.Open(filepath.Join(t.TempDir(), "sumd.db"), tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func treeSize(t testing.TB, l *tlog.Log) int64 {
	t.Helper()
	tree, err := l.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tree.N
}

// A proxy is an upstream GOPROXY file tree on HTTP that counts requests.
// A hook, if set, may answer a request instead of the tree.
type proxy struct {
	dir   string
	url   string
	srv   *httptest.Server
	files http.Handler

	mu   sync.Mutex
	hits map[string]int // by URL path
	hook func(w http.ResponseWriter, r *http.Request) bool
}

// newProxy serves mods on 127.0.0.1 until the test ends.
func newProxy(t testing.TB, mods ...testproxy.Module) *proxy {
	t.Helper()
	p := &proxy{dir: t.TempDir(), hits: map[string]int{}}
	if _, err := testproxy.Build(p.dir, mods); err != nil {
		t.Fatal(err)
	}
	p.files = http.FileServer(http.Dir(p.dir))
	p.srv = httptest.NewServer(p)
	t.Cleanup(p.srv.Close)
	p.url = p.srv.URL
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.hits[r.URL.Path]++
	hook := p.hook
	p.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	p.files.ServeHTTP(w, r)
}

func (p *proxy) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hook = h
}

// count returns the requests whose path ends in suffix.
func (p *proxy) count(suffix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for path, c := range p.hits {
		if strings.HasSuffix(path, suffix) {
			n += c
		}
	}
	return n
}

// total returns all requests but sumdb ones.
func (p *proxy) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for path, c := range p.hits {
		if !strings.HasPrefix(path, "/sumdb/") {
			n += c
		}
	}
	return n
}

// writeRawZip replaces m's zip in the tree at dir with one holding exactly
// the given entries, bypassing every check.
func writeRawZip(t testing.TB, dir string, m module.Version, names, data []string) {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, name := range names {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(data[i]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(testproxy.ZipPath(dir, m), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newFetcher returns a Fetcher for the list with quiet logs.
func newFetcher(t testing.TB, list string, opts FetcherOptions) *Fetcher {
	t.Helper()
	srcs, err := ParseList(list)
	if err != nil {
		t.Fatal(err)
	}
	opts.Sources = srcs
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	f, err := NewFetcher(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// wantHashes returns what modhash computes for m in the tree at dir.
func wantHashes(t testing.TB, dir string, m module.Version) modhash.Sums {
	t.Helper()
	mod, err := os.ReadFile(testproxy.ModPath(dir, m))
	if err != nil {
		t.Fatal(err)
	}
	s, err := modhash.HashZip(m, testproxy.ZipPath(dir, m), mod)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// asError returns err as an *Error or fails the test.
func asError(t testing.TB, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want an *upstream.Error", err, err)
	}
	return e
}

// publish adds mods to the GOPROXY tree at dir.
func publish(t testing.TB, dir string, mods ...testproxy.Module) {
	t.Helper()
	if _, err := testproxy.Build(dir, mods); err != nil {
		t.Fatal(err)
	}
}

// fakeHash returns a well-formed h1 hash derived from s.
func fakeHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
}
