package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/testcert"
	"github.com/sumd-project/sumd/internal/testlog"
)

// TestEmbeddedDefault starts sumd serve with no options in an empty
// directory, as `make run` does: it generates keys/sumd.local.key, creates
// data/sumd.db and serves a signed empty tree. A second start reuses both:
// same verifier key, no new key.
func TestEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	s := startServerIn(t, dir)
	vkey, _, _ := strings.Cut(s.gosumdb, " ")
	if !strings.HasPrefix(vkey, "sumd.local+") {
		t.Fatalf("GOSUMDB = %q, want the sumd.local key", s.gosumdb)
	}
	fi, err := os.Stat(filepath.Join(dir, "keys", "sumd.local.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key: %v, mode %v; want mode 0600", err, fi.Mode())
	}
	if vk, _ := os.ReadFile(filepath.Join(dir, "keys", "sumd.local.vkey")); strings.TrimSpace(string(vk)) != vkey {
		t.Errorf("keys/sumd.local.vkey = %q, want %q", vk, vkey)
	}
	latest := get(t, s.url+"/latest")
	if !strings.HasPrefix(latest, "go.sum database tree\n0\n") || !strings.Contains(latest, "\n— sumd.local ") {
		t.Errorf("/latest of a new log = %q", latest)
	}
	s.stop()

	again := startServerIn(t, dir)
	if v, _, _ := strings.Cut(again.gosumdb, " "); v != vkey {
		t.Fatalf("second start serves key %q, want the first start's %q", v, vkey)
	}
	if strings.Contains(again.stderr.String(), "generated signing key") {
		t.Errorf("second start generated a key again:\n%s", again.stderr)
	}
	if got := get(t, again.url+"/latest"); got != latest {
		t.Errorf("second start serves head %q, want %q", got, latest)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
}

// TestServeStopsWhenAPartDies removes the database file under a running
// sumd serve: the file watch dies, and the server exits with status 1, the
// part and the file named, and a hint.
func TestServeStopsWhenAPartDies(t *testing.T) {
	dir := t.TempDir()
	s := startServerIn(t, dir)
	if err := os.Remove(filepath.Join(dir, "data", "sumd.db")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("sumd serve still runs 15s after its database file was removed")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("sumd serve exited with %v, want exit status 1\n%s", err, s.stderr)
	}
	for _, want := range []string{
		"sumd: error: database file watch stopped: the database file data/sumd.db is gone while served",
		"hint: never remove, move or copy over the database file while sumd serve runs",
	} {
		if !strings.Contains(s.stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, s.stderr)
		}
	}
}

// TestServeSIGHUP: a SIGHUP not from a closing terminal (a logrotate or
// certbot hook, systemctl kill -s HUP) is logged and ignored: stopping
// would leave a unit with Restart=on-failure down, and there is nothing to
// reload. The server still answers, and SIGTERM then stops it cleanly.
func TestServeSIGHUP(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"))
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SIGHUP log line", func() bool { return strings.Contains(s.stderr.String(), "SIGHUP: nothing to reload") })
	if got := get(t, s.url+"/healthz"); !strings.HasPrefix(got, "ok") {
		t.Errorf("/healthz after SIGHUP = %q", got)
	}
	if strings.Contains(s.stderr.String(), "shutting down") {
		t.Errorf("SIGHUP started a shutdown:\n%s", s.stderr)
	}
	s.stop()
	if !strings.Contains(s.stderr.String(), "shutting down") {
		t.Errorf("no graceful shutdown on SIGTERM in the log:\n%s", s.stderr)
	}
}

// TestServeCreateLeftOn: -create on a database that exists is warned
// about at every start (left on in a unit or a container's command, it
// would replace a database missing one day by a new, empty log); the first
// start that creates the log is not. On PostgreSQL too, where a wrong URL
// or a re-provisioned instance is the likelier way to lose the database.
func TestServeCreateLeftOn(t *testing.T) {
	for _, kind := range []string{"bbolt", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "sumd.db")
			if kind == "postgres" {
				db = pgtest.Shared(t).NewDatabase(t)
			}
			sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
			args := []string{"-create", "-db", db, "-key", filepath.Join(dir, "keys", e2eName+".key")}
			const warning = "-create is set but the database exists"
			s := startServer(t, args...)
			s.stop()
			if strings.Contains(s.stderr.String(), warning) {
				t.Errorf("the first start, which created the log, warned:\n%s", s.stderr)
			}
			s = startServer(t, args...)
			s.stop()
			if !strings.Contains(s.stderr.String(), warning) {
				t.Errorf("a start with -create on an existing database did not warn:\n%s", s.stderr)
			}
			s = startServer(t, args[1:]...)
			s.stop()
			if strings.Contains(s.stderr.String(), warning) {
				t.Errorf("a start without -create warned:\n%s", s.stderr)
			}
		})
	}
}

