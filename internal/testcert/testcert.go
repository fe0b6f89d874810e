// Package testcert is test support: a throw-away certificate authority that
// issues server certificates for 127.0.0.1 and client certificates for
// mutual TLS, written as PEM files. It is imported only from _test.go files.
package testcert

import (
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
	"sync/atomic"
	"testing"
	"time"
)

// A CA is a certificate authority whose files live in Dir.
type CA struct {
	Dir  string
	File string // the CA certificate (PEM): what servers and clients trust
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	next atomic.Int64 // serial numbers
}

// New makes a CA in a temporary directory of t.
func New(t testing.TB) *CA {
	t.Helper()
	ca := &CA{Dir: t.TempDir()}
	ca.key = newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sumd test CA", Organization: []string{"sumd tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ca.key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if ca.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	ca.next.Store(1)
	ca.File = writePEM(t, ca.Dir, "ca.pem", "CERTIFICATE", der)
	return ca
}

// Pool returns a pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// A Cert is an issued certificate: its PEM files and the loaded pair.
type Cert struct {
	CertFile, KeyFile string
	Pair              tls.Certificate
	Subject           string // as Go prints it (RFC 2253)
}

// Server issues a certificate for 127.0.0.1, valid for 90 days (a server
// warns of one that expires within a week).
func (ca *CA) Server(t testing.TB) *Cert {
	return ca.ServerUntil(t, time.Now().Add(90*24*time.Hour))
}

// ServerUntil issues a certificate for 127.0.0.1 that expires at notAfter.
func (ca *CA) ServerUntil(t testing.TB, notAfter time.Time) *Cert {
	return ca.issue(t, "server", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    notAfter,
	})
}

// Client issues a client certificate for subject, valid from notBefore to
// notAfter (an expired one: both in the past).
func (ca *CA) Client(t testing.TB, name string, subject pkix.Name, notBefore, notAfter time.Time) *Cert {
	return ca.issue(t, name, &x509.Certificate{
		Subject:     subject,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
	})
}

func (ca *CA) issue(t testing.TB, name string, tmpl *x509.Certificate) *Cert {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(ca.next.Add(1))
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cert{
		CertFile: writePEM(t, ca.Dir, name+".pem", "CERTIFICATE", der),
		KeyFile:  writePEM(t, ca.Dir, name+".key", "PRIVATE KEY", keyDER),
		Subject:  tmpl.Subject.String(),
	}
	if c.Pair, err = tls.LoadX509KeyPair(c.CertFile, c.KeyFile); err != nil {
		t.Fatal(err)
	}
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
