package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/testlog"
)

// TestBuildVersion builds sumd as make build does, with VERSION set, and
// checks that the version reaches everything that shows it: sumd version,
// the /version route and the sumd_build_info metric.
func TestBuildVersion(t *testing.T) {
	makeCmd := testenv.LookPath(t, "make")
	const v = "v9.8.7-test"
	bin := filepath.Join(t.TempDir(), "sumd")
	cmd := exec.Command(makeCmd, "-C", filepath.Join("..", ".."), "build", "BIN="+bin, "VERSION="+v)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	// make build keeps the developer's environment (its go build needs
	// the build and module caches HOME locates); the binary does not.
	version := exec.Command(bin, "version")
	version.Env = childEnv(t)
	if out, err := version.Output(); err != nil || string(out) != "sumd "+v+"\n" {
		t.Errorf("sumd version = %q, %v; want %q", out, err, "sumd "+v+"\n")
	}

	dir := t.TempDir()
	srv := exec.Command(bin, "serve", "-listen", "127.0.0.1:0")
	srv.Dir = dir
	srv.Env = childEnv(t)
	srv.Stderr = new(testlog.Buffer)
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	line, err := startLine(srv, stdout)
	m := gosumdbLine.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		t.Fatalf("sumd serve printed %q (%v); stderr:\n%s", line, err, srv.Stderr)
	}
	if got := get(t, m[2]+"/version"); got != v+"\n" {
		t.Errorf("/version = %q, want %q", got, v+"\n")
	}
	metrics := get(t, m[2]+"/metrics")
	if !strings.Contains(metrics, `sumd_build_info{goversion="go`) || !strings.Contains(metrics, `version="`+v+`"} 1`) {
		t.Errorf("/metrics lacks sumd_build_info with version %s:\n%s", v, grepLines(metrics, "build_info"))
	}
}