// TestServeSecondSignal: a second SIGTERM during a drain ends sumd serve at
// once (by the signal), for an operator who cannot wait for it. A request
// that declares a body it never sends holds the drain (net/http reads it
// before the connection is done) for the request timeout, long enough to
// send the second signal inside it.
func TestServeSecondSignal(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"), "-shutdown-timeout", "60s")
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /latest HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Its handler has run once /metrics counts it; the server then waits
	// for the body before the answer goes out.
	waitFor(t, "the request to be taken", func() bool {
		return strings.Contains(get(t, s.url+"/metrics"), `sumd_http_request_duration_seconds_count{route="latest"} 1`)
	})
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drain to start", func() bool { return strings.Contains(s.stderr.String(), "shutting down") })
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = s.cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("sumd serve after a second SIGTERM: %v, want killed by SIGTERM\n%s", err, s.stderr)
	}
}

// TestClientCATooLarge: a -tls-client-ca file over tlscert.MaxPEM is
// refused with the reason, rather than read whole into memory (a PEM file
// may carry any text after its certificates, which the parser skips).
func TestClientCATooLarge(t *testing.T) {
	data, err := os.ReadFile(testcert.New(t).File)
	if err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(big, append(data, strings.Repeat("# padding\n", 1<<20/10+1)...), 0o644)
	_, err = clientCerts(&tls.Config{}, config.Access{TLSClientCA: big}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "failed to read -tls-client-ca: "+big+" is larger than 1048576 bytes") {
		t.Errorf("clientCerts with a CA file over the cap: %v", err)
	}
}

// TestServeUpstreamAuthAnonymous: -upstream-auth on a server that asks its
// clients for no credential lets anyone make it fetch through them (and
// read the hashes of the private modules it records): sumd serve serves it
// so, but warns at start. With -read-auth, or -upstream-auth none, it
// does not.
func TestServeUpstreamAuthAnonymous(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	token := writeSecret(t, filepath.Join(dir, "athens.token"), "athens-token-0123456789abcdef\n")
	tokens := writeSecret(t, filepath.Join(dir, "tokens"), "dev:dev-token-0123456789abcdef:reader\n")
	base := []string{"-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-upstream", "http://127.0.0.1:1"}
	const warning = "-upstream-auth without -read-auth"
	for _, c := range []struct {
		args []string
		warn bool
	}{
		{[]string{"-upstream-auth", "bearer:" + token}, true},
		{[]string{"-upstream-auth", "bearer:" + token, "-read-auth", "bearer", "-read-auth-file", tokens}, false},
		{[]string{"-upstream-auth", "none"}, false},
		{nil, false},
	} {
		s := startServer(t, append(base, c.args...)...)
		s.stop()
		if strings.Contains(s.stderr.String(), warning) != c.warn {
			t.Errorf("sumd serve %q: warned %v, want %v:\n%s", c.args, !c.warn, c.warn, s.stderr)
		}
	}
}

// TestServePublicURL: behind a reverse proxy that terminates TLS the
// GOSUMDB line sumd serve prints at start named the listen address
// (http://, an internal host), which users copy. With -public-url it names
// that URL, without its trailing slash, and the log still says where the
// server listens.
func TestServePublicURL(t *testing.T) {
	s := startServerIn(t, t.TempDir(), "-public-url", "https://sumd.corp.example/sumdb/")
	if want := "https://sumd.corp.example/sumdb"; s.url != want {
		t.Errorf("sumd serve -public-url printed GOSUMDB %q, want the URL %s", s.gosumdb, want)
	}
	s.stop() // its stderr all copied
	if logged := s.stderr.String(); !strings.Contains(logged, "http://127.0.0.1:") {
		t.Errorf("sumd serve -public-url logged no listen URL:\n%s", logged)
	}
}

// TestServeSIGHUPDuringStart: a SIGHUP while sumd serve reads its
// configuration (a file on a slow mount; here a FIFO it waits on) is
// ignored as once it serves. sumd caught it only from just before opening
// the log, so until then it took SIGHUP's default action and died by it,
// which systemd counts as a clean exit: Restart=on-failure left the unit
// down, what docs/operations.md says a SIGHUP never does.
func TestServeSIGHUPDuringStart(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	fifo := filepath.Join(dir, "sumd.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &sumdServer{t: t, stderr: new(testlog.Buffer)}
	s.cmd = sumdCommand(t, "serve", "-config", fifo, "-listen", "127.0.0.1:0")
	s.cmd.Stderr = s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The open returns once sumd opened the FIFO to read it: it now waits
	// in that read, before anything else of the start.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "create: true\ndb: %s\nkey: %s\n", filepath.Join(dir, "sumd.db"), filepath.Join(dir, "keys", e2eName+".key"))
	w.Close()
	line, err := startLine(s.cmd, out)
	if m := gosumdbLine.FindStringSubmatch(strings.TrimSpace(line)); m == nil {
		s.cmd.Process.Kill()
		t.Fatalf("after a SIGHUP during the start, sumd serve printed %q (%v), want a GOSUMDB line; exit: %v; stderr:\n%s", line, err, s.cmd.Wait(), s.stderr)
	} else {
		s.url = m[2]
	}
	t.Cleanup(func() { s.stop() })
	waitFor(t, "the SIGHUP log line", func() bool { return strings.Contains(s.stderr.String(), "SIGHUP: nothing to reload") })
	if got := get(t, s.url+"/healthz"); !strings.HasPrefix(got, "ok") {
		t.Errorf("/healthz after SIGHUP = %q", got)
	}
}
