package main

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testcert"
	"github.com/sumd-project/sumd/internal/testnet"
)

// TestStatusClientCert: a server of sumd serve -tls-client-auth require
// completes no TLS handshake without a client certificate, so sumd status
// (the container image's HEALTHCHECK) fails with a hint naming
// -client-cert and -client-key, and succeeds with them; one the server
// refuses (expired) gets a hint about the certificate; a key other users
// may read is refused as every secret is.
func TestStatusClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.New(t)
	srv := ca.Server(t)
	hc := ca.Client(t, "healthcheck", pkix.Name{CommonName: "healthcheck.corp.example", Organization: []string{"Corp"}}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	roles := writeSecret(t, filepath.Join(dir, "roles"), "healthcheck:"+hc.Subject+":auditor\n")
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-tls-cert", srv.CertFile, "-tls-key", srv.KeyFile, "-tls-client-ca", ca.File, "-tls-client-roles", roles, "-tls-client-auth", "require")
	env := []string{"SSL_CERT_FILE=" + ca.File, "NETRC=" + filepath.Join(dir, "none.netrc")}

	out, errOut, code := sumdCode(t, env, "status", "-url", s.url)
	// The error is the server's alert or, as the client may write the
	// request after the server closed, a broken pipe: the hint is the same.
	if code != 1 || out != "" ||
		!strings.Contains(errOut, "hint: the server asks for a client certificate: pass one its -tls-client-ca issued with -client-cert FILE -client-key FILE") {
		t.Errorf("sumd status without a client certificate: exit %d, want 1 and a hint naming -client-cert\n%s%s", code, out, errOut)
	}
	out, errOut, code = sumdCode(t, env, "status", "-url", s.url, "-client-cert", hc.CertFile, "-client-key", hc.KeyFile)
	if code != 0 || !strings.HasPrefix(out, e2eName+": OK\n") {
		t.Errorf("sumd status with -client-cert: exit %d, want 0 and the status\n%s%s", code, out, errOut)
	}
	// From the environment, as a HEALTHCHECK in an image would.
	certEnv := append(env, "SUMD_CLIENT_CERT="+hc.CertFile, "SUMD_CLIENT_KEY="+hc.KeyFile)
	if out, errOut, code := sumdCode(t, certEnv, "status", "-url", s.url); code != 0 || !strings.HasPrefix(out, e2eName+": OK\n") {
		t.Errorf("sumd status with SUMD_CLIENT_CERT: exit %d\n%s%s", code, out, errOut)
	}
	expired := ca.Client(t, "expired", pkix.Name{CommonName: "healthcheck.corp.example", Organization: []string{"Corp"}}, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	if _, errOut, code := sumdCode(t, env, "status", "-url", s.url, "-client-cert", expired.CertFile, "-client-key", expired.KeyFile); code != 1 ||
		!strings.Contains(errOut, "hint: the server refused the client certificate") {
		t.Errorf("sumd status with an expired client certificate: exit %d, want 1 and a hint about the certificate\n%s", code, errOut)
	}
	if err := os.Chmod(hc.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := sumdCode(t, env, "status", "-url", s.url, "-client-cert", hc.CertFile, "-client-key", hc.KeyFile); code != 2 || !strings.Contains(errOut, "hint: run chmod 600 "+hc.KeyFile) {
		t.Errorf("sumd status with a key other users may read: exit %d, want 2 and the chmod hint\n%s", code, errOut)
	}
	if _, errOut, code := sumdCode(t, env, "status", "-url", s.url, "-client-cert", hc.CertFile); code != 2 || !strings.Contains(errOut, "client-cert needs -client-key") {
		t.Errorf("sumd status -client-cert without -client-key: exit %d, want 2\n%s", code, errOut)
	}
}

// TestStatusClientCertRedirect: the client certificate goes to the host
// of -url alone: a redirect to another host (here another port) gets the
// request without it, as it gets it without -auth's credentials.
func TestStatusClientCertRedirect(t *testing.T) {
	ca := testcert.New(t)
	hc := ca.Client(t, "healthcheck", pkix.Name{CommonName: "healthcheck.corp.example"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	front, asked, presented := redirectingPair(t, ca)
	env := []string{"SSL_CERT_FILE=" + ca.File, "NETRC=" + filepath.Join(t.TempDir(), "none.netrc")}
	_, errOut, code := sumdCode(t, env, "status", "-url", front.URL, "-client-cert", hc.CertFile, "-client-key", hc.KeyFile)
	if code != 1 || !strings.Contains(errOut, "404") || asked.Load() != 1 {
		t.Fatalf("sumd status redirected to another host: exit %d, %d requests there, want 1 and its 404\n%s", code, asked.Load(), errOut)
	}
	if presented.Load() != 0 {
		t.Error("the client certificate was presented to the host a redirect led to")
	}
}

// TestAdminClientCert: sumd add -server and sumd backup -server present
// -client-cert to a server of -tls-client-auth require, where an admin's
// certificate is the credential the admin API takes; without it they get
// the hint naming -client-cert, not one of a server that stopped.
func TestAdminClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.New(t)
	srv := ca.Server(t)
	ops := ca.Client(t, "ops", pkix.Name{CommonName: "ops.corp.example", Organization: []string{"Corp"}}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	roles := writeSecret(t, filepath.Join(dir, "roles"), "ops:"+ops.Subject+":admin\n")
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-tls-cert", srv.CertFile, "-tls-key", srv.KeyFile, "-tls-client-ca", ca.File, "-tls-client-roles", roles, "-tls-client-auth", "require")
	env := []string{"SSL_CERT_FILE=" + ca.File, "NETRC=" + filepath.Join(dir, "none.netrc")}
	if err := os.Mkdir(filepath.Join(dir, "m"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "m", "go.mod"), []byte("module example.com/m\n"))
	cert := []string{"-client-cert", ops.CertFile, "-client-key", ops.KeyFile}
	for _, args := range [][]string{
		{"add", "-server", s.url, "example.com/m@v1.0.0", filepath.Join(dir, "m")},
		{"backup", "-server", s.url, "-o", filepath.Join(dir, "none.db")},
	} {
		if _, errOut, code := sumdCode(t, env, args...); code != 1 || !strings.Contains(errOut, "hint: the server asks for a client certificate: pass one its -tls-client-ca issued with -client-cert") {
			t.Errorf("sumd %s -server without a client certificate: exit %d, want 1 and a hint naming -client-cert\n%s", args[0], code, errOut)
		}
	}
	if _, errOut, code := sumdCode(t, env, append(append([]string{"add", "-server", s.url}, cert...), "example.com/m@v1.0.0", filepath.Join(dir, "m"))...); code != 0 {
		t.Fatalf("sumd add -server -client-cert: exit %d\n%s", code, errOut)
	}
	out := filepath.Join(dir, "copy.db")
	if _, errOut, code := sumdCode(t, env, append([]string{"backup", "-server", s.url, "-o", out}, cert...)...); code != 0 {
		t.Fatalf("sumd backup -server -client-cert: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := sumdCode(t, env, "add", "-client-cert", ops.CertFile, "-client-key", ops.KeyFile, "-db", filepath.Join(dir, "other.db"), "example.com/m@v1.0.0", filepath.Join(dir, "m")); code != 2 || !strings.Contains(errOut, "client-cert") {
		t.Errorf("sumd add -client-cert without -server: exit %d, want 2, the option refused\n%s", code, errOut)
	}
}

// TestTUFGosumdbClientCert: sumd tuf gosumdb presents -client-cert to the
// TUF repository of a server of -tls-client-auth require, and without it
// gets the hint naming -client-cert.
func TestTUFGosumdbClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.New(t)
	srv := ca.Server(t)
	dev := ca.Client(t, "dev", pkix.Name{CommonName: "dev.corp.example", Organization: []string{"Corp"}}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	roles := writeSecret(t, filepath.Join(dir, "roles"), "dev:"+dev.Subject+":reader\n")
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	addr := testnet.FreeAddr(t)
	repo := filepath.Join(dir, "tuf")
	root := strings.TrimSpace(sumd(t, "tuf", "init", "-dir", repo, "-keys", filepath.Join(dir, "offline"), "-vkey", vkey, "-url", "https://"+addr))
	startServerAt(t, addr, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"), "-tuf", repo,
		"-tls-cert", srv.CertFile, "-tls-key", srv.KeyFile, "-tls-client-ca", ca.File, "-tls-client-roles", roles, "-tls-client-auth", "require")
	env := []string{"SSL_CERT_FILE=" + ca.File, "NETRC=" + filepath.Join(dir, "none.netrc")}
	args := []string{"tuf", "gosumdb", "-tuf-root", root, "-tuf-url", "https://" + addr + "/tuf"}
	if _, errOut, code := sumdCode(t, env, args...); code != 2 || !strings.Contains(errOut, "hint: the server asks for a client certificate: pass one its -tls-client-ca issued with -client-cert") {
		t.Errorf("sumd tuf gosumdb without a client certificate: exit %d, want 2 and a hint naming -client-cert\n%s", code, errOut)
	}
	out, errOut, code := sumdCode(t, env, append(args, "-client-cert", dev.CertFile, "-client-key", dev.KeyFile)...)
	if code != 0 || !strings.HasPrefix(out, e2eName+"+") {
		t.Errorf("sumd tuf gosumdb -client-cert: exit %d, printed %q, want the GOSUMDB value\n%s", code, out, errOut)
	}
	// sumd verify learns the key from the same repository: it presents
	// its -client-cert there too, not only to the database.
	verify := []string{"verify", "-tuf-root", root, "-tuf-url", "https://" + addr + "/tuf", "-state", filepath.Join(dir, "state")}
	if _, errOut, code := sumdCode(t, env, verify...); code != 2 || !strings.Contains(errOut, "hint: the server asks for a client certificate: pass one its -tls-client-ca issued with -client-cert") {
		t.Errorf("sumd verify -tuf-root without a client certificate: exit %d, want 2 and a hint naming -client-cert\n%s", code, errOut)
	}
	if out, errOut, code := sumdCode(t, env, append(verify, "-client-cert", dev.CertFile, "-client-key", dev.KeyFile)...); code != 0 {
		t.Errorf("sumd verify -tuf-root -client-cert: exit %d, want 0\n%s%s", code, out, errOut)
	}
}

// TestSumdbClientCert: sumd verify, sumd mirror and sumd restore -from,
// which read the log through the checksum database protocol, present
// -client-cert to a server of -tls-client-auth require, and without it
// get the hint naming -client-cert; a mirror remembers the files (not the
// key) as it remembers -auth, so a later run without flags presents it.
func TestSumdbClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.New(t)
	srv := ca.Server(t)
	aud := ca.Client(t, "aud", pkix.Name{CommonName: "aud.corp.example", Organization: []string{"Corp"}}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	roles := writeSecret(t, filepath.Join(dir, "roles"), "aud:"+aud.Subject+":auditor\n")
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	key := filepath.Join(dir, "keys", e2eName+".key")
	if err := os.Mkdir(filepath.Join(dir, "m"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "m", "go.mod"), []byte("module example.com/m\n"))
	db := filepath.Join(dir, "sumd.db")
	sumd(t, "add", "-create", "-db", db, "-key", key, "example.com/m@v1.0.0", filepath.Join(dir, "m"))
	s := startServer(t, "-db", db, "-key", key,
		"-tls-cert", srv.CertFile, "-tls-key", srv.KeyFile, "-tls-client-ca", ca.File, "-tls-client-roles", roles, "-tls-client-auth", "require")
	env := []string{"SSL_CERT_FILE=" + ca.File, "NETRC=" + filepath.Join(dir, "none.netrc")}
	cert := []string{"-client-cert", aud.CertFile, "-client-key", aud.KeyFile}
	mdb := filepath.Join(dir, "mirror.db")
	for _, args := range [][]string{
		{"verify", "-url", s.url, "-key", vkey, "-full"},
		{"mirror", "-mirror", mdb, "-origin", s.url, "-origin-key", vkey},
		{"restore", "-db", filepath.Join(dir, "restored.db"), "-key", key, "-from", s.url},
	} {
		if _, errOut, code := sumdCode(t, env, args...); code != 2 || !strings.Contains(errOut, "hint: the server asks for a client certificate: pass one its -tls-client-ca issued with -client-cert") {
			t.Errorf("sumd %s without a client certificate: exit %d, want 2 and a hint naming -client-cert\n%s", args[0], code, errOut)
		}
		if out, errOut, code := sumdCode(t, env, append(args, cert...)...); code != 0 {
			t.Errorf("sumd %s -client-cert: exit %d, want 0\n%s%s", args[0], code, out, errOut)
		}
	}
	// The mirror remembers the certificate's files for the next run.
	if out, errOut, code := sumdCode(t, env, "mirror", "-mirror", mdb); code != 0 {
		t.Errorf("sumd mirror with the remembered client certificate: exit %d, want 0\n%s%s", code, out, errOut)
	}
	// The certificate is a credential as a token is: sumd serve, which
	// presents it to the origin, serves the mirror to no anonymous client.
	if m, err := launchServer(t, "", env, "-mirror-only", "-mirror", mdb); err == nil {
		m.stop()
		t.Error("sumd serve -mirror served a mirror that presents a client certificate to its origin to anonymous clients")
	} else if !strings.Contains(err.Error(), "reads its origin with credentials (client-cert:"+aud.CertFile+")") {
		t.Errorf("sumd serve -mirror of a mirror presenting a client certificate: %v", err)
	}
	// So does the mirror restore keeps beside the database, copied with
	// the certificate though it remembers none.
	if m, err := launchServer(t, "", env, "-mirror-only", "-mirror", filepath.Join(dir, "restored.db.restore-mirror")); err == nil {
		m.stop()
		t.Error("sumd serve -mirror served the mirror restore -client-cert made to anonymous clients")
	} else if !strings.Contains(err.Error(), "its data was read with client-cert:"+aud.CertFile) {
		t.Errorf("sumd serve -mirror of the mirror restore -client-cert made: %v", err)
	}
	if err := os.Chmod(aud.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := sumdCode(t, env, append([]string{"verify", "-url", s.url, "-key", vkey}, cert...)...); code != 2 || !strings.Contains(errOut, "hint: run chmod 600 "+aud.KeyFile) {
		t.Errorf("sumd verify with a key other users may read: exit %d, want 2 and the chmod hint\n%s", code, errOut)
	}
}

// TestMirrorClientCertRedirect: sumd mirror presents its client
// certificate to the host of -origin alone, through sumdbclient's own
// transport: a redirect to another host gets the request without it.
func TestMirrorClientCertRedirect(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.New(t)
	aud := ca.Client(t, "aud", pkix.Name{CommonName: "aud.corp.example"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	front, asked, presented := redirectingPair(t, ca)
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	env := []string{"SSL_CERT_FILE=" + ca.File, "NETRC=" + filepath.Join(dir, "none.netrc")}
	_, errOut, code := sumdCode(t, env, "mirror", "-mirror", filepath.Join(dir, "m.db"), "-origin", front.URL, "-origin-key", vkey,
		"-client-cert", aud.CertFile, "-client-key", aud.KeyFile)
	if code == 0 || asked.Load() == 0 {
		t.Fatalf("sumd mirror redirected to another host: exit %d, %d requests there, want a failure after a request there\n%s", code, asked.Load(), errOut)
	}
	if presented.Load() != 0 {
		t.Error("the client certificate was presented to the host a redirect led to")
	}
}

// TestClientCertDropAfterAnswer: a server that asks every client for a
// certificate, as -tls-client-auth verify-if-given does, and has answered
// this client (here /status's 401) has taken its handshake; a connection
// it drops later (a restart) is not a certificate it wants or refused,
// and sumd status says nothing of -client-cert.
func TestClientCertDropAfterAnswer(t *testing.T) {
	ca := testcert.New(t)
	srv := ca.Server(t)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/status" {
			http.Error(w, "credentials needed", http.StatusUnauthorized)
			return
		}
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{srv.Pair}, ClientAuth: tls.RequestClientCert}
	s.StartTLS()
	defer s.Close()
	env := []string{"SSL_CERT_FILE=" + ca.File, "NETRC=" + filepath.Join(t.TempDir(), "none.netrc")}
	_, errOut, code := sumdCode(t, env, "status", "-url", s.URL)
	if code == 0 || strings.Contains(errOut, "client certificate") {
		t.Errorf("sumd status to a server that answered, then dropped the connection: exit %d, want a failure and no hint about a client certificate\n%s", code, errOut)
	}
}

// TestStatusClientCertNotAsked: a client certificate the server never
// asked for (no -tls-client-ca; SUMD_CLIENT_CERT left in a health check's
// environment, say) was not sent, so a 401 to it is the 401 to no
// credential: sumd status checks /healthz, as an -auth sent nowhere would.
func TestStatusClientCertNotAsked(t *testing.T) {
	ca := testcert.New(t)
	srv := ca.Server(t)
	hc := ca.Client(t, "healthcheck", pkix.Name{CommonName: "healthcheck.corp.example"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Write([]byte("ok\n"))
			return
		}
		http.Error(w, "credentials needed", http.StatusUnauthorized)
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{srv.Pair}}
	s.StartTLS()
	defer s.Close()
	env := []string{"SSL_CERT_FILE=" + ca.File, "NETRC=" + filepath.Join(t.TempDir(), "none.netrc")}
	out, errOut, code := sumdCode(t, env, "status", "-url", s.URL, "-client-cert", hc.CertFile, "-client-key", hc.KeyFile)
	if code != 0 || !strings.Contains(out, "only /healthz was checked") {
		t.Errorf("sumd status with a client certificate the server did not ask for: exit %d, want 0 and the health\n%s%s", code, out, errOut)
	}
}

// redirectingPair starts two TLS servers with certificates of ca: front
// requires a client certificate of ca and redirects every request to the
// other, on another port, which asks for one (any) and answers 404. It
// returns front and the other's counts of requests and of certificates
// presented to it.
func redirectingPair(t *testing.T, ca *testcert.CA) (front *httptest.Server, asked, presented *atomic.Int32) {
	t.Helper()
	srv := ca.Server(t)
	asked, presented = new(atomic.Int32), new(atomic.Int32)
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		presented.Add(int32(len(r.TLS.PeerCertificates)))
		http.NotFound(w, r)
	}))
	other.TLS = &tls.Config{Certificates: []tls.Certificate{srv.Pair}, ClientAuth: tls.RequestClientCert}
	other.StartTLS()
	t.Cleanup(other.Close)
	front = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	front.TLS = &tls.Config{Certificates: []tls.Certificate{srv.Pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	front.StartTLS()
	t.Cleanup(front.Close)
	return front, asked, presented
}
