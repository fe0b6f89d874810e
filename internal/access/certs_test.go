package access

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
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

// TestCertificateRepeatedCN: pkix.Name keeps one CN of several, so a
// certificate whose subject holds two prints as if it held the last alone;
// such a subject (or a repeated serialNumber, the other attribute kept
// once) is refused with 403, never mapped.
func TestCertificateRepeatedCN(t *testing.T) {
	ca := testcert.New(t)
	cn, o, serial := asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.ObjectIdentifier{2, 5, 4, 10}, asn1.ObjectIdentifier{2, 5, 4, 5}
	valid := func(name string, subject pkix.Name) *testcert.Cert {
		return ca.Client(t, name, subject, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	}
	forged := []*testcert.Cert{
		valid("two-cns", pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: o, Value: "Corp"}, {Type: cn, Value: "intruder.corp.example"}, {Type: cn, Value: "replica-1.corp.example"}}}),
		valid("two-serials", pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: o, Value: "Corp"}, {Type: serial, Value: "7"}, {Type: cn, Value: "replica-1.corp.example"}, {Type: serial, Value: "1"}}}),
	}
	certMap := writeSecret(t, t.TempDir(), "roles", "replica:CN=replica-1.corp.example,O=Corp:auditor\nserial:SERIALNUMBER=1,CN=replica-1.corp.example,O=Corp:auditor\n")
	s := newSetup(t, Config{CertFile: certMap})
	srv := httptest.NewUnstartedServer(s.h)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool(), Certificates: []tls.Certificate{ca.Server(t).Pair}}
	srv.StartTLS()
	defer srv.Close()
	for _, cert := range forged {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert.Pair}}}}
		resp, err := c.Get(srv.URL + "/tile/8/data/000")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("certificate with subject %s: %d %q, want 403", cert.Subject, resp.StatusCode, body)
		}
	}
	if n := s.tg.calls.Load(); n != 0 {
		t.Errorf("%d requests reached the handler, want none", n)
	}
	// The subject in its usual form still maps.
	good := valid("replica", pkix.Name{CommonName: "replica-1.corp.example", Organization: []string{"Corp"}})
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{good.Pair}}}}
	resp, err := c.Get(srv.URL + "/tile/8/data/000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("mapped certificate: %d, want 200", resp.StatusCode)
	}
}

// TestCertificateBehindProxyAuth: a server that takes client certificates
// and no passwords or tokens (but the admin token) goes by a verified
// certificate when the request also carries an Authorization header that
// is not the admin token: nginx in front, authenticating its own users
// with auth_basic and itself to sumd with a certificate (docs/proxies.md),
// forwards their header, and every request got 401 "wrong credentials"
// (without a challenge) though the proxy's certificate maps to a role.
// The admin token in the header still authenticates as the admin token,
// and where sumd takes passwords too, a wrong one is still refused.
func TestCertificateBehindProxyAuth(t *testing.T) {
	ca := testcert.New(t)
	proxy := ca.Client(t, "proxy", pkix.Name{CommonName: "proxy.corp.example", Organization: []string{"Corp"}}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	dir := t.TempDir()
	certMap := writeSecret(t, dir, "roles", "nginx:"+proxy.Subject+":auditor\n")
	tokenFile := writeSecret(t, dir, "token", adminToken+"\n")
	for _, c := range []struct {
		name string
		cfg  Config
		auth string
		code int
		text string
	}{
		{"basic", Config{CertFile: certMap}, basicAuth("alice", "nginx-password"), 200, "ok nginx"},
		{"bearer", Config{CertFile: certMap}, "Bearer some-sso-token-0123456789", 200, "ok nginx"},
		{"other scheme", Config{CertFile: certMap}, "Negotiate abc", 200, "ok nginx"},
		{"admin token", Config{CertFile: certMap, AdminTokenFile: tokenFile, AdminAPI: true}, "Bearer " + adminToken, 200, "ok admin-token"},
		{"not the admin token", Config{CertFile: certMap, AdminTokenFile: tokenFile, AdminAPI: true}, "Bearer " + adminToken + "x", 200, "ok nginx"},
		{"wrong password where sumd takes them", Config{Mode: ModeBasic, File: writeSecret(t, dir, "htpasswd", htpasswd(t)), CertFile: certMap}, basicAuth("reader", "wrong"), 401, "wrong credentials"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSetup(t, c.cfg)
			srv := httptest.NewUnstartedServer(s.h)
			srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.Pool(), Certificates: []tls.Certificate{ca.Server(t).Pair}}
			srv.StartTLS()
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{proxy.Pair}}}}
			req, _ := http.NewRequest("GET", srv.URL+"/tile/8/data/000", nil)
			req.Header.Set("Authorization", c.auth)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.code || !strings.Contains(string(body), c.text) {
				t.Errorf("certificate and Authorization %q: %d %q, want %d %q", c.auth, resp.StatusCode, body, c.code, c.text)
			}
		})
	}
}

