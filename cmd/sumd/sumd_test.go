package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// sumdBin is the sumd binary built once by TestMain; the end-to-end tests
// run it as an operator would.
var sumdBin string

func TestMain(m *testing.M) {
	flag.Parse()
	startCosignBuilds()
	dir, err := os.MkdirTemp("", "sumd-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sumdBin = filepath.Join(dir, "sumd")
	isolateEnv(filepath.Join(dir, "none.netrc"))
	if out, err := exec.Command("go", "build", "-o", sumdBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building sumd: %v\n%s", err, out)
		os.Exit(2)
	}
	code := m.Run()
	pgtest.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// isolateEnv keeps the developer's sumd configuration and credentials from
// the commands the tests run in this process (run, as sumd's main does,
// reads SUMD_* variables and the .netrc): it unsets SUMD_* but the tests'
// own SUMD_TEST_* and CREDENTIALS_DIRECTORY, and points NETRC at netrc,
// a file that does not exist. HOME stays: the go commands the tests run
// find their caches through it. sumd processes get childEnv.
func isolateEnv(netrc string) {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SUMD_") && !strings.HasPrefix(k, "SUMD_TEST_") || k == "CREDENTIALS_DIRECTORY" {
			os.Unsetenv(k)
		}
	}
	os.Setenv("NETRC", netrc)
}

