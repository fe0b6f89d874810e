package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/testlog"
)

// failingSync returns the command line that runs sumd with every
// fdatasync failing with EIO, as a dying disk would: the database's commit
// cannot tell whether it was stored.
func failingSync(t *testing.T, args ...string) *exec.Cmd {
	strace := testenv.LookPath(t, "strace")
	cmd := exec.Command(strace, append([]string{"-f", "-qq", "-o", "/dev/null",
		"-e", "trace=fdatasync", "-e", "inject=fdatasync:error=EIO", sumdBin}, args...)...)
	cmd.Env = childEnv(t)
	return cmd
}

// TestFatalStorage: when a commit fails in a way that leaves unknown
// whether it was stored, sumd add and sumd serve exit non-zero saying so,
// and the next start opens, re-verifies and carries on.
func TestFatalStorage(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	key := filepath.Join(dir, "keys", e2eName+".key")
	db := filepath.Join(dir, "sumd.db")
	mod := func(name string) string {
		m := filepath.Join(dir, name)
		if err := os.MkdirAll(m, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(m, "go.mod"), []byte("module example.com/"+name+"\n"))
		return m
	}
	sumd(t, "add", "-create", "-db", db, "-key", key, "example.com/a@v1.0.0", mod("a"))

	t.Run("add", func(t *testing.T) {
		cmd := failingSync(t, "add", "-db", db, "-key", key, "example.com/b@v1.0.0", mod("b"))
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "sumd: error: log stopped after a storage failure") ||
			!strings.Contains(string(out), "hint: restart sumd") || strings.Contains(string(out), "nothing was added") {
			t.Fatalf("sumd add with failing fdatasync: %v\n%s", err, out)
		}
		out2 := sumd(t, "add", "-db", db, "-key", key, "example.com/b@v1.0.0", mod("b"))
		if !strings.Contains(out2, "example.com/b@v1.0.0") {
			t.Fatalf("sumd add after the failure printed %q", out2)
		}
	})

	t.Run("serve", func(t *testing.T) {
		token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
		cmd := failingSync(t, "serve", "-listen", "127.0.0.1:0", "-db", db, "-key", key, "-admin-token-file", token)
		stderr := new(testlog.Buffer)
		cmd.Stderr = stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		m := gosumdbLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			t.Fatalf("sumd serve printed %q; stderr:\n%s", line, stderr)
		}
		if _, errOut, err := sumdRun(t, "add", "-server", m[2], "-token-file", token, "example.com/c@v1.0.0", mod("c")); err == nil {
			t.Fatalf("upload through a failing disk succeeded:\n%s", errOut)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(stderr.String(), "log stopped after a storage failure") {
				t.Fatalf("sumd serve exited with %v after the failure\n%s", err, stderr)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("sumd serve still runs after a fatal storage failure\n%s", stderr)
		}
		s := startServer(t, "-db", db, "-key", key, "-verify", "full", "-admin-token-file", token)
		out := sumd(t, "add", "-server", s.url, "-token-file", token, "example.com/c@v1.0.0", mod("c"))
		if !strings.Contains(out, "example.com/c@v1.0.0") {
			t.Fatalf("upload after restarting printed %q", out)
		}
	})
}