// TestCertificatesOnlyHeaderWithout: where client certificates are the
// only credentials (with the admin token, if any), a request without a
// certificate but with an Authorization header that is not the admin
// token got 401 without WWW-Authenticate, which RFC 9110 requires: there
// is no scheme to challenge. It is answered as one without credentials
// is, 403 "a client certificate is required"; credentials in the query
// get their refusal as a 403. On /admin/, where the admin
// token is a Bearer credential to ask for, a wrong one still gets its 401,
// with the challenge.
func TestCertificatesOnlyHeaderWithout(t *testing.T) {
	dir := t.TempDir()
	certMap := writeSecret(t, dir, "roles", "nginx:CN=proxy.corp.example,O=Corp:auditor\n")
	tokenFile := writeSecret(t, dir, "token", adminToken+"\n")
	for _, cfg := range []Config{{CertFile: certMap}, {CertFile: certMap, AdminTokenFile: tokenFile, AdminAPI: true}} {
		s := newSetup(t, cfg)
		none := s.do("GET", "/latest", "")
		want(t, "no certificate, no header", none, 403, "a client certificate is required")
		for _, auth := range []string{basicAuth("alice", "pw"), "Bearer some-sso-token-0123456789", "Negotiate abc", "Bearer " + adminToken + "x"} {
			w := s.do("GET", "/latest", auth)
			if w.Code != none.Code || w.Body.String() != none.Body.String() || !equalHeaders(w.Header(), none.Header()) {
				t.Errorf("admin token %v, no certificate, Authorization %q: %d %v %q; without the header: %d %v %q",
					cfg.AdminTokenFile != "", auth, w.Code, w.Header(), w.Body, none.Code, none.Header(), none.Body)
			}
		}
		// Credentials in the query are refused, with a 403 here.
		want(t, "credentials in the query", s.do("GET", "/latest?access_token=x", ""), 403, "credentials in the URL query are refused")
		if cfg.AdminTokenFile != "" {
			w := s.do("POST", "/admin/fetch", "Bearer "+adminToken+"x")
			want(t, "wrong admin token", w, 401, "wrong credentials")
			if w.Header().Get("WWW-Authenticate") != `Bearer realm="sumd"` {
				t.Errorf("wrong admin token: WWW-Authenticate %q, want the Bearer challenge", w.Header().Values("WWW-Authenticate"))
			}
			want(t, "admin token", s.do("POST", "/admin/fetch", "Bearer "+adminToken), 200, "ok admin-token")
		}
	}
}

// TestHealthzCertificateNotLogged: /healthz answers a client whose
// certificate is not in the role map (or whose subject is ambiguous) as
// one without credentials, and a load balancer probing it every few
// seconds with such a certificate wrote an Info line per probe; those
// probes are answered without a line, while the same certificates on a
// route that needs a role are still logged with their subject.
func TestHealthzCertificateNotLogged(t *testing.T) {
	ca := testcert.New(t)
	valid := func(name string, subject pkix.Name) *x509.Certificate {
		c := ca.Client(t, name, subject, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		return c.Pair.Leaf
	}
	cn := asn1.ObjectIdentifier{2, 5, 4, 3}
	unmapped := valid("balancer", pkix.Name{CommonName: "balancer.corp.example"})
	ambiguous := valid("two-cns", pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: cn, Value: "a"}, {Type: cn, Value: "b"}}})
	certMap := writeSecret(t, t.TempDir(), "roles", "replica:CN=replica-1.corp.example,O=Corp:auditor\n")
	s := newSetup(t, Config{CertFile: certMap})
	get := func(cert *x509.Certificate, path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", path, nil)
		r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}}
		w := httptest.NewRecorder()
		s.h.ServeHTTP(w, r)
		return w
	}
	for _, cert := range []*x509.Certificate{unmapped, ambiguous} {
		for range 3 {
			want(t, "probe of /healthz with "+cert.Subject.String(), get(cert, "/healthz"), 200, "ok <none>")
		}
	}
	if logs := s.logs.String(); logs != "" {
		t.Errorf("probes of /healthz logged:\n%s", logs)
	}
	want(t, "unmapped certificate on /latest", get(unmapped, "/latest"), 403, "not mapped to a role")
	want(t, "ambiguous certificate on /latest", get(ambiguous, "/latest"), 403, "ambiguous")
	logs := s.logs.String()
	if !strings.Contains(logs, `"client certificate not in the role map" subject="CN=balancer.corp.example"`) || !strings.Contains(logs, `"client certificate refused"`) {
		t.Errorf("the refusals on /latest are not logged with their subject:\n%s", logs)
	}
}
