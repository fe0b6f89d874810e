package testenv

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// smallCommand is a command from a module already in go.sum, which builds
// in seconds.
const smallCommand = "github.com/rogpeppe/go-internal/cmd/testscript@v1.16.0"

// TestInstallCache builds a command from two goroutines at once (the lock
// file serializes them as it does two processes), checks both get the same
// working binary with no build debris left, and that a later install takes
// the cached binary instead of building again.
func TestInstallCache(t *testing.T) {
	LookPath(t, "go")
	root := useCache(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	bins, errs := make([]string, 2), make([]error, 2)
	for i := range bins {
		wg.Go(func() { bins[i], errs[i] = install(ctx, smallCommand) })
	}
	wg.Wait()
	for _, err := range errs {
		Need(t, "go install "+smallCommand, err)
	}
	if bins[0] != bins[1] {
		t.Fatalf("two installs returned %s and %s, want one cached path", bins[0], bins[1])
	}
	bin := bins[0]
	if !strings.HasPrefix(bin, root) || !strings.Contains(bin, "github.com/rogpeppe/go-internal/cmd/testscript@v1.16.0") {
		t.Errorf("cached at %s, want under the cache root, keyed by package@version", bin)
	}
	if out, err := exec.Command(bin, "-h").CombinedOutput(); !strings.Contains(string(out), "Usage:") {
		t.Errorf("cached binary does not run: %v\n%s", err, out)
	}
	debris, _ := filepath.Glob(filepath.Join(filepath.Dir(bin), ".build-*"))
	if len(debris) > 0 {
		t.Errorf("build directories left behind: %v", debris)
	}

	marker := []byte("#!/bin/sh\necho cached\n")
	if err := os.WriteFile(bin, marker, 0o755); err != nil {
		t.Fatal(err)
	}
	again, err := install(ctx, smallCommand)
	if err != nil || again != bin {
		t.Fatalf("second install = %s, %v; want %s from the cache", again, err, bin)
	}
	if got, _ := os.ReadFile(bin); string(got) != string(marker) {
		t.Errorf("second install rebuilt the cached binary instead of reusing it")
	}
}

// TestInstallTimeout checks that a build cut off by its timeout is an error
// that says so (GoInstall fails the test on it, even outside CI), and that
// it leaves nothing in the cache.
func TestInstallTimeout(t *testing.T) {
	LookPath(t, "go")
	root := useCache(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	bin, err := install(ctx, smallCommand)
	if err == nil || !strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
		t.Fatalf("install past its deadline = %s, %v; want a deadline error", bin, err)
	}
	// The same for a build cut off once it has begun.
	dir := filepath.Join(root, "pkg@v1")
	os.MkdirAll(dir, 0o755)
	if err := build(ctx, smallCommand, dir, filepath.Join(dir, "testscript")); err == nil || !strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
		t.Errorf("build past its deadline = %v; want a deadline error", err)
	}
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != ".lock" {
			t.Errorf("a cut-off build left %s in the cache", path)
		}
		return nil
	})
}

// useCache makes a temporary directory the cache root for this test.
func useCache(t *testing.T) string {
	root, old := t.TempDir(), cacheRoot
	cacheRoot = func() (string, error) { return root, nil }
	t.Cleanup(func() { cacheRoot = old })
	return root
}
