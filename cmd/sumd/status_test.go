package main

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/sumd-project/sumd/internal/serve"
	"github.com/sumd-project/sumd/internal/testnet"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestStatusCommand runs sumd serve with TUF and an OCI sync whose registry
// is gone, removes the TUF directory, and checks what sumd status, -json,
// /healthz and the page say: degraded, with both parts named, and no path
// or registry address shown.
func TestStatusCommand(t *testing.T) {
	dir := t.TempDir()
	proxyDir := filepath.Join(dir, "proxy")
	mods := testproxy.Versions("example.com/status", 3)
	if _, err := testproxy.Build(proxyDir, mods); err != nil {
		t.Fatal(err)
	}
	db, repo := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "tuf")
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	key := filepath.Join(dir, "keys", e2eName+".key")
	sumd(t, "add", "-create", "-db", db, "-key", key, "-gosum", writeFile(t, filepath.Join(dir, "a.sum"), goSumFile(t, proxyDir, mods)))
	sumd(t, "tuf", "init", "-dir", repo, "-keys", filepath.Join(dir, "offline"), "-db", db, "-key", key)
	registry := testnet.RefusingAddr(t) // a registry address that no longer answers
	_, pub := cosignKeys(t, dir)
	s := startServer(t, "-db", db, "-key", key, "-tuf", repo, "-registry", registry+"/gomod", "-cosign-key", pub, "-sync-interval", "1h")

	var st serve.Status
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out := sumd(t, "status", "-url", s.url, "-json")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("sumd status -json printed %q: %v", out, err)
		}
		if st.Sync != nil && st.Sync.LastPass != nil || time.Now().After(deadline) {
			break
		}
	}
	if st.Name != e2eName || st.Log.TreeSize != 3 || len(st.VerifierKeys) != 1 || st.VerifierKeys[0] != vkey {
		t.Errorf("status: name %q, tree size %d, keys %q; want %s, 3, %s", st.Name, st.Log.TreeSize, st.VerifierKeys, e2eName, vkey)
	}
	if st.Health.State != serve.Degraded || st.Sync == nil || st.Sync.LastPass == nil || st.Sync.LastPass.Failures == 0 {
		t.Fatalf("status with the registry gone: health %+v, sync %+v", st.Health, st.Sync)
	}
	if st.TUF == nil || len(st.TUF.Roles) != 4 {
		t.Errorf("TUF status = %+v, want four roles", st.TUF)
	}

	if err := os.RemoveAll(repo); err != nil {
		t.Fatal(err)
	}
	var text string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if text = sumd(t, "status", "-url", s.url); strings.Contains(text, "tuf: ") || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{
		e2eName + ": DEGRADED\n",
		// Where, what and what to do, without the registry's address.
		"  problem: sync: the last pass could not read 1 place: the catalog of the registry (repositories under gomod); check that the registry answers and lets sumd's credentials read there (the server log has each error)\n",
		"  problem: tuf: the repository cannot be read (see the server log)\n",
		"tree      3 records, root ",
		"vkey      " + vkey + "\n",
		"sync      every 1h0m0s, 1 registries; last pass ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("sumd status lacks %q:\n%s", want, text)
		}
	}
	healthz := get(t, s.url+"/healthz")
	page := get(t, s.url+"/")
	for _, body := range []string{text, healthz, page} {
		for _, secret := range []string{registry, repo, dir} {
			if strings.Contains(body, secret) {
				t.Errorf("%q shown to an anonymous client:\n%s", secret, body)
			}
		}
	}
	if !strings.HasPrefix(healthz, "degraded: ") || !strings.Contains(healthz, "tuf: the repository cannot be read") || !strings.Contains(healthz, "sync: the last pass could not read 1 place: the catalog of the registry") {
		t.Errorf("/healthz = %q", healthz)
	}
	if !strings.Contains(page, `class="badge degraded"`) || !strings.Contains(page, "the repository cannot be read") {
		t.Errorf("the page does not show the problems")
	}
}

// TestStatusUnreachable: a server that does not answer is exit status 1,
// with a hint.
func TestStatusUnreachable(t *testing.T) {
	gone := "http://" + testnet.RefusingAddr(t)
	_, stderr, code := sumdCode(t, nil, "status", "-url", gone, "-timeout", "5s")
	if code != 1 || !strings.Contains(stderr, "sumd: error: failed to read the status: ") || !strings.Contains(stderr, "hint: check -url") {
		t.Errorf("sumd status of a closed port: exit %d\n%s", code, stderr)
	}
}

