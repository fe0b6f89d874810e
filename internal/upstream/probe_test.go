package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestCheckTrees: a file:// source whose root is missing or a file is
// refused at start, naming it, rather than at the first lookup's 502; an
// existing tree (an empty one: a mount point not mounted yet is one) and
// http(s) sources, which are not reached, pass.
func TestCheckTrees(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		list, err string
	}{
		{"file://" + dir + ",https://proxy.invalid", ""},
		{"https://proxy.invalid,file://" + filepath.Join(dir, "typo"), "upstream proxy file://" + filepath.Join(dir, "typo") + ": the upstream proxy's file tree is missing"},
		{"file://" + file, "is not a directory"},
	} {
		srcs, err := ParseList(c.list)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckTrees(srcs)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("CheckTrees(%s) = %v, want %q", c.list, err, c.err)
		}
	}
}

// TestProbe: a source whose URL is no GOPROXY base URL (a path prefix
// left out, the proxy's web UI) answers lookups 404 or 410 like a proxy
// lacking the version; sumd's probe at start warns when it answers with
// an HTML page, or not at all, and is quiet for a proxy's own answers.
func TestProbe(t *testing.T) {
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "<!DOCTYPE html><html><body>Not Found</body></html>")
	}))
	defer html.Close()
	sniffed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // net/http sniffs none then
		io.WriteString(w, "<html><head><title>Proxy UI</title></head></html>")
	}))
	defer sniffed.Close()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/goproxy/sumdb/sum.golang.org/supported" {
			t.Errorf("probe of %s", r.URL.Path)
		}
		http.Error(w, "not found", http.StatusNotFound)
	}))
	defer proxy.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, c := range []struct {
		list, warn string
	}{
		{html.URL, "answered sumd's probe at start with an HTML page"},
		{sniffed.URL, "answered sumd's probe at start with an HTML page"},
		{proxy.URL + "/goproxy", ""},
		{"file://" + t.TempDir() + "," + down.URL, "did not answer sumd's probe at start"},
	} {
		logs := new(testlog.Buffer)
		f := newFetcher(t, c.list, FetcherOptions{Logger: logs.Logger()})
		f.Probe(context.Background())
		got := logs.String()
		if c.warn == "" && strings.Contains(got, "level=WARN") || c.warn != "" && !strings.Contains(got, c.warn) {
			t.Errorf("%s: logs %q, want a warning %q", c.list, got, c.warn)
		}
	}
}

// TestMissesProblem: first lookups that every upstream proxy answers 404
// or 410, missRun of them in a row, make a problem for the server's health
// (a URL that is no GOPROXY base URL answers so for every version), which
// a version found upstream ends.
func TestMissesProblem(t *testing.T) {
	found := goodModule("example.com/found", "v1.0.0")
	tree, err := testproxy.Build(t.TempDir(), []testproxy.Module{found})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: newFetcher(t, tree, FetcherOptions{}), NegativeTTL: time.Hour})
	miss := func(i int) {
		t.Helper()
		if _, err := rec.Lookup(context.Background(), mv("example.com/absent", fmt.Sprintf("v1.0.%d", i))); kindOf(err) != KindGone {
			t.Fatalf("lookup of an absent version: %v, want KindGone", err)
		}
	}
	for i := range missRun - 1 {
		miss(i)
	}
	miss(0) // the negative cache's answer: no fetch, not counted
	if p := rec.Problems(); len(p) != 0 {
		t.Fatalf("problems after %d misses: %q, want none", missRun-1, p)
	}
	miss(missRun)
	if p := rec.Problems(); len(p) != 1 || !strings.HasPrefix(p[0], fmt.Sprintf("the last %d versions fetched from upstream were missing from every upstream proxy", missRun)) {
		t.Fatalf("problems after %d misses: %q, want the run of misses", missRun, p)
	}
	if _, err := rec.Lookup(context.Background(), mv(found.Path, found.Version)); err != nil {
		t.Fatal(err)
	}
	if p := rec.Problems(); len(p) != 0 {
		t.Errorf("problems after a version found upstream: %q, want none", p)
	}
}

