package tlscert

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testcert"
	"github.com/sumd-project/sumd/internal/testlog"
)

// TestCAPoolReload: a changed CA file is read at the next check past the
// recheck (a rename over, as cert-manager does); one holding no
// certificate, or gone, keeps the previous pool, is logged once and shown
// as a problem naming no path; a good file again clears it.
func TestCAPoolReload(t *testing.T) {
	defer func(d time.Duration) { recheck = d }(recheck)
	recheck = 0
	ca1, ca2 := testcert.New(t), testcert.New(t)
	file := filepath.Join(t.TempDir(), "ca.pem")
	install := func(data []byte) {
		t.Helper()
		if err := os.WriteFile(file+".new", data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".new", file); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) []byte {
		t.Helper()
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	client2 := ca2.Client(t, "client", pkix.Name{CommonName: "replica"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	verifies := func(pool *x509.CertPool) bool {
		_, err := client2.Pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err == nil
	}
	install(read(ca1.File))
	logs := new(testlog.Buffer)
	p, err := NewCAPool(file, logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	first := p.Pool()
	if verifies(first) || p.Pool() != first {
		t.Fatal("a certificate of another CA verified, or an unchanged file gave a new pool")
	}
	install(append(read(ca1.File), read(ca2.File)...))
	if !verifies(p.Pool()) {
		t.Fatal("the new CA was not read from the changed file")
	}
	good := p.Pool()
	for _, bad := range []func(){
		func() { install([]byte("not PEM\n")) },
		func() { os.Remove(file) },
	} {
		bad()
		if p.Pool() != good || p.Pool() != good {
			t.Fatal("a file that cannot be loaded replaced the pool")
		}
		if probs := p.Problems(); len(probs) != 1 || strings.Contains(probs[0], file) {
			t.Errorf("problems %q, want one naming no path", probs)
		}
	}
	if n := strings.Count(logs.String(), "cannot be used"); n != 2 {
		t.Errorf("%d failures logged, want one for each distinct failure:\n%s", n, logs)
	}
	install(read(ca2.File))
	if !verifies(p.Pool()) || p.Problems() != nil {
		t.Errorf("after a good file again: problems %q", p.Problems())
	}
}

// TestNewCAPoolRefuses: a CA file that cannot be read is a FileError, one
// without a certificate ErrNoCertificate.
func TestNewCAPoolRefuses(t *testing.T) {
	dir := t.TempDir()
	var fe *FileError
	if _, err := NewCAPool(filepath.Join(dir, "missing.pem"), nil); !errors.As(err, &fe) {
		t.Errorf("a missing file: %v, want a FileError", err)
	}
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("no certificate\n"), 0o644)
	if _, err := NewCAPool(empty, nil); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("a file without a certificate: %v, want ErrNoCertificate", err)
	}
}
