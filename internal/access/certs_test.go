package access

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testcert"
)

// TestCertificates: over mutual TLS, a verified certificate whose subject
// is in the map authenticates with its role; an unmapped one is refused
// with 403; an expired one never completes the handshake; without a
// certificate, basic credentials still work where the listener allows it.
func TestCertificates(t *testing.T) {
	ca := testcert.New(t)
	replica := ca.Client(t, "replica", pkix.Name{CommonName: "replica-1.corp.example", Organization: []string{"Corp"}}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	stranger := ca.Client(t, "stranger", pkix.Name{CommonName: "stranger"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	expired := ca.Client(t, "expired", pkix.Name{CommonName: "replica-1.corp.example", Organization: []string{"Corp"}}, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	if replica.Subject != "CN=replica-1.corp.example,O=Corp" {
		t.Fatalf("subject %q, want the RFC 2253 form the map documents", replica.Subject)
	}
	dir := t.TempDir()
	certMap := writeSecret(t, dir, "roles", "replica:"+replica.Subject+":auditor\n")

	for _, mode := range []struct {
		name  string
		cfg   Config
		auth  tls.ClientAuthType
		noneW int // status without a certificate or credentials
	}{
		{"certificates only, required", Config{CertFile: certMap}, tls.RequireAndVerifyClientCert, 0},
		{"certificates only, if given", Config{CertFile: certMap}, tls.VerifyClientCertIfGiven, 403},
		{"basic and certificates", Config{Mode: ModeBasic, File: writeSecret(t, dir, "htpasswd", htpasswd(t)), CertFile: certMap}, tls.VerifyClientCertIfGiven, 401},
	} {
		t.Run(mode.name, func(t *testing.T) {
			s := newSetup(t, mode.cfg)
			srv := httptest.NewUnstartedServer(s.h)
			srv.TLS = &tls.Config{ClientAuth: mode.auth, ClientCAs: ca.Pool(), Certificates: []tls.Certificate{ca.Server(t).Pair}}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failures below
			srv.StartTLS()
			defer srv.Close()
			get := func(cert *testcert.Cert, path string) (int, string, error) {
				cfg := &tls.Config{RootCAs: ca.Pool()}
				if cert != nil {
					cfg.Certificates = []tls.Certificate{cert.Pair}
				}
				c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
				resp, err := c.Get(srv.URL + path)
				if err != nil {
					return 0, "", err
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(body), nil
			}
			if code, body, err := get(replica, "/tile/8/data/000"); err != nil || code != 200 || body != "ok replica\n" {
				t.Errorf("mapped certificate: %d %q %v, want 200 as replica", code, body, err)
			}
			if code, body, _ := get(replica, "/admin/fetch"); code != 200 {
				t.Errorf("mapped auditor on /admin/ without the admin API: %d %q, want the handler (the server's 404)", code, body)
			}
			if code, body, err := get(stranger, "/latest"); code != 403 || !strings.Contains(body, "not mapped to a role") {
				t.Errorf("unmapped certificate: %d %q %v, want 403", code, body, err)
			}
			if _, _, err := get(expired, "/latest"); err == nil || !strings.Contains(err.Error(), "tls") {
				t.Errorf("expired certificate: %v, want a TLS handshake failure", err)
			}
			code, _, err := get(nil, "/latest")
			switch {
			case mode.noneW == 0 && err == nil:
				t.Errorf("no certificate where one is required: %d, want a handshake failure", code)
			case mode.noneW != 0 && code != mode.noneW:
				t.Errorf("no certificate: %d %v, want %d", code, err, mode.noneW)
			}
			if n := s.tg.calls.Load(); n != 2 {
				t.Errorf("%d requests reached the handler, want 2", n)
			}
			if !strings.Contains(s.logs.String(), `subject="CN=stranger"`) {
				t.Errorf("the log does not name the unmapped subject:\n%s", s.logs)
			}
		})
	}
}
