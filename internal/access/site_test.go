package access

import (
	"net/http/httptest"
	"testing"
)

// TestCrossSite: a request a browser marks as made by another site (a
// page's image, script, frame or fetch) is refused with 403 before any
// handler, counted and logged, whatever its credentials: the browser
// attaches the Basic credentials it holds for sumd, or none are needed,
// and such a request could tell a page whether a version is recorded (a
// lookup's status, the search's redirect) or make an upstream fetch
// record one. A top-level navigation (a link followed from another site),
// a request of sumd's own pages and any client that sends no
// Sec-Fetch-Site (the go command, curl, Prometheus) pass.
func TestCrossSite(t *testing.T) {
	for _, mode := range []Config{{}, {Mode: ModeBasic}} {
		if mode.Mode == ModeBasic {
			mode.File = writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))
		}
		s := newSetup(t, mode)
		auth := basicAuth("auditor", auditorPass)
		for _, c := range []struct {
			method, site, mode, dest string
			code                     int
		}{
			{"GET", "cross-site", "no-cors", "image", 403},
			{"GET", "cross-site", "cors", "empty", 403},
			{"GET", "cross-site", "navigate", "iframe", 403},
			{"POST", "cross-site", "navigate", "document", 403},
			{"GET", "same-site", "no-cors", "script", 403},
			{"GET", "cross-site", "navigate", "document", 200},
			{"HEAD", "cross-site", "navigate", "document", 200},
			{"GET", "same-origin", "no-cors", "image", 200},
			{"GET", "none", "navigate", "document", 200},
			{"GET", "", "", "", 200},
		} {
			r := httptest.NewRequest(c.method, "/lookup/example.com/team/a@v1.0.0", nil)
			r.Header.Set("Authorization", auth)
			for k, v := range map[string]string{"Sec-Fetch-Site": c.site, "Sec-Fetch-Mode": c.mode, "Sec-Fetch-Dest": c.dest} {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			w := httptest.NewRecorder()
			s.h.ServeHTTP(w, r)
			if w.Code != c.code {
				t.Errorf("mode %q: %s with Sec-Fetch-Site %q, -Mode %q, -Dest %q: %d %q, want %d", mode.Mode, c.method, c.site, c.mode, c.dest, w.Code, w.Body, c.code)
			}
		}
		if n := s.tg.calls.Load(); n != 5 {
			t.Errorf("%d requests reached the handler, want 5", n)
		}
		if n := counter(t, s.layer.metrics.denied, "cross_site"); n != 5 {
			t.Errorf("sumd_access_denied_total{reason=cross_site} = %v, want 5", n)
		}
	}
}
