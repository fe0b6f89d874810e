package access

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
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
