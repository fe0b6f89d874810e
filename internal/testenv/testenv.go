// Package testenv decides what a test does when something it needs from
// the machine — the go command, cosign, strace, PostgreSQL, Chromium, nginx —
// is missing.
//
// Locally such a test skips with the reason, so a developer without the tool
// can still run the rest. In CI (the CI environment variable is set, as CI
// sets CI=true) it fails: a test that cannot run there has not proved
// anything, and a skipped test still lets go test print ok.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// InCI reports whether the tests run in CI, where nothing may be skipped for
// a missing tool. Any value of CI but "" and "false" (or "0") counts.
func InCI() bool {
	v := os.Getenv("CI")
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// Need fails the test in CI and skips it elsewhere when err, the result of
// looking for what, is not nil. what names the tool or resource ("strace",
// "PostgreSQL 15 server binaries") so the message says what to install.
func Need(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if InCI() {
		t.Fatalf("CI=%s: this test needs %s: %v", os.Getenv("CI"), what, err)
	}
	t.Skipf("skipping: this test needs %s: %v (in CI this is a failure)", what, err)
}

// SkipShort skips a slow test under go test -short, saying why, except in
// CI, where it fails instead: CI runs every test (make test has no
// -short), and a skip there would let go test print ok for a test that
// proved nothing.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if !testing.Short() {
		return
	}
	if InCI() {
		t.Fatalf("CI=%s: -short would skip this test (%s); CI runs every test: run it without -short", os.Getenv("CI"), why)
	}
	t.Skipf("-short: skipping: %s", why)
}

// LookPath returns the path of the command named file, or ends the test as
// Need does when it is not installed.
func LookPath(t testing.TB, file string) string {
	t.Helper()
	path, err := exec.LookPath(file)
	Need(t, file, err)
	return path
}

// GoHome makes a HOME under t.TempDir() for the go commands a test runs,
// with the go command's telemetry off. With it on, the go command starts a
// detached child that may still write counters under HOME after the
// command returns, racing the test's removal of its directory and leaving
// .config/go/telemetry behind in /tmp. The go command must also run
// without XDG_CONFIG_HOME, which would move its config elsewhere.
func GoHome(t testing.TB) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	mode := filepath.Join(home, ".config", "go", "telemetry", "mode")
	if err := os.MkdirAll(filepath.Dir(mode), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mode, []byte("off"), 0o644); err != nil {
		t.Fatal(err)
	}
	return home
}
