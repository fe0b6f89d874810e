package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sumd-project/sumd/internal/redirect"
)

// A redirector is an upstream that serves the proxy tree under /real/ and
// redirects every other path to to()+path, remembering the Authorization
// header of every request.
type redirector struct {
	srv   *httptest.Server
	files http.Handler
	to    func() string

	mu   sync.Mutex
	auth []string
}

func newRedirector(t *testing.T, secure bool, dir string, to func() string) *redirector {
	t.Helper()
	r := &redirector{files: http.StripPrefix("/real", http.FileServer(http.Dir(dir))), to: to}
	if secure {
		r.srv = httptest.NewTLSServer(r)
	} else {
		r.srv = httptest.NewServer(r)
	}
	t.Cleanup(r.srv.Close)
	return r
}

func (r *redirector) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.auth = append(r.auth, req.Header.Get("Authorization"))
	r.mu.Unlock()
	if strings.HasPrefix(req.URL.Path, "/real/") {
		r.files.ServeHTTP(w, req)
		return
	}
	http.Redirect(w, req, r.to()+req.URL.Path, http.StatusFound)
}

// seen returns the Authorization headers received so far.
func (r *redirector) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

// TestRedirects checks the go command's redirect policy on upstream
// requests: a redirect from https to http is refused before anything is
// sent to the http URL, as a failure of the source (502, not remembered,
// the next "|" source tried); the bearer token goes only to the origin it
// was configured for, even on the same host name; redirects stop after 10.
func TestRedirects(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	tree := newProxy(t, goodModule(m.Path, m.Version))
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const bearer = "Bearer s3cret"

	// Targets: the same tree on http and https, on 127.0.0.1 like the
	// redirecting servers but another port.
	plain := newRedirector(t, false, tree.dir, nil)
	secure := newRedirector(t, true, tree.dir, nil)
	var loop *redirector
	loop = newRedirector(t, true, tree.dir, func() string { return loop.srv.URL })
	var self *redirector
	self = newRedirector(t, true, tree.dir, func() string { return self.srv.URL + "/real" })

	tests := []struct {
		name    string
		from    *redirector
		target  *redirector // another origin, nil if none
		wantErr string      // "": the fetch succeeds
	}{
		{"https to http", newRedirector(t, true, tree.dir, func() string { return plain.srv.URL + "/real" }), plain, "upstream proxy redirected to an insecure (non-https) URL"},
		{"https to https, other port", newRedirector(t, true, tree.dir, func() string { return secure.srv.URL + "/real" }), secure, ""},
		{"http to http, other port", newRedirector(t, false, tree.dir, func() string { return plain.srv.URL + "/real" }), plain, ""},
		{"same origin", self, nil, ""},
		{"loop", loop, nil, "upstream proxy redirected more than 10 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srcs, err := ParseList(tt.from.srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			srcs[0].Auth = Auth{Kind: AuthBearer, File: token}
			f, err := NewFetcher(FetcherOptions{Sources: srcs, HTTPClient: tt.from.srv.Client(), Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			var before int
			if tt.target != nil {
				before = len(tt.target.seen())
			}
			rec, err := f.Fetch(context.Background(), m)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Fetch: %v", err)
			case tt.wantErr == "" && rec.Hash != wantHashes(t, tree.dir, m).Hash:
				t.Fatalf("Fetch: hash %s, want the tree's", rec.Hash)
			case tt.wantErr != "":
				e := asError(t, err)
				if e.Kind != KindUnavailable || e.HTTPStatus() != http.StatusBadGateway || e.Gone() {
					t.Errorf("Fetch: kind %v status %d, want a 502 not remembered", e.Kind, e.HTTPStatus())
				}
				if !strings.HasSuffix(e.Error(), ": "+tt.wantErr) || strings.Contains(e.Error(), "127.0.0.1") {
					t.Errorf("Fetch: %q, want the reason %q and no address", e.Error(), tt.wantErr)
				}
			}
			// Redirects within the origin keep the credentials.
			for _, a := range tt.from.seen() {
				if a != bearer {
					t.Errorf("the source got Authorization %q, want %q", a, bearer)
				}
			}
			if tt.target == nil {
				return
			}
			got := tt.target.seen()[before:]
			if tt.wantErr != "" && len(got) != 0 {
				t.Errorf("the refused target got %d requests", len(got))
			}
			if tt.wantErr == "" && len(got) == 0 {
				t.Errorf("the target got no request")
			}
			for _, a := range got {
				if a != "" {
					t.Errorf("the target, another origin, got Authorization %q", a)
				}
			}
		})
	}

	t.Run("cross-check client", func(t *testing.T) {
		from := newRedirector(t, true, tree.dir, func() string { return plain.srv.URL + "/real" })
		c, err := NewChecker(CheckerOptions{URL: from.srv.URL, Auth: Auth{Kind: AuthBearer, File: token}, HTTPClient: from.srv.Client(), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		before := len(plain.seen())
		if _, err := c.remote.read(context.Background(), "/latest"); !errors.Is(err, redirect.ErrInsecure) {
			t.Errorf("read: %v, want the redirect to http refused", err)
		}
		if n := len(plain.seen()) - before; n != 0 {
			t.Errorf("the http URL got %d requests", n)
		}
	})

	t.Run("next source after a refused redirect", func(t *testing.T) {
		from := newRedirector(t, true, tree.dir, func() string { return plain.srv.URL + "/real" })
		srcs, err := ParseList(from.srv.URL + "|" + tree.url)
		if err != nil {
			t.Fatal(err)
		}
		f, err := NewFetcher(FetcherOptions{Sources: srcs, HTTPClient: from.srv.Client(), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		before := tree.total()
		if _, err := f.Fetch(context.Background(), m); err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if tree.total() == before {
			t.Errorf("the next source was not asked")
		}
	})
}
