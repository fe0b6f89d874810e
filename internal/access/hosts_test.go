package access

import (
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serveHost serves one anonymous request naming host.
func (s *setup) serveHost(method, path, host string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.Host = host
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w
}

func TestAllowedHost(t *testing.T) {
	allowed := []string{"sumd.corp.example", "*.mirrors.corp.example"}
	for host, want := range map[string]bool{
		"sumd.corp.example":        true,
		"SUMD.corp.example:8443":   true,
		"sumd.corp.example.":       true,
		"eu.mirrors.corp.example":  true,
		"a.b.mirrors.corp.example": true,
		"mirrors.corp.example":     false, // *. is what is under it
		"evilmirrors.corp.example": false,
		"rebind.attacker.example":  false,
		"sumd.corp.example.evil":   false,
		"127.0.0.1:8080":           true, // addresses cannot be rebound
		"10.1.2.3":                 true,
		"[::1]:8080":               true,
		"[fe80::1%eth0]:8080":      true, // what Go's client sends for a zoned address
		".mirrors.corp.example":    false,
		"a..mirrors.corp.example":  false,
		"localhost:8080":           true,
		"":                         false,
		"sumd.corp.example@evil":   false,
		"xsumd.corp.example":       false,
	} {
		if got := allowedHost(allowed, host); got != want {
			t.Errorf("allowedHost(%q) = %v, want %v", host, got, want)
		}
	}
	if !allowedHost(nil, "rebind.attacker.example") {
		t.Error("no allowed hosts: every host must be answered")
	}
}

// TestMisdirected: with allowed hosts, a request naming another host is
// answered 421 before the handler or any credential check, on every
// route; one naming an allowed host or an address is served.
func TestMisdirected(t *testing.T) {
	s := newSetup(t, Config{AllowedHosts: []string{"sumd.corp.example"}})
	for _, path := range []string{"/latest", "/lookup/example.com/m@v1.0.0", "/healthz", "/admin/add"} {
		w := s.serveHost("GET", path, "rebind.attacker.example:8080")
		if w.Code != 421 || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s for another host: %d %q, want 421 text/plain", path, w.Code, w.Body.String())
		}
	}
	if n := s.tg.calls.Load(); n != 0 {
		t.Errorf("%d misdirected requests reached the handler", n)
	}
	for _, host := range []string{"sumd.corp.example", "127.0.0.1:8080"} {
		if w := s.serveHost("GET", "/latest", host); w.Code != 200 {
			t.Errorf("/latest for %s: %d %q, want 200", host, w.Code, w.Body.String())
		}
	}
	if got := testutil.ToFloat64(s.layer.metrics.misdirects); got != 4 {
		t.Errorf("sumd_access_misdirected_total = %v, want 4", got)
	}
}