// TestStatusUntrustedCert: a server whose certificate is signed by a CA
// the system does not trust (self-signed, a private CA) gets a hint to
// trust that CA with SSL_CERT_FILE, not to check -url; and SSL_CERT_FILE
// does make sumd trust it.
func TestStatusUntrustedCert(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	_, stderr, code := sumdCode(t, nil, "status", "-url", srv.URL, "-timeout", "5s")
	if code != 1 || !strings.Contains(stderr, "x509: ") ||
		!strings.Contains(stderr, "hint: the server's TLS certificate is not signed by a CA this system trusts: trust its CA with SSL_CERT_FILE=ca.pem") ||
		strings.Contains(stderr, "check -url") {
		t.Errorf("sumd status of a server with a self-signed certificate: exit %d\n%s", code, stderr)
	}
	// So do the other clients of a sumd server.
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", dir))
	if err := os.Mkdir(filepath.Join(dir, "m"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "m", "go.mod"), []byte("module example.com/m\n"))
	token := writeSecret(t, filepath.Join(dir, "token"), "secret-token-of-32-bytes-or-more-x\n")
	for _, args := range [][]string{
		{"verify", "-url", srv.URL, "-key", vkey},
		{"add", "-server", srv.URL, "-token-file", token, "example.com/m@v1.0.0", filepath.Join(dir, "m")},
	} {
		_, stderr, code := sumdCode(t, nil, args...)
		if code == 0 || !strings.Contains(stderr, "hint: the server's TLS certificate is not signed by a CA this system trusts") {
			t.Errorf("sumd %s of a server with a self-signed certificate: exit %d\n%s", args[0], code, stderr)
		}
	}
	ca := writeFile(t, filepath.Join(t.TempDir(), "ca.pem"),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	_, stderr, _ = sumdCode(t, []string{"SSL_CERT_FILE=" + ca}, "status", "-url", srv.URL, "-timeout", "5s")
	if strings.Contains(stderr, "x509") || !strings.Contains(stderr, "404 Not Found") {
		t.Errorf("sumd status with SSL_CERT_FILE set to the CA:\n%s", stderr)
	}
}

// TestStatusReadAuth: with read authentication on, /status needs an
// auditor, so sumd status without -auth (the image's HEALTHCHECK) checks
// /healthz instead, says so, and exits 0 while the log serves. A credential
// given and refused, or -json, still fails: they ask for the status itself.
func TestStatusReadAuth(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	tokens := writeSecret(t, filepath.Join(dir, "tokens"), "ops:ops-token-0123456789abcdef:auditor\ndev:dev-token-0123456789abcdef:reader\n")
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-read-auth", "bearer", "-read-auth-file", tokens)
	auditor := writeSecret(t, filepath.Join(dir, "auditor.token"), "ops-token-0123456789abcdef\n")
	reader := writeSecret(t, filepath.Join(dir, "reader.token"), "dev-token-0123456789abcdef\n")
	noNetrc := []string{"NETRC=" + filepath.Join(dir, "none.netrc")}

	out, errOut, code := sumdCode(t, noNetrc, "status", "-url", s.url)
	if want := "only /healthz was checked (/status needs an auditor's credential, -auth): ok\n"; code != 0 || out != want {
		t.Errorf("sumd status without -auth: exit %d, printed %q, want 0 and %q\n%s", code, out, want, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-auth", "bearer:" + reader}, "hint: the server refused these credentials: the status needs an auditor's"},
		{[]string{"-json"}, "hint: the server needs credentials"},
	} {
		_, errOut, code := sumdCode(t, noNetrc, append([]string{"status", "-url", s.url}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("sumd status %s: exit %d, want 1 and %q:\n%s", strings.Join(tc.args, " "), code, tc.want, errOut)
		}
	}
	// A wrong password in .netrc is a credential refused (401 too), not
	// the absence of one: said, not hidden behind the health.
	wrong := []string{"NETRC=" + writeSecret(t, filepath.Join(dir, "wrong.netrc"), "machine 127.0.0.1 login ops password wrong\n")}
	if out, errOut, code := sumdCode(t, wrong, "status", "-url", s.url); code != 1 || out != "" || !strings.Contains(errOut, "401") {
		t.Errorf("sumd status with a wrong .netrc password: exit %d, printed %q, want 1 and the 401:\n%s", code, out, errOut)
	}
	if out := sumd(t, "status", "-url", s.url, "-auth", "bearer:"+auditor); !strings.HasPrefix(out, e2eName+": OK\n") {
		t.Errorf("sumd status as an auditor printed:\n%s", out)
	}
}

// TestStatusHealthUnavailable: when /status is refused and /healthz answers
// 503, sumd status exits 1 with the answer and why only the health was
// checked.
func TestStatusHealthUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			http.Error(w, "not ready: the head cannot be read", http.StatusServiceUnavailable)
			return
		}
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}))
	defer srv.Close()
	out, errOut, code := sumdCode(t, []string{"NETRC=" + filepath.Join(t.TempDir(), "none.netrc")}, "status", "-url", srv.URL)
	if code != 1 || out != "" || !strings.Contains(errOut, "/healthz: 503 Service Unavailable: not ready: the head cannot be read\n") ||
		!strings.Contains(errOut, "hint: only /healthz was checked (/status needs an auditor's credential, -auth)") {
		t.Errorf("sumd status of an unavailable server behind read auth: exit %d, stdout %q\n%s", code, out, errOut)
	}
}

