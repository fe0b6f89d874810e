package serve

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/mirror"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/tlog"
)

// mirrorOfOrigin returns a Mirror of name whose origin, served over HTTP,
// holds recs, added after the head the mirror starts from: the mirror
// forwards lookups of them. lookups counts the lookups the origin gets.
func mirrorOfOrigin(t *testing.T, name string, lookups *atomic.Int32, recs ...gosum.Record) Mirror {
	ctx := context.Background()
	skey, vkey, err := tlog.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	origin, err := tlog.OpenStore(tlog.NewMemStore(), tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { origin.Close() })
	head, err := origin.Signed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Add(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	h := server.New(name, origin, server.Options{Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/lookup/") {
			lookups.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := sumdbclient.New(srv.URL, sumdbclient.Options{Backoff: time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return Mirror{Interval: time.Hour, Open: func() (*mirror.Follower, string, error) {
		l, err := tlog.OpenStore(tlog.NewMemStore(), tlog.Options{VerifierKeys: []string{vkey}, Create: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, "", err
		}
		if err := l.Extend(ctx, tlog.Extension{Head: head}); err != nil {
			return nil, "", err
		}
		vs, _ := sumdbclient.ParseVerifiers(vkey)
		f, err := mirror.New(mirror.Options{Log: l, Client: c, Verifiers: vs})
		return f, "", err
	}}
}

// TestAccessHidesMirrorRecords: on a mirror (/sumdb/<origin>/lookup/…), a
// limited reader's lookup outside its patterns answers the same 404 (same
// headers, same text) whether the origin holds the version or not, and
// is never forwarded to the origin, so the reader learns nothing of what
// the origin holds outside its patterns. It differs from the 404 of a
// version inside the patterns that the origin lacks, which names the
// origin's answer: docs/access.md says the reader can tell its own
// patterns apart that way, as with -upstream.
func TestAccessHidesMirrorRecords(t *testing.T) {
	cfg, urls, _, _ := accessConfig(t)
	h := "h1:" + strings.Repeat("A", 43) + "="
	var lookups atomic.Int32
	cfg.Mirrors = []Mirror{mirrorOfOrigin(t, "corp.example", &lookups, gosum.Record{Path: "example.com/secret", Version: "v1.0.0", Hash: h, GoMod: h})}
	url := serveTest(t, cfg, urls) + "/sumdb/corp.example/lookup/"

	if code, _, body := get(t, url+"example.com/secret@v1.0.0", "reader"); code != 200 || !strings.Contains(body, "example.com/secret v1.0.0 h1:") {
		t.Fatalf("reader lookup of a version the origin holds: %d %q", code, body)
	}
	if code, _, body := get(t, url+"example.com/team/absent@v1.0.0", "team"); code != 404 || !strings.Contains(body, "the origin corp.example does not hold it") {
		t.Fatalf("team lookup inside its patterns of a version the origin does not hold: %d %q", code, body)
	}
	before := lookups.Load()
	heldCode, heldHeader, heldBody := get(t, url+"example.com/secret@v1.0.0", "team")
	code, header, body := get(t, url+"example.com/absent@v1.0.0", "team")
	wantBody := strings.Replace(heldBody, "example.com/secret", "example.com/absent", 1)
	if heldCode != 404 || code != heldCode || body != wantBody || !sameHeaders(header, heldHeader) {
		t.Errorf("team lookups outside its patterns: of a version the origin holds %d %v %q, of one it does not %d %v %q",
			heldCode, heldHeader, heldBody, code, header, body)
	}
	if n := lookups.Load() - before; n != 0 {
		t.Errorf("%d lookups outside the patterns were forwarded to the origin", n)
	}
}
