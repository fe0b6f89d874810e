package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestGoCommandHTTPS serves sumd over HTTPS (-tls-cert, -tls-key) and has
// the real go command verify a download through it, and through its read
// listener, trusting the test's self-signed certificate through
// SSL_CERT_FILE; then a renewed certificate, without a restart.
func TestGoCommandHTTPS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	proxyDir := filepath.Join(dir, "proxy")
	proxyURL, err := testproxy.Build(proxyDir, special[:1])
	if err != nil {
		t.Fatal(err)
	}
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	key := filepath.Join(dir, "keys", e2eName+".key")
	db := filepath.Join(dir, "sumd.db")
	m := module.Version{Path: special[0].Path, Version: special[0].Version}
	sumd(t, "add", "-create", "-db", db, "-key", key, m.String(), testproxy.ZipPath(proxyDir, m))

	s := startServer(t, "-db", db, "-key", key, "-tls-cert", certFile, "-tls-key", keyFile, "-read-listen", "127.0.0.1:0")
	if !strings.HasPrefix(s.url, "https://127.0.0.1:") {
		t.Fatalf("sumd serve with TLS printed URL %q, want https://", s.url)
	}
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+proxyURL, "GOSUMDB="+s.gosumdb, "SSL_CERT_FILE="+certFile)
	download(t, g, special[0])

	// The read listener speaks TLS too, with the same certificate.
	read := readListenerURL.FindStringSubmatch(s.stderr.String())
	if read == nil || !strings.HasPrefix(read[1], "https://127.0.0.1:") {
		t.Fatalf("read listener URL %q, want https://; stderr:\n%s", read, s.stderr)
	}
	vkey, _, _ := strings.Cut(s.gosumdb, " ")
	viaRead := testproxy.NewGo(t)
	viaRead.Env = append(viaRead.Env, "GOPROXY="+proxyURL, "GOSUMDB="+vkey+" "+read[1], "SSL_CERT_FILE="+certFile)
	download(t, viaRead, special[0])

	// Without trusting the certificate, the go command refuses the server.
	untrusting := testproxy.NewGo(t)
	untrusting.Env = append(untrusting.Env, "GOPROXY="+proxyURL, "GOSUMDB="+s.gosumdb, "SSL_CERT_FILE="+filepath.Join(dir, "none.pem"))
	if out, err := untrusting.Run("mod", "download", m.String()); err == nil || !strings.Contains(out, "certificate") {
		t.Fatalf("go command without the certificate: %v\n%s\nwant a certificate error", err, out)
	}

	// A renewed certificate, renamed over the files as cert-manager and
	// certbot do, is served without a restart, on both listeners, once
	// the files' second of grace has passed: handshakes (which make sumd
	// look at the files, at most once a second) until each listener
	// presents it.
	newCert, newKey := selfSigned(t, t.TempDir())
	renewedDER := certDER(t, newCert)
	for from, to := range map[string]string{newCert: certFile, newKey: keyFile} {
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{s.url, read[1]} {
		waitFor(t, "the renewed certificate at "+u, func() bool { return bytes.Equal(servedCert(t, u), renewedDER) })
	}
	renewed := testproxy.NewGo(t)
	renewed.Env = append(renewed.Env, "GOPROXY="+proxyURL, "GOSUMDB="+s.gosumdb, "SSL_CERT_FILE="+certFile)
	download(t, renewed, special[0])
	renewedRead := testproxy.NewGo(t)
	renewedRead.Env = append(renewedRead.Env, "GOPROXY="+proxyURL, "GOSUMDB="+vkey+" "+read[1], "SSL_CERT_FILE="+certFile)
	download(t, renewedRead, special[0])
	if !strings.Contains(s.stderr.String(), "loaded the changed TLS certificate") {
		t.Errorf("no log line for the renewed certificate:\n%s", s.stderr)
	}

	if _, errOut, err := sumdRun(t, "serve", "-db", db, "-key", key, "-tls-cert", certFile, "-tls-key", certFile); err == nil || !strings.Contains(errOut, "failed to load TLS certificate") {
		t.Errorf("serve with a wrong TLS key: %v\n%s", err, errOut)
	}
}

// certDER returns the certificate of a PEM file.
func certDER(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s holds no PEM block", file)
	}
	return b.Bytes
}

// servedCert returns the certificate a TLS handshake with the server of
// URL u presents (unverified: the test compares it).
func servedCert(t *testing.T, u string) []byte {
	t.Helper()
	host := strings.TrimPrefix(u, "https://")
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", host, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sumd test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour), // beyond tlscert's week of warning
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