// TestStatusTerminalSafe: what a server says reaches the terminal without
// control characters, so that it cannot clear a problem line, move the
// cursor or retitle the window: in sumd status and in printed errors.
func TestStatusTerminalSafe(t *testing.T) {
	hostile := "disk full\x1b[2K\r\x1b]0;owned\x07 all ok\u009b2J"
	var out strings.Builder
	printServerStatus(&out, &serve.Status{Name: "sumd.test\x1b[31m", Health: serve.Health{State: "degraded", Problems: []serve.Problem{{Part: "log", Message: hostile}}}, Version: "v1\x1b[8m"})
	var errOut strings.Builder
	printError(&errOut, fmt.Errorf("GET http://sumd/status: 500: %s\n\tcause: %s", hostile, hostile))
	for name, s := range map[string]string{"status": out.String(), "error": errOut.String(), "verify's clean": clean(hostile)} {
		if i := strings.IndexFunc(s, func(r rune) bool { return r != '\n' && r != '\t' && unicode.IsControl(r) }); i >= 0 {
			t.Errorf("%s output holds control character %q:\n%q", name, s[i:i+1], s)
		}
		if !strings.Contains(s, "disk full") || !strings.Contains(s, "all ok") {
			t.Errorf("%s output lost the text around the controls:\n%q", name, s)
		}
	}
	if !strings.Contains(errOut.String(), "\n\tcause: ") {
		t.Errorf("printError lost its line structure:\n%q", errOut.String())
	}
}

// TestStatusWrongPath: a -url with a path that is not the server's base
// URL is said to be one, with the URL sumd status tried: the admin API's
// (whose 401 blamed the credentials, anonymous or given) and a path the
// server does not have (a 404).
func TestStatusWrongPath(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"), "-admin-token-file", token)
	noNetrc := []string{"NETRC=" + filepath.Join(dir, "none.netrc")}
	for _, tc := range []struct {
		url  string
		args []string
		want string
	}{
		{s.url + "/admin", nil, "hint: -url's path /admin is sumd's admin API, not the server's base URL: use -url " + s.url},
		{s.url + "/admin/", []string{"-auth", "bearer:" + token}, "hint: -url's path /admin/ is sumd's admin API, not the server's base URL: use -url " + s.url},
		{s.url + "/sumdb", nil, "hint: the server has no " + s.url + "/sumdb/status: -url's path is probably wrong: give the server's base URL"},
	} {
		_, errOut, code := sumdCode(t, noNetrc, append([]string{"status", "-url", tc.url}, tc.args...)...)
		_, hint, _ := strings.Cut(errOut, "\nhint: ")
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Contains(hint, "credential") {
			t.Errorf("sumd status -url %s %s: exit %d, want 1 and %q, not blaming the credentials:\n%s", tc.url, strings.Join(tc.args, " "), code, tc.want, errOut)
		}
	}
}