// TestSourceOutageProblem: a source that fails every fetch (no answer)
// while the proxy after its "|" answers them is a problem of the server's
// health, naming the source by its place in -upstream, not its URL
// (anonymous clients read /healthz); the problem ends once the source
// answers again.
func TestSourceOutageProblem(t *testing.T) {
	var mods []testproxy.Module
	for i := range failRun + 1 {
		mods = append(mods, goodModule("example.com/m", fmt.Sprintf("v1.0.%d", i)))
	}
	tree, err := testproxy.Build(t.TempDir(), mods)
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if up.Load() {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer first.Close()
	logs := new(testlog.Buffer)
	rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: newFetcher(t, first.URL+"|"+tree, FetcherOptions{Logger: logs.Logger()})})
	lookup := func(i int) {
		t.Helper()
		if _, err := rec.Lookup(context.Background(), mv("example.com/m", fmt.Sprintf("v1.0.%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range failRun - 1 {
		lookup(i)
	}
	if p := rec.Problems(); len(p) != 0 {
		t.Fatalf("problems after %d failures: %q, want none", failRun-1, p)
	}
	lookup(failRun - 1)
	p := rec.Problems()
	if len(p) != 1 || !strings.HasPrefix(p[0], fmt.Sprintf("upstream proxy 1 of 2 (-upstream) failed the last %d fetches", failRun)) {
		t.Fatalf("problems after %d failures: %q, want the source's outage", failRun, p)
	}
	if strings.Contains(p[0], first.URL) || strings.Contains(p[0], tree) {
		t.Errorf("problem %q names a source", p[0])
	}
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, first.URL) {
		t.Errorf("logs %q, want a warning naming the source", got)
	}
	up.Store(true)
	lookup(failRun)
	if p := rec.Problems(); len(p) != 0 {
		t.Errorf("problems after the source answered: %q, want none", p)
	}
}

// TestSourceMissesWarned: a source that answers every version 404 (a URL
// that is no GOPROXY base URL) before one that has them all is warned of
// in the log, naming it, once per run of missRun misses: every fetch
// succeeds through the next source, so the versions only it should have
// were 410 without a word. It is no problem of the server's health: a
// proxy holding only the company's modules, listed first, misses most
// versions as well.
func TestSourceMissesWarned(t *testing.T) {
	var mods []testproxy.Module
	for i := range 2 * missRun {
		mods = append(mods, goodModule("example.com/m", fmt.Sprintf("v1.0.%d", i)))
	}
	tree, err := testproxy.Build(t.TempDir(), mods)
	if err != nil {
		t.Fatal(err)
	}
	wrong := httptest.NewServer(http.NotFoundHandler())
	defer wrong.Close()
	logs := new(testlog.Buffer)
	rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: newFetcher(t, wrong.URL+","+tree, FetcherOptions{Logger: logs.Logger()})})
	const warning = "upstream proxy answered 404 or 410 to the last"
	for i := range 2*missRun - 1 {
		if _, err := rec.Lookup(context.Background(), mv("example.com/m", fmt.Sprintf("v1.0.%d", i))); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(logs.String(), warning); i < missRun-1 && n != 0 || i >= missRun-1 && n != 1 {
			t.Fatalf("after %d lookups, %d warnings %q, want %d; logs:\n%s", i+1, n, warning, min(1, (i+1)/missRun), logs)
		}
	}
	got := logs.String()
	if !strings.Contains(got, "source="+wrong.URL) || strings.Contains(got, "source=file://") {
		t.Errorf("logs %q, want the warning to name the first source only", got)
	}
	if p := rec.Problems(); len(p) != 0 {
		t.Errorf("problems: %q, want none", p)
	}
}
