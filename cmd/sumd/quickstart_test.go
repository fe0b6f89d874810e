package main

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testenv"
)

// quickStart returns the commands of README.md's block marked
// "```sh quickstart".
func quickStart(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?ms)^```sh quickstart\n(.*?)^```\n").FindSubmatch(data)
	if m == nil {
		t.Fatal("README.md has no ```sh quickstart block")
	}
	return string(m[1])
}

// TestQuickStart runs README.md's Quick start exactly as written, in a
// temporary directory, with the sumd binary and the real go command on PATH
// (as the README's "make build" and "export PATH" leave them), offline.
// Only the environment is the test's: no GO* or SUMD_* variable of the
// developer's, a HOME, TMPDIR and build cache of its own, and SUMD_LISTEN
// on a free port, so that the test cannot collide with a sumd the
// developer runs on 8080 (the README takes the URL from sumd's own output).
func TestQuickStart(t *testing.T) {
	dir, out, err := runQuickStart(t, "127.0.0.1:0", 3*time.Minute)
	if err != nil {
		t.Fatalf("the README's Quick start failed: %v\n%s", err, out)
	}
	sum := goSumLines(out, "example.com/m v1.2.3")
	t.Logf("the Quick start printed:\n%s", out)
	if len(sum) != 2 {
		t.Fatalf("the Quick start did not print the go.sum lines of example.com/m v1.2.3:\n%s", out)
	}
	// The hashes printed are those sumd recorded: sumd add -proxy-dir
	// published what it hashed, and the go command checked it against sumd.
	rec, err := hashModule(t, filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Split(strings.TrimSpace(string(rec)), "\n"); sum[0] != want[0] || sum[1] != want[1] {
		t.Errorf("go.sum has\n%s\nwant sumd's record\n%s", strings.Join(sum, "\n"), rec)
	}
}

// TestQuickStartPortTaken: when sumd serve cannot listen (a port already
// taken, as 8080 often is) it exits, and the Quick start stops with its
// error instead of waiting for ever for the GOSUMDB line.
func TestQuickStartPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	_, out, err := runQuickStart(t, ln.Addr().String(), time.Minute)
	if err == nil || time.Since(start) > 50*time.Second || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("the Quick start with its port taken: %v after %s\n%s", err, time.Since(start).Round(time.Second), out)
	}
	if strings.Contains(string(out), "go mod init") {
		t.Errorf("the Quick start went on without sumd:\n%s", out)
	}
}

// runQuickStart runs README.md's Quick start exactly as written, in a new
// directory, with sumd serve listening on listen, for at most timeout.
func runQuickStart(t *testing.T, listen string, timeout time.Duration) (dir string, out []byte, err error) {
	t.Helper()
	script := quickStart(t)
	goBin := testenv.LookPath(t, "go")
	sh := testenv.LookPath(t, "sh")
	dir = t.TempDir()
	for _, d := range []string{"home", "tmp", "bin"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(goBin, filepath.Join(dir, "bin", "go")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Dir(sumdBin) + string(os.PathListSeparator) + filepath.Join(dir, "bin") + string(os.PathListSeparator) + "/usr/bin:/bin"

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sh, "-e", "-x", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(),
		"PATH="+path, "HOME="+filepath.Join(dir, "home"), "TMPDIR="+filepath.Join(dir, "tmp"),
		"GOCACHE="+filepath.Join(dir, "home", "gocache"), "GOENV=off", "GOTOOLCHAIN=local", "CGO_ENABLED=0",
		"SUMD_LISTEN="+listen)
	// The script starts sumd serve in the background: run it in a process
	// group of its own, and end the whole group whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err = cmd.CombinedOutput()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	return dir, out, err
}

// cleanEnv is the process environment without GO*, SUMD_* and proxy
// variables: what a new user's shell may not have.
func cleanEnv() []string {
	return environWithout(func(k string) bool {
		return strings.HasPrefix(k, "GO") || strings.HasPrefix(k, "SUMD_") || strings.HasSuffix(strings.ToUpper(k), "_PROXY") ||
			k == "CGO_ENABLED" || k == "NETRC" || k == "CREDENTIALS_DIRECTORY"
	})
}

// goSumLines returns the lines of out that start with prefix.
func goSumLines(out []byte, prefix string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			lines = append(lines, sc.Text())
		}
	}
	return lines
}

// hashModule finds the scratch directory the Quick start made under tmp
// and returns the record its log holds for example.com/m@v1.2.3.
func hashModule(t *testing.T, tmp string) ([]byte, error) {
	dirs, err := filepath.Glob(filepath.Join(tmp, "*", "proxy", "example.com", "m", "@v", "v1.2.3.zip"))
	if err != nil || len(dirs) != 1 {
		return nil, errors.New("the Quick start left no proxy/example.com/m/@v/v1.2.3.zip in its scratch directory")
	}
	scratch := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(dirs[0])))))
	s := startServerIn(t, scratch)
	body := get(t, s.url+"/lookup/example.com/m@v1.2.3")
	lines := strings.SplitN(body, "\n", 4)
	return []byte(lines[1] + "\n" + lines[2] + "\n"), nil
}