// TestStatusTUFExpiry: sumd status says how long the TUF metadata has left
// as the status page does (days beyond two, hours, then minutes), and an
// expired role as expired, not "in" a negative duration.
func TestStatusTUFExpiry(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	st := &serve.Status{Name: "sumd.test", Time: now, TUF: &serve.TUFState{Roles: []serve.TUFRole{
		{Role: "root", Version: 1, Expires: now.Add(365*24*time.Hour - 7*time.Minute)},
		{Role: "targets", Version: 2, Expires: now.Add(90 * time.Minute)},
		{Role: "snapshot", Version: 3, Expires: now.Add(-3 * time.Hour)},
		{Role: "timestamp", Version: 4, Expires: now.Add(18 * time.Hour)},
	}}}
	var out strings.Builder
	printServerStatus(&out, st)
	for _, want := range []string{
		"root      version 1, expires 2027-12-03 11:53:00 UTC (in 364 days)\n",
		"targets   version 2, expires 2026-12-03 13:30:00 UTC (in 1h30m0s)\n",
		"snapshot  version 3, expires 2026-12-03 09:00:00 UTC (expired 3h ago)\n",
		"timestamp version 4, expires 2026-12-04 06:00:00 UTC (in 18h)\n",
	} {
		if !strings.Contains(out.String(), "tuf       "+want) {
			t.Errorf("sumd status lacks %q:\n%s", want, out.String())
		}
	}
}

// TestStatusClientCertOnly: a server that accepts only client certificates
// (-tls-client-roles without -read-auth) answers 403, not 401, to a client
// with no credential, and sumd status without -auth or -client-cert
// checks /healthz instead, as behind -read-auth, rather than fail with
// "the server refused these credentials" and mark a replaced HEALTHCHECK
// (docs/operations.md) unhealthy for good.
func TestStatusClientCertOnly(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			fmt.Fprintln(w, "ok")
			return
		}
		http.Error(w, "forbidden: a client certificate is required", http.StatusForbidden) // as internal/access answers
	}))
	defer srv.Close()
	noNetrc := []string{"NETRC=" + filepath.Join(t.TempDir(), "none.netrc")}
	out, errOut, code := sumdCode(t, noNetrc, "status", "-url", srv.URL)
	if want := "only /healthz was checked (/status needs an auditor's client certificate, -client-cert): ok\n"; code != 0 || out != want {
		t.Errorf("sumd status of a server of client certificates only: exit %d, printed %q, want 0 and %q\n%s", code, out, want, errOut)
	}
	if _, errOut, code := sumdCode(t, noNetrc, "status", "-url", srv.URL, "-json"); code != 1 || !strings.Contains(errOut, "403") || !strings.Contains(errOut, "hint: the server accepts only client certificates") {
		t.Errorf("sumd status -json of a server of client certificates only: exit %d, want 1 and the 403:\n%s", code, errOut)
	}
}

// TestStatusSyncBudgetSpent: sumd status says that the last sync pass
// spent its download budget and that the next carries on, as the status
// page does, without making it a problem.
func TestStatusSyncBudgetSpent(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	pass := &serve.SyncPass{Started: now.Add(-time.Minute), Seconds: 42, Outcomes: map[string]int{"recorded": 3}, BudgetSpent: true}
	st := &serve.Status{Name: "sumd.test", Time: now, Health: serve.Health{State: serve.Healthy},
		Sync: &serve.SyncState{IntervalSeconds: 300, Registries: 1, LastPass: pass}}
	var out strings.Builder
	printServerStatus(&out, st)
	want := "sync      every 5m0s, 1 registries; last pass 2026-12-03 11:59:00 UTC, 42.0s: recorded 3; 0 unchanged, 0 unreadable, 0 conflicts, 0 refused; download budget spent: the next pass carries on from where it stopped\n"
	if !strings.Contains(out.String(), want) || strings.Contains(out.String(), "problem") {
		t.Errorf("sumd status lacks %q, or has a problem:\n%s", want, out.String())
	}
	pass.BudgetSpent = false
	out.Reset()
	printServerStatus(&out, st)
	if strings.Contains(out.String(), "budget") {
		t.Errorf("sumd status of a pass that read everything speaks of its budget:\n%s", out.String())
	}
}
