package serve

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/testcert"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlscert"
)

// TestTLSListenersOwnConfig: with TLS on the main, admin and metrics
// listeners, each net/http server sets up HTTP/2 on its TLSConfig as it
// starts (NextProtos, PreferServerCipherSuites): one config shared by the
// three is written by three goroutines at once, which -race reports. Each
// listener still answers over HTTPS with HTTP/2 (the admin API with its
// 403 to a client without credentials), and the caller's config is left
// as it was given.
func TestTLSListenersOwnConfig(t *testing.T) {
	cfg, urls, logs := testConfig(t)
	ca := testcert.New(t)
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).Pair}, MinVersion: tls.VersionTLS12}
	given := cfg.TLS
	cfg.AdminListen, cfg.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	adm := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "admin handler\n") })
	cfg.Surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) { return l, adm, nil }
	url := serveTest(t, cfg, urls)
	found := map[string]string{}
	for _, m := range listenerURL.FindAllStringSubmatch(logs.String(), -1) {
		found[m[1]] = m[2]
	}
	if found["admin API"] == "" || found["metrics"] == "" {
		t.Fatalf("no listener URLs in the log:\n%s", logs)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
	defer c.CloseIdleConnections()
	for _, x := range []struct {
		url  string
		code int
	}{{url + "/latest", 200}, {found["admin API"] + "/admin/x", 403}, {found["metrics"] + "/metrics", 200}} {
		resp, err := c.Get(x.url)
		if err != nil {
			t.Fatalf("GET %s: %v", x.url, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != x.code || resp.ProtoMajor != 2 {
			t.Errorf("GET %s: %d over %s, want %d over HTTP/2", x.url, resp.StatusCode, resp.Proto, x.code)
		}
	}
	if len(given.NextProtos) != 0 || given.PreferServerCipherSuites {
		t.Errorf("the given TLS config was changed: NextProtos %q, PreferServerCipherSuites %v", given.NextProtos, given.PreferServerCipherSuites)
	}
}

// TestClientCARotation: a client certificate of a CA added to
// -tls-client-ca is refused before the file changes and accepted after,
// without a restart, with HTTP/2 still negotiated on the main listener; a
// changed file that cannot be loaded keeps the previous CAs and shows in
// /healthz; a CA removed from the file refuses its certificates again,
// also to a client resuming a TLS session.
func TestClientCARotation(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	ca1, ca2 := testcert.New(t), testcert.New(t)
	file := filepath.Join(t.TempDir(), "client-ca.pem")
	install := func(data []byte) {
		t.Helper()
		if err := os.WriteFile(file+".new", data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
	pem1, err := os.ReadFile(ca1.File)
	if err != nil {
		t.Fatal(err)
	}
	pem2, err := os.ReadFile(ca2.File)
	if err != nil {
		t.Fatal(err)
	}
	install(pem1)
	cas, err := tlscert.NewCAPool(file, cfg.Logger)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{ca1.Server(t).Pair}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: cas.Pool()}
	cfg.ClientCAs = cas
	cfg.Logger = slog.New(slog.DiscardHandler) // the refused handshakes below
	url := serveTest(t, cfg, urls)
	old := ca1.Client(t, "old", pkix.Name{CommonName: "old"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	rotated := ca2.Client(t, "new", pkix.Name{CommonName: "new"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	// get fetches path presenting c, on a connection of its own, which
	// resumes a TLS session of an earlier one of c where it can.
	sessions := map[*testcert.Cert]tls.ClientSessionCache{}
	get := func(c *testcert.Cert, path string) (*http.Response, string, error) {
		if sessions[c] == nil {
			sessions[c] = tls.NewLRUClientSessionCache(16)
		}
		tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: ca1.Pool(), Certificates: []tls.Certificate{c.Pair}, ClientSessionCache: sessions[c]}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(url + path)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, string(body), err
	}
	// until polls path with c until ok, the file being read at most once
	// a second.
	until := func(c *testcert.Cert, path string, ok func(*http.Response, string, error) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, body, err := get(c, path)
			if ok(resp, body, err) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s as %s: %q, %v; not as wanted within 10s", path, c.Subject, body, err)
			}
		}
	}
	h2 := func(resp *http.Response, _ string, err error) bool {
		return err == nil && resp.StatusCode == 200 && resp.ProtoMajor == 2
	}
	for _, c := range []*testcert.Cert{old, old} { // a new connection each
		if resp, body, err := get(c, "/latest"); !h2(resp, body, err) {
			t.Fatalf("a certificate of the CA in the file: %v", err)
		}
	}
	if _, _, err := get(rotated, "/latest"); err == nil {
		t.Fatal("a certificate of a CA not in the file was accepted")
	}
	install(append(pem1, pem2...))
	until(rotated, "/latest", h2)
	install([]byte("not PEM\n"))
	until(old, "/healthz", func(_ *http.Response, body string, _ error) bool { return strings.Contains(body, "tls-client-ca") })
	for _, c := range []*testcert.Cert{old, rotated} {
		if resp, body, err := get(c, "/latest"); !h2(resp, body, err) {
			t.Errorf("%s after a file that cannot be loaded: %v", c.Subject, err)
		} else if !resp.TLS.DidResume {
			t.Errorf("%s resumed no session: the refusal below would not cover resumption", c.Subject)
		}
	}
	install(pem1)
	until(rotated, "/latest", func(_ *http.Response, _ string, err error) bool { return err != nil })
}
