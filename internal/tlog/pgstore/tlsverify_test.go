package pgstore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestUnverifiedHosts: the hosts reached over the network without a
// check of the server's certificate are named (pgx's default sslmode,
// prefer, included); verify-full, verify-ca, require with a root
// certificate, unix sockets and loopback addresses are not.
func TestUnverifiedHosts(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, selfSigned(t), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		url  string
		want []string
	}{
		{"postgres://sumd@db.example.com/sumd", []string{"db.example.com"}},
		{"postgres://sumd@db.example.com/sumd?sslmode=require", []string{"db.example.com"}},
		{"postgres://sumd@db.example.com/sumd?sslmode=disable", []string{"db.example.com"}},
		{"postgres://sumd@db1,db2/sumd?sslmode=prefer&target_session_attrs=primary", []string{"db1", "db2"}},
		{"postgres://sumd@db.example.com/sumd?sslmode=verify-full", nil},
		{"postgres://sumd@db.example.com/sumd?sslmode=verify-ca&sslrootcert=" + ca, nil},
		{"postgres://sumd@db.example.com/sumd?sslmode=require&sslrootcert=" + ca, nil},
		{"postgres:///sumd?host=/run/postgresql", nil},
		{"postgres://sumd@localhost/sumd", nil},
		{"postgres://sumd@127.0.0.1/sumd", nil},
		{"postgres://sumd@[::1]/sumd", nil},
	} {
		cfg, err := pgconn.ParseConfig(c.url)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if got := unverifiedHosts(cfg); !slices.Equal(got, c.want) {
			t.Errorf("unverifiedHosts(%s) = %q, want %q", c.url, got, c.want)
		}
	}
}

// TestOpenWarnsUnverified: Open warns, before it connects, of a URL that
// reaches the database without verifying its certificate.
func TestOpenWarnsUnverified(t *testing.T) {
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := Open(ctx, "postgres://sumd@192.0.2.1/sumd?connect_timeout=1", Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil {
		s.Close()
	}
	if !strings.Contains(logs.String(), "verify-full") || !strings.Contains(logs.String(), "192.0.2.1") {
		t.Errorf("Open of a URL with the default sslmode logged %q, want a warning naming the host and sslmode=verify-full", logs.String())
	}
}

// selfSigned returns a self-signed CA certificate, PEM-encoded.
func selfSigned(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
