package tlscert

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sumd-project/sumd/internal/testcert"
	"github.com/sumd-project/sumd/internal/testlog"
)

// TestReload: a renewed pair is served at the next handshake past the
// recheck, swapped in as cert-manager does (a rename over); a broken or
// mismatched pair keeps the previous certificate, logged once and shown
// as a problem; an expiring one is a problem too; the gauge follows.
func TestReload(t *testing.T) {
	defer func(d time.Duration) { recheck = d }(recheck)
	recheck = 0
	ca := testcert.New(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	install := func(certPEM, keyPEM []byte) {
		t.Helper()
		for name, data := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
			if err := os.WriteFile(name+".new", data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(name+".new", name); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(c *testcert.Cert) (certPEM, keyPEM []byte) {
		t.Helper()
		certPEM, err := os.ReadFile(c.CertFile)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err = os.ReadFile(c.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		return certPEM, keyPEM
	}
	served := func(r *Reloader) *x509.Certificate {
		t.Helper()
		c, err := r.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	serial := func(c *testcert.Cert) int64 {
		leaf, _ := x509.ParseCertificate(c.Pair.Certificate[0])
		return leaf.SerialNumber.Int64()
	}

	a := ca.Server(t)
	aCert, aKey := read(a)
	install(aCert, aKey)
	var logs testlog.Buffer
	r, err := New(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r.Register(reg)
	if got := served(r).SerialNumber.Int64(); got != serial(a) || len(r.Problems()) != 0 {
		t.Fatalf("served serial %d, problems %v; want %d and none", got, r.Problems(), serial(a))
	}

	// Renewed, expiring in three days: served, and a problem.
	b := ca.ServerUntil(t, time.Now().Add(72*time.Hour))
	bCert, bKey := read(b)
	install(bCert, bKey)
	if got := served(r).SerialNumber.Int64(); got != serial(b) {
		t.Fatalf("after renewal the served serial is %d, want %d", got, serial(b))
	}
	if p := r.Problems(); len(p) != 1 || !strings.Contains(p[0], "in less than a week") || strings.Contains(p[0], dir) {
		t.Errorf("problems of a certificate expiring in 3 days: %q", p)
	}
	if got := testutil.ToFloat64(prometheus.Collector(r.gauge)); got != float64(served(r).NotAfter.Unix()) {
		t.Errorf("expiry gauge %v, want %d", got, served(r).NotAfter.Unix())
	}

	// Half written, then a key of another certificate: b stays, one log
	// line per change, a problem naming no path.
	install(bCert[:len(bCert)/2], bKey)
	served(r)
	served(r)
	if got := served(r).SerialNumber.Int64(); got != serial(b) {
		t.Fatalf("a broken pair replaced the certificate: serial %d", got)
	}
	if n := strings.Count(logs.String(), "cannot be used"); n != 1 {
		t.Errorf("%d log lines for one broken change, want 1:\n%s", n, logs.String())
	}
	if p := r.Problems(); len(p) != 2 || !strings.Contains(p[0], "cannot be loaded") || strings.Contains(p[0], dir) {
		t.Errorf("problems with a broken pair: %q", p)
	}
	c := ca.ServerUntil(t, time.Now().Add(90*24*time.Hour))
	cCert, cKey := read(c)
	install(cCert, bKey)
	if got := served(r).SerialNumber.Int64(); got != serial(b) {
		t.Fatalf("a mismatched pair replaced the certificate: serial %d", got)
	}

	// Fixed: served, no problem left.
	install(cCert, cKey)
	if got := served(r).SerialNumber.Int64(); got != serial(c) || len(r.Problems()) != 0 {
		t.Fatalf("after the fix: serial %d (want %d), problems %q", got, serial(c), r.Problems())
	}
	if !strings.Contains(logs.String(), "loaded the changed TLS certificate") {
		t.Errorf("no log line for the renewal:\n%s", logs.String())
	}

	// Expired.
	d := ca.ServerUntil(t, time.Now().Add(-time.Minute))
	install(read(d))
	served(r)
	if p := r.Problems(); len(p) != 1 || !strings.Contains(p[0], "expired at") {
		t.Errorf("problems of an expired certificate: %q", p)
	}
}

// TestRecheck: within the recheck interval the files are not looked at.
func TestRecheck(t *testing.T) {
	ca := testcert.New(t)
	a := ca.Server(t)
	r, err := New(a.CertFile, a.KeyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := r.GetCertificate(nil)
	ca.Server(t) // the same file names: a new pair over a's
	after, _ := r.GetCertificate(nil)
	if !bytes.Equal(before.Certificate[0], after.Certificate[0]) {
		t.Error("the files were read again within the recheck interval")
	}
}

// TestNewRefuses: a pair that cannot be loaded refuses the start, with a
// FileError saying which file could not be read, none for a pair that
// does not match: a caller reads the files once, through New, and still
// names the option at fault.
func TestNewRefuses(t *testing.T) {
	ca := testcert.New(t)
	a := ca.Server(t)
	b := ca.Client(t, "other", a.Pair.Leaf.Subject, time.Now(), time.Now().Add(time.Hour))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, c := range []struct {
		name, cert, key string
		fileErr, ofKey  bool // a FileError, of the key
	}{
		{name: "a mismatched key", cert: a.CertFile, key: b.KeyFile},
		{name: "a missing certificate", cert: missing, key: a.KeyFile, fileErr: true},
		{name: "a missing key", cert: a.CertFile, key: missing, fileErr: true, ofKey: true},
	} {
		_, err := New(c.cert, c.key, slog.New(slog.DiscardHandler))
		var fe *FileError
		switch {
		case err == nil:
			t.Errorf("New with %s = nil error", c.name)
		case errors.As(err, &fe) != c.fileErr || c.fileErr && (fe.Key != c.ofKey || !errors.Is(err, fs.ErrNotExist)):
			t.Errorf("New with %s = %v (%#v), want a FileError %v of the key %v", c.name, err, fe, c.fileErr, c.ofKey)
		}
	}
}

// TestReloadKeyAfterCert: a renewal that writes the certificate, then the
// key, in place (no rename), with a check between them: the mismatch is
// logged once, and the key's own change brings the new pair in.
func TestReloadKeyAfterCert(t *testing.T) {
	defer func(d time.Duration) { recheck = d }(recheck)
	recheck = 0
	ca := testcert.New(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	copyPEM := func(from, to string) {
		t.Helper()
		data, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(to, data, 0o600) // in place: same inode
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	a := ca.ServerUntil(t, time.Now().Add(30*24*time.Hour))
	copyPEM(a.CertFile, certFile)
	copyPEM(a.KeyFile, keyFile)
	var logs testlog.Buffer
	r, err := New(certFile, keyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	b := ca.ServerUntil(t, time.Now().Add(60*24*time.Hour))
	copyPEM(b.CertFile, certFile)
	r.GetCertificate(nil)
	r.GetCertificate(nil)
	if n := strings.Count(logs.String(), "cannot be used"); n != 1 || len(r.Problems()) != 1 {
		t.Fatalf("after the certificate alone: %d log lines (want 1), problems %q", n, r.Problems())
	}
	copyPEM(b.KeyFile, keyFile)
	c, _ := r.GetCertificate(nil)
	if !bytes.Equal(c.Certificate[0], b.Pair.Certificate[0]) || len(r.Problems()) != 0 {
		t.Fatalf("after the key too: not the new certificate, or problems %q", r.Problems())
	}
}

// TestReloadStatFailure: a file that cannot be stat'ed for a while (moved
// away and back) is one logged problem, which clears once the files are
// usable again, unchanged or not.
func TestReloadStatFailure(t *testing.T) {
	defer func(d time.Duration) { recheck = d }(recheck)
	recheck = 0
	ca := testcert.New(t)
	a := ca.Server(t)
	var logs testlog.Buffer
	r, err := New(a.CertFile, a.KeyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(a.KeyFile, a.KeyFile+".away"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		r.GetCertificate(nil)
	}
	if n := strings.Count(logs.String(), "cannot be used"); n != 1 || len(r.Problems()) != 1 {
		t.Fatalf("key missing: %d log lines (want 1), problems %q", n, r.Problems())
	}
	if err := os.Rename(a.KeyFile+".away", a.KeyFile); err != nil {
		t.Fatal(err)
	}
	r.GetCertificate(nil)
	if p := r.Problems(); len(p) != 0 {
		t.Errorf("the same files back: problems %q, want none", p)
	}
}

// TestCheckDoesNotBlock: while one check runs (a stat hung on a network
// file system), handshakes are served the current certificate at once.
func TestCheckDoesNotBlock(t *testing.T) {
	defer func(d time.Duration) { recheck = d }(recheck)
	recheck = 0
	ca := testcert.New(t)
	a := ca.Server(t)
	r, err := New(a.CertFile, a.KeyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock() // the hung check
	defer r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for range 10 {
			if c, err := r.GetCertificate(nil); c == nil || err != nil {
				t.Errorf("GetCertificate during a check = %v, %v", c, err)
			}
		}
		r.Problems()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("handshakes wait for a running check")
	}
}

// TestTooLarge: a certificate or key file over MaxPEM is refused, naming
// it, rather than read whole into memory (a PEM file may carry any text
// between its blocks, which the parsers skip).
func TestTooLarge(t *testing.T) {
	srv := testcert.New(t).Server(t)
	for _, which := range []string{"cert", "key"} {
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		for name, from := range map[string]string{certFile: srv.CertFile, keyFile: srv.KeyFile} {
			data, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			if name == map[string]string{"cert": certFile, "key": keyFile}[which] {
				data = append(data, strings.Repeat("# padding\n", MaxPEM/10+1)...)
			}
			os.WriteFile(name, data, 0o600)
		}
		want := map[string]string{"cert": certFile, "key": keyFile}[which] + " is larger than 1048576 bytes"
		if _, err := New(certFile, keyFile, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New with a %s file over the cap: %v; want %q", which, err, want)
		}
	}
}

// TestReloadCoarseStamps: TestReloadKeyAfterCert on a file system of
// coarse time stamps, the key written within the tick of the check that
// found the certificate alone: the stat shows the key as that check saw
// it, and the old certificate was served until the files' next change.
// The failed check keeps the stats of its reads, which secret.Changed
// compares by content while a write may hide in their tick.
func TestReloadCoarseStamps(t *testing.T) {
	// The bubble's clock starts in 2000, before any file's stamp: every
	// read is racy, however slow the machine.
	synctest.Test(t, func(t *testing.T) {
		defer func(d time.Duration) { recheck = d }(recheck)
		recheck = 0
		ca := testcert.New(t)
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		copyPEM := func(from, to string) {
			t.Helper()
			data, err := os.ReadFile(from)
			if err == nil {
				err = os.WriteFile(to, data, 0o600) // in place: same inode
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		a := ca.ServerUntil(t, time.Now().Add(30*24*time.Hour))
		copyPEM(a.CertFile, certFile)
		copyPEM(a.KeyFile, keyFile)
		r, err := New(certFile, keyFile, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		b := ca.ServerUntil(t, time.Now().Add(60*24*time.Hour))
		copyPEM(b.CertFile, certFile)
		r.GetCertificate(nil)
		if len(r.Problems()) != 1 {
			t.Fatalf("after the certificate alone: problems %q, want the mismatch", r.Problems())
		}
		seen := map[string]fs.FileInfo{}
		for _, name := range []string{certFile, keyFile} {
			if seen[name], err = os.Stat(name); err != nil {
				t.Fatal(err)
			}
		}
		defer func(f func(string) (fs.FileInfo, error)) { stat = f }(stat)
		stat = func(name string) (fs.FileInfo, error) { return seen[name], nil } // stamps that did not move
		copyPEM(b.KeyFile, keyFile)
		c, _ := r.GetCertificate(nil)
		if !bytes.Equal(c.Certificate[0], b.Pair.Certificate[0]) || len(r.Problems()) != 0 {
			t.Fatalf("after the key too: not the new certificate, or problems %q", r.Problems())
		}
	})
}

// TestClientProblems: a client certificate's problems are worded for a
// client, name no file, and see a renewal without a handshake: an origin
// that never asks for the certificate makes none read it.
func TestClientProblems(t *testing.T) {
	defer func(d time.Duration) { recheck = d }(recheck)
	recheck = 0
	ca := testcert.New(t)
	expired := ca.Client(t, "old", pkix.Name{CommonName: "replica"}, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	r, err := New(expired.CertFile, expired.KeyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p := r.ClientProblems()
	if len(p) != 1 || !strings.HasPrefix(p[0], "the client certificate expired at ") || strings.Contains(p[0], "clients refuse") || strings.Contains(p[0], filepath.Dir(expired.CertFile)) {
		t.Errorf("problems of an expired client certificate: %q", p)
	}
	renewed := ca.Client(t, "new", pkix.Name{CommonName: "replica"}, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	for from, to := range map[string]string{renewed.CertFile: expired.CertFile, renewed.KeyFile: expired.KeyFile} {
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	if p := r.ClientProblems(); len(p) != 0 {
		t.Errorf("problems after the renewal, with no handshake since: %q", p)
	}
}

// TestClientLogWords: a client certificate's renewal, and renewed files
// that cannot be used, are logged in a client's words, not as the
// certificate a server serves.
func TestClientLogWords(t *testing.T) {
	defer func(d time.Duration) { recheck = d }(recheck)
	recheck = 0
	ca := testcert.New(t)
	a := ca.Client(t, "a", pkix.Name{CommonName: "replica"}, time.Now().Add(-time.Hour), time.Now().Add(30*24*time.Hour))
	var logs testlog.Buffer
	r, err := NewClient(a.CertFile, a.KeyFile, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.CertFile, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.GetClientCertificate(nil)
	b := ca.Client(t, "b", pkix.Name{CommonName: "replica"}, time.Now().Add(-time.Hour), time.Now().Add(60*24*time.Hour))
	for from, to := range map[string]string{b.CertFile: a.CertFile, b.KeyFile: a.KeyFile} {
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	r.GetClientCertificate(nil)
	got := logs.String()
	if strings.Contains(got, "TLS certificate") || strings.Contains(got, "served") ||
		!strings.Contains(got, "the client certificate files changed but cannot be used; presenting the previous certificate") ||
		!strings.Contains(got, "loaded the changed client certificate") {
		t.Errorf("log of a client certificate's reloads, want a client's words:\n%s", got)
	}
}
