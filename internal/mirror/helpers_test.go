package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/testlog"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

const testName = "sum.origin.example"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testRecord returns a distinct valid record: module i at version j.
func testRecord(i, j int) gosum.Record {
	path := fmt.Sprintf("example.com/mod%d", i)
	if i%10 == 3 {
		path = fmt.Sprintf("golang.org/x/mod%d", i)
	}
	version := fmt.Sprintf("v1.%d.0", j)
	h := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
	}
	return gosum.Record{Path: path, Version: version, Hash: h(path + version), GoMod: h(path + version + "/go.mod")}
}

// An origin is a primary log served by internal/server over loopback,
// behind a switch that tests flip to make it misbehave.
type origin struct {
	t    testing.TB
	key  *itlog.Key
	log  *itlog.Log
	srv  *httptest.Server
	mu   sync.Mutex
	next http.Handler // what serves now; the honest handler by default
	h    http.Handler
}

func newOrigin(t testing.TB, n int) *origin {
	t.Helper()
	skey, _, err := itlog.GenerateKey(testName)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := itlog.ParseKey(skey)
	o := &origin{t: t, key: key, log: openPrimary(t, key)}
	o.grow(0, n)
	o.h = server.New(testName, o.log, server.Options{Logger: quiet})
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		h := o.next
		o.mu.Unlock()
		if h == nil {
			h = o.h
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func openPrimary(t testing.TB, key *itlog.Key) *itlog.Log {
	l, err := itlog.OpenStore(itlog.NewMemStore(), itlog.Options{Keys: []*itlog.Key{key}, Create: true, Logger: quiet, MaxBatch: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// grow adds records for modules from to from+n-1.
func (o *origin) grow(from, n int) {
	o.t.Helper()
	addRecords(o.t, o.log, from, n)
}

func addRecords(t testing.TB, l *itlog.Log, from, n int) {
	t.Helper()
	for start := from; start < from+n; start += itlog.MaxAddRecords {
		var recs []gosum.Record
		for i := start; i < min(from+n, start+itlog.MaxAddRecords); i++ {
			recs = append(recs, testRecord(i, 1))
		}
		if _, err := l.Add(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
	}
}

// serve makes h answer instead of the honest origin; nil restores it.
func (o *origin) serve(h http.Handler) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next = h
}

func (o *origin) head() []byte {
	h, err := o.log.Signed(context.Background())
	if err != nil {
		o.t.Fatal(err)
	}
	return h
}

// newMirror opens an empty mirror of o in a memory store.
func newMirror(t testing.TB, o *origin) (*itlog.Log, *itlog.MemStore) {
	t.Helper()
	s := itlog.NewMemStore()
	l, err := itlog.OpenStore(s, itlog.Options{VerifierKeys: []string{o.key.VerifierKey()}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, s
}

func newFollower(t testing.TB, o *origin, l *itlog.Log, mod func(*Options)) *Follower {
	t.Helper()
	c, err := sumdbclient.New(o.srv.URL, sumdbclient.Options{Backoff: time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Log: l, Client: c, Verifiers: vs, Logger: quiet, Step: 1024}
	if mod != nil {
		mod(&opts)
	}
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sameAs checks that mirror m serves origin o's head, tiles and exactly
// the records holds says it holds.
func sameAs(t testing.TB, m *itlog.Log, o *itlog.Log, holds func(int64) bool) {
	t.Helper()
	testlog.SameAs(t, m, o, holds)
}

func all(int64) bool { return true }

// tamper returns a handler serving the honest origin's answers, changed by
// change for the paths it matches.
func (o *origin) tamper(match func(path string) bool, change func([]byte) []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		o.h.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK && match(r.URL.Path) {
			body = change(bytes.Clone(body))
		}
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	})
}

func isTile(level string) func(string) bool {
	return func(p string) bool { return strings.HasPrefix(p, "/tile/8/"+level+"/") }
}
