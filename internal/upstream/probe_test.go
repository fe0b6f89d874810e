package upstream

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/testlog"
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
