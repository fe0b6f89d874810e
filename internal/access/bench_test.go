package access

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/tlog"
)

// BenchmarkLayer measures what the access layer adds to one request, in
// front of a handler that does nothing: the cost a lookup or tile request
// pays for its credentials. basic/bcrypt is basic without the cache (every
// request runs bcrypt, at htpasswd -B's default cost 5 and at cost 10, the
// bcrypt package's default); basic/cached is a go command's burst after
// its first request.
func BenchmarkLayer(b *testing.B) {
	defer func(r time.Duration) { recheck = r }(recheck)
	recheck = time.Second // the server's
	dir := b.TempDir()
	h5, _ := bcrypt.GenerateFromPassword([]byte(readerPass), 5)
	h10, _ := bcrypt.GenerateFromPassword([]byte(readerPass), 10)
	basicFile := writeSecret(b, dir, "htpasswd", "r5:"+string(h5)+"\nr10:"+string(h10)+"\n")
	for _, c := range []struct {
		name, auth string
		cfg        Config
		nocache    bool
	}{
		{"none", "", Config{}, false},
		{"bearer", "Bearer " + readerToken, Config{Mode: ModeBearer, File: writeSecret(b, dir, "tokens", "ci:"+readerToken+"\n")}, false},
		{"basic/cached", basicAuth("r10", readerPass), Config{Mode: ModeBasic, File: basicFile}, false},
		{"basic/bcrypt-cost5", basicAuth("r5", readerPass), Config{Mode: ModeBasic, File: basicFile}, true},
		{"basic/bcrypt-cost10", basicAuth("r10", readerPass), Config{Mode: ModeBasic, File: basicFile}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := newSetup(b, c.cfg)
			s.logs = nil
			if c.nocache {
				s.layer.basic.verified = newVerifiedCache(0)
			}
			ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
			h := s.layer.Wrap(ok)
			r := httptest.NewRequest("GET", "/tile/8/0/000", nil)
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			h.ServeHTTP(httptest.NewRecorder(), r) // the first request of a burst
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkLookup measures lookups over loopback HTTP through the access
// layer and the real protocol handler on a log of 1,000 records, as the go
// command makes them: per request, with a connection kept alive. Compare
// basic/cached with none for what authentication costs a go command's
// burst, and basic/bcrypt for what it would cost without the cache.
func BenchmarkLookup(b *testing.B) {
	defer func(r time.Duration) { recheck = r }(recheck)
	recheck = time.Second
	dir := b.TempDir()
	h5, _ := bcrypt.GenerateFromPassword([]byte(readerPass), 5) // htpasswd -B's default cost
	basicFile := writeSecret(b, dir, "htpasswd", "dev:"+string(h5)+"\n")
	ops := benchLog(b, 1000)
	for _, c := range []struct {
		name, auth string
		cfg        Config
		nocache    bool
	}{
		{"none", "", Config{}, false},
		{"bearer", "Bearer " + readerToken, Config{Mode: ModeBearer, File: writeSecret(b, dir, "tokens", "ci:"+readerToken+"\n")}, false},
		{"basic/cached", basicAuth("dev", readerPass), Config{Mode: ModeBasic, File: basicFile}, false},
		{"basic/bcrypt", basicAuth("dev", readerPass), Config{Mode: ModeBasic, File: basicFile}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := newSetup(b, c.cfg)
			if c.nocache {
				s.layer.basic.verified = newVerifiedCache(0)
			}
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			srv := httptest.NewServer(s.layer.Wrap(server.New(testDB, ops, server.Options{Logger: quiet})))
			defer srv.Close()
			client := srv.Client()
			i := 0
			for b.Loop() {
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/lookup/example.com/bench%d@v1.0.0", srv.URL, i%1000), nil)
				i++
				if c.auth != "" {
					req.Header.Set("Authorization", c.auth)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s", resp.Status)
				}
			}
		})
	}
}

// benchLog is a real log of n records.
func benchLog(b *testing.B, n int) *tlog.Log {
	skey, _, err := tlog.GenerateKey(testDB)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	l, err := tlog.Open(filepath.Join(b.TempDir(), "sumd.db"), tlog.Options{Keys: []*tlog.Key{key}, Create: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	recs := make([]gosum.Record, n)
	for i := range recs {
		sum := sha256.Sum256(fmt.Appendf(nil, "%d", i))
		h := "h1:" + base64.StdEncoding.EncodeToString(sum[:])
		recs[i] = gosum.Record{Path: fmt.Sprintf("example.com/bench%d", i), Version: "v1.0.0", Hash: h, GoMod: h}
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		b.Fatal(err)
	}
	return l
}
