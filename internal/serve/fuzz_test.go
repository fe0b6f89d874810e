package serve

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testlog"
	sumdlog "github.com/sumd-project/sumd/internal/tlog"
)

// FuzzPageQuery sends arbitrary searches and record ids to the page: every
// answer is a page (200), a redirect to a record (302), or a 400 or 404
// that says why; never a 500 or a panic. (html/template escapes the query;
// TestPage checks a search for markup.)
func FuzzPageQuery(f *testing.F) {
	for _, s := range []string{"", "example.com/m", "example.com/", "example.com/m@v1.0.0", "@", "x@\xff", "<script>", strings.Repeat("a", 600), "-1", "99999999999999999999"} {
		f.Add(s)
	}
	skey, _, err := sumdlog.GenerateKey("fuzz.example.com")
	if err != nil {
		f.Fatal(err)
	}
	key, _ := sumdlog.ParseKey(skey)
	logs := new(testlog.Buffer)
	l, err := sumdlog.Open(filepath.Join(f.TempDir(), "sumd.db"), sumdlog.Options{Keys: []*sumdlog.Key{key}, Create: true, Logger: logs.Logger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	h := "h1:" + strings.Repeat("A", 43) + "="
	for _, mv := range []string{"example.com/m@v1.0.0", "example.com/m@v1.1.0", "example.com/n@v0.1.0"} {
		path, version, _ := strings.Cut(mv, "@")
		if _, err := l.Add(context.Background(), gosum.Record{Path: path, Version: version, Hash: h, GoMod: h}); err != nil {
			f.Fatal(err)
		}
	}
	p := &page{log: l, status: &board{log: l, reg: NewRegistry()}, logger: logs.Logger()}
	f.Fuzz(func(t *testing.T, q string) {
		for _, tc := range []struct {
			handler http.HandlerFunc
			target  string
		}{
			{p.module, "/module?path=" + url.QueryEscape(q)},
			{p.record, "/record?id=" + url.QueryEscape(q)},
		} {
			w := httptest.NewRecorder()
			tc.handler(w, httptest.NewRequest("GET", tc.target, nil))
			switch w.Code {
			case 200, 302, 400, 404:
			default:
				t.Fatalf("GET %s = %d\n%s", tc.target, w.Code, w.Body)
			}
		}
	})
}

// FuzzPlainTarget checks that wherever plainTarget answers, it answers
// what url.ParseRequestURI does (the Path and RawPath the main listener's
// handlers see), for a path the main listener does not redirect.
func FuzzPlainTarget(f *testing.F) {
	for _, s := range []string{"/latest", "/lookup/github.com/!azure/go-sdk@v1.0.0-!r!c.1", "/tile/8/data/x001/234.p/5",
		"/sumdb/sum.example.com/supported", "//latest", "/a/../b", "/a/./b", "/a/.", "/%41", "/a?b", "/a#b", "/a b",
		"*", "", "/", "/!", "/lookup/a;b=c$&+,:@v1", "/\x7f", "/\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		path, rawPath, ok := plainTarget([]byte(target))
		if !ok {
			return
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatalf("plainTarget(%q) = %q, %q; url.ParseRequestURI: %v", target, path, rawPath, err)
		}
		if u.Path != path || u.RawPath != rawPath || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Host != "" {
			t.Fatalf("plainTarget(%q) = %q, %q; url.ParseRequestURI: %#v", target, path, rawPath, u)
		}
		if esc := u.EscapedPath(); cleanPath(esc) != esc {
			t.Fatalf("plainTarget(%q) took %q, which the main listener redirects", target, esc)
		}
	})
}

// TestPlainTarget checks that the targets the go command sends take
// plainTarget's way, and others url.ParseRequestURI's.
func TestPlainTarget(t *testing.T) {
	for target, want := range map[string]bool{
		"/latest": true, "/lookup/github.com/!azure/go-sdk@v1.0.0-!r!c.1": true, "/tile/8/1/x001/234.p/5": true,
		"/tile/8/data/000": true, "/sumdb/sum.example.com/supported": true, "/sumdb/sum.golang.org/lookup/golang.org/x/mod@v0.20.0": true,
		"/lookup/a%2Fb@v1.0.0": false, "/latest?x": false, "//latest": false, "/tile/8/0/../000": false, "*": false, "/a b": false,
	} {
		if _, _, ok := plainTarget([]byte(target)); ok != want {
			t.Errorf("plainTarget(%q) ok = %v, want %v", target, ok, want)
		}
	}
}
