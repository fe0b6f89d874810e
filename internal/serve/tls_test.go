package serve

import (
	"crypto/tls"
	"io"
	"net/http"
	"testing"

	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/testcert"
	"github.com/sumd-project/sumd/internal/tlog"
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
