package main

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/testcert"
)

// TestClientCertReload: the transport a mirror served by sumd serve
// follows its origin with lives as long as the process, so a client
// certificate renewed on disk (renamed over the files, as cert-manager
// does) must be presented without a restart, as the server's own is:
// the one read at start expires within a day with a short-lived CA.
func TestClientCertReload(t *testing.T) {
	ca := testcert.New(t)
	srv := ca.Server(t)
	subject := func(cn string) pkix.Name { return pkix.Name{CommonName: cn, Organization: []string{"Corp"}} }
	first := ca.Client(t, "first", subject("first.corp.example"), time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	renewed := ca.Client(t, "renewed", subject("renewed.corp.example"), time.Now().Add(-time.Hour), time.Now().Add(48*time.Hour))
	var seen atomic.Pointer[string]
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := r.TLS.PeerCertificates[0].Subject.CommonName
		seen.Store(&cn)
		// A new handshake for each request: the certificate is chosen
		// in the handshake.
		w.Header().Set("Connection", "close")
	}))
	origin.TLS = &tls.Config{Certificates: []tls.Certificate{srv.Pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	origin.StartTLS()
	t.Cleanup(origin.Close)

	cert, err := clientCert(config.ClientCert{ClientCert: first.CertFile, ClientKey: first.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
	client := &http.Client{Transport: sumdbCertTransport(cert, origin.URL)(base)}
	get := func() string {
		t.Helper()
		resp, err := client.Get(origin.URL + "/latest")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return *seen.Load()
	}
	if cn := get(); cn != "first.corp.example" {
		t.Fatalf("the origin saw %q, want first.corp.example", cn)
	}
	for from, to := range map[string]string{renewed.CertFile: first.CertFile, renewed.KeyFile: first.KeyFile} {
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the renewed client certificate at the origin", func() bool { return get() == "renewed.corp.example" })
}