// sumd runs the sumd binary to completion and returns its stdout, failing
// the test if it fails.
func sumd(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := sumdRun(t, args...)
	if err != nil {
		t.Fatalf("sumd %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// sumdRun runs the sumd binary and returns its stdout, stderr and error.
func sumdRun(t testing.TB, args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	cmd := sumdCommand(t, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// sumdCommand is the command line that runs sumd with args in the
// environment childEnv makes.
func sumdCommand(t testing.TB, args ...string) *exec.Cmd {
	cmd := exec.Command(sumdBin, args...)
	cmd.Env = childEnv(t)
	return cmd
}

// startSaying starts sumd with args and waits, up to timeout, until a line
// of its standard error contains say: the moment a test kills it at. The
// rest of its output is read and dropped, so it never blocks on a full pipe.
func startSaying(t testing.TB, say string, timeout time.Duration, args ...string) *exec.Cmd {
	t.Helper()
	cmd := sumdCommand(t, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	said := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), say) {
				close(said)
				break
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case <-said:
	case <-time.After(timeout):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("sumd %s did not say %q within %v", strings.Join(args[:min(2, len(args))], " "), say, timeout)
	}
	return cmd
}

// childEnv is the environment of every sumd process a test starts, then
// extra (where a variable repeats, the last value wins): the test's own
// without what configures sumd or hands it credentials on a developer's
// machine — SUMD_* variables, NETRC, systemd's CREDENTIALS_DIRECTORY — and
// with an empty HOME and a NETRC under t.TempDir(), so that no ~/.netrc is
// read either. A test about credentials passes its own NETRC in extra.
// GO* variables stay: sumd runs no go command, and the go commands the
// tests run get an environment of their own (testproxy.Go).
func childEnv(t testing.TB, extra ...string) []string {
	home := t.TempDir()
	env := environWithout(func(k string) bool {
		return strings.HasPrefix(k, "SUMD_") || k == "HOME" || k == "NETRC" || k == "CREDENTIALS_DIRECTORY"
	})
	env = append(env, "HOME="+home, "NETRC="+filepath.Join(home, ".netrc"))
	return append(env, extra...)
}

// environWithout is the process environment without the variables drop
// names.
func environWithout(drop func(key string) bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop(k) {
			env = append(env, kv)
		}
	}
	return env
}

// A server is a running `sumd serve`.
type sumdServer struct {
	t       *testing.T
	cmd     *exec.Cmd
	gosumdb string // the GOSUMDB line it printed: "<vkey> <url>"
	url     string
	stderr  *testlog.Buffer
}

var gosumdbLine = regexp.MustCompile(`^GOSUMDB="(\S+) (https?://\S+)"$`)

// startServer starts `sumd serve` on a free port and waits until it serves.
func startServer(t *testing.T, args ...string) *sumdServer {
	return startServerIn(t, "", args...)
}

// startServerIn is startServer in working directory dir.
func startServerIn(t *testing.T, dir string, args ...string) *sumdServer {
	t.Helper()
	return startServerEnv(t, dir, nil, args...)
}

// startServerEnv is startServerIn with env added to childEnv's.
func startServerEnv(t *testing.T, dir string, env []string, args ...string) *sumdServer {
	t.Helper()
	s, err := launchServer(t, dir, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startServerAt is startServer listening on addr, an address a test keeps
// across restarts because it published the URL (testnet.FreeAddr, which holds
// the port between two runs so that no other process takes it): a start
// that finds the address in use all the same tries once more, a second
// later.
func startServerAt(t *testing.T, addr string, args ...string) *sumdServer {
	t.Helper()
	args = append([]string{"-listen", addr}, args...)
	s, err := launchServer(t, "", nil, args...)
	if err != nil && strings.Contains(err.Error(), "address already in use") {
		t.Logf("%s in use; trying again: %v", addr, err)
		time.Sleep(time.Second)
		s, err = launchServer(t, "", nil, args...)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// launchServer starts `sumd serve` and waits until it serves, or says why
// it does not, with its stderr.
func launchServer(t *testing.T, dir string, env []string, args ...string) (*sumdServer, error) {
	t.Helper()
	s := &sumdServer{t: t, stderr: new(testlog.Buffer)}
	// Any free port, unless the test names one: a flag given twice is
	// refused.
	serve := []string{"serve"}
	if !slices.ContainsFunc(args, func(a string) bool { return a == "-listen" || strings.HasPrefix(a, "-listen=") }) {
		serve = append(serve, "-listen", "127.0.0.1:0")
	}
	s.cmd = sumdCommand(t, append(serve, args...)...)
	s.cmd.Dir = dir
	s.cmd.Env = append(s.cmd.Env, env...)
	s.cmd.Stderr = s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := startLine(s.cmd, out)
	m := gosumdbLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		return nil, fmt.Errorf("sumd serve printed %q (%v), want a GOSUMDB line; stderr:\n%s", line, err, s.stderr)
	}
	s.gosumdb, s.url = m[1]+" "+m[2], m[2]
	t.Cleanup(func() { s.stop() })
	return s, nil
}

// startTimeout bounds the wait for a starting sumd serve's first line.
const startTimeout = time.Minute

// startLine returns the first line cmd prints on out. If none comes within
// startTimeout it kills cmd (the caller waits for it) and says so.
func startLine(cmd *exec.Cmd, out io.Reader) (string, error) {
	type result struct {
		line string
		err  error
	}
	read := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		read <- result{line, err}
	}()
	select {
	case r := <-read:
		return r.line, r.err
	case <-time.After(startTimeout):
		cmd.Process.Kill()
		return "", fmt.Errorf("nothing printed within %s; killed", startTimeout)
	}
}

// stopAndHold stops the server and keeps its port until the test ends,
// accepting connections and closing them at once: a test that needs the
// server gone must not meet another test's server, started on the freed
// port, answering in its place (with another key: a signature refusal).
func (s *sumdServer) stopAndHold() {
	s.stop()
	u, err := url.Parse(s.url)
	if err != nil {
		s.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		s.t.Fatalf("failed to hold the stopped server's port: %v", err)
	}
	s.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// stop sends SIGTERM and expects a clean exit.
func (s *sumdServer) stop() { s.stopWith(syscall.SIGTERM) }

// stopWith sends sig and expects a clean exit.
func (s *sumdServer) stopWith(sig os.Signal) { stopCmd(s.t, s.cmd, sig, s.stderr) }

// stopCmd sends sig to a started sumd and expects a clean exit within 15 s;
// past that it kills the process. Either way the process is waited for.
// A process waited for already is left alone.
func stopCmd(t testing.TB, cmd *exec.Cmd, sig os.Signal, stderr fmt.Stringer) {
	t.Helper()
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("sumd did not exit cleanly on %v: %v\n%s", sig, err, stderr)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Errorf("sumd did not stop within 15s of %v; killed\n%s", sig, stderr)
	}
}

// goSumFile returns go.sum lines for mods, hashed from the proxy tree.
func goSumFile(t *testing.T, proxyDir string, mods []testproxy.Module) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, m := range mods {
		mv := module.Version{Path: m.Path, Version: m.Version}
		sums, err := modhash.HashZip(mv, testproxy.ZipPath(proxyDir, mv), nil)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(gosum.Record{Path: m.Path, Version: m.Version, Hash: sums.Hash, GoMod: sums.GoMod}.Text())
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// writeSecret writes a token or key file readable by its owner only, as
// sumd requires.
func writeSecret(t *testing.T, name, data string) string {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

var _ io.Writer = (*testlog.Buffer)(nil)
