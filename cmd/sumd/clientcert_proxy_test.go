package main

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testcert"
	"github.com/sumd-project/sumd/internal/tlscert"
)

// TestClientCertNotToProxy: an https:// proxy that asks for a client
// certificate gets none; the origin behind it, which requires one, gets
// -client-cert through the tunnel. The transport's TLS settings apply to
// the proxy's handshake too, so the certificate went to both.
func TestClientCertNotToProxy(t *testing.T) {
	ca := testcert.New(t)
	srv := ca.Server(t)
	aud := ca.Client(t, "aud", pkix.Name{CommonName: "aud.corp.example"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
	origin.TLS = &tls.Config{Certificates: []tls.Certificate{srv.Pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	origin.StartTLS()
	defer origin.Close()
	var tunnels, toProxy atomic.Int32
	proxy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		toProxy.Add(int32(len(r.TLS.PeerCertificates)))
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer up.Close()
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		tunnels.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
		go io.Copy(up, c)
		io.Copy(c, up)
	}))
	proxy.TLS = &tls.Config{Certificates: []tls.Certificate{srv.Pair}, ClientAuth: tls.RequestClientCert}
	proxy.StartTLS()
	defer proxy.Close()

	cert, err := tlscert.NewClient(aud.CertFile, aud.KeyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	proxyURL, _ := url.Parse(proxy.URL)
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.Proxy = http.ProxyURL(proxyURL) // ProxyFromEnvironment skips a loopback origin
	base.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
	tr := hostCertTransport(base, cert, hostOf(origin.URL))
	defer tr.own.(*http.Transport).CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(origin.URL + "/")
	if err != nil {
		t.Fatalf("GET the origin through the proxy: %v", err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusOK || tunnels.Load() != 1 || !tr.presented():
		t.Errorf("GET the origin through the proxy: %s, %d tunnels, presented %v; want 200 through one tunnel, the certificate presented", resp.Status, tunnels.Load(), tr.presented())
	case toProxy.Load() != 0:
		t.Errorf("the client certificate was presented to the proxy")
	}
}

// TestClientCertToOriginSpelledOtherwise: proxyHopTLS presents the
// certificate when the hop's address is the origin's, but net/http names
// that address as it dials it (canonicalAddr): an internationalized
// host in its ASCII form (xn--). An origin spelled otherwise in its URL
// got no certificate, and refused the client, where the transport's TLS
// settings presented it before. And a URL with an empty port
// (https://sum.example:) never reached the origin's transport, as
// net/http drops that port from a request's host (NewRequest).
func TestClientCertToOriginSpelledOtherwise(t *testing.T) {
	ca := testcert.New(t)
	srv := ca.Server(t)
	aud := ca.Client(t, "aud", pkix.Name{CommonName: "aud.corp.example"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }))
	origin.TLS = &tls.Config{Certificates: []tls.Certificate{srv.Pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	origin.StartTLS()
	defer origin.Close()
	cert, err := tlscert.NewClient(aud.CertFile, aud.KeyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{"https://bücher.example", "https://sum.example:"} {
		t.Run(base, func(t *testing.T) {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.Proxy = nil
			// Every name reaches the origin, whose certificate names
			// 127.0.0.1.
			tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return new(net.Dialer).DialContext(ctx, network, origin.Listener.Addr().String())
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
			ht := hostCertTransport(tr, cert, hostOf(base))
			defer ht.own.(*http.Transport).CloseIdleConnections()
			resp, err := (&http.Client{Transport: ht}).Get(base + "/")
			if err != nil {
				t.Fatalf("GET %s/ (the origin): %v; want the certificate presented", base, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !ht.presented() {
				t.Errorf("GET %s/ (the origin): %s, presented %v; want 200, the certificate presented", base, resp.Status, ht.presented())
			}
		})
	}
}
