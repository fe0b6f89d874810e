package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
)

// A command line built from source costs minutes (cosign pulls in about a
// thousand packages), far more than the tests that run it. GoInstall builds
// each one once per machine into a cache directory that outlives test runs,
// the way the go command keeps its build cache:
//
//	<user cache dir>/sumd-test/bin/<go version>-<GOOS>-<GOARCH>/<escaped module path>@<version>/<command>
//
// keyed by everything that changes the binary: the package and its
// version, the Go toolchain and the target platform. SUMD_TEST_CACHE
// overrides <user cache dir>/sumd-test.
//
// Several test processes may want the same command at once (go test runs
// packages in parallel, and developers run several go tests): one builds
// while holding a lock file, the others wait for it, and the binary enters
// the cache by a rename, so nobody ever runs a half-written one.

// installs coalesces the builds of one test process.
var installs sync.Map // "pkg@version" → func() (string, error)

// GoInstall returns the path of the command that `go install pkg@version`
// builds, from the cache or, the first time, by building it within timeout.
// A build that cannot start or fails (no go command, no module proxy) ends
// the test as Need does: a skip locally, a failure in CI. A build cut off by
// the timeout always fails the test: the timeout is too short for this
// machine, and skipping would hide it.
func GoInstall(t testing.TB, pkgAtVersion string, timeout time.Duration) string {
	t.Helper()
	start := time.Now()
	f, _ := installs.LoadOrStore(pkgAtVersion, sync.OnceValues(func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return install(ctx, pkgAtVersion)
	}))
	bin, err := f.(func() (string, error))()
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("go install %s took longer than %s: %v", pkgAtVersion, timeout, err)
	}
	Need(t, "go install "+pkgAtVersion+" (the go command and the Go module proxy)", err)
	if d := time.Since(start); d > time.Second {
		t.Logf("built %s in %s (cached in %s)", pkgAtVersion, d.Round(time.Second), filepath.Dir(bin))
	}
	return bin
}

// install returns the cached command of pkgAtVersion, building it first
// if it is not cached.
func install(ctx context.Context, pkgAtVersion string) (string, error) {
	pkg, version, ok := strings.Cut(pkgAtVersion, "@")
	if !ok || version == "" {
		return "", fmt.Errorf("testenv: %q is not package@version", pkgAtVersion)
	}
	dir, err := installDir(ctx, pkg, version)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, path.Base(pkg))
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("failed to create build cache directory: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another process built it while we waited
	}
	return bin, build(ctx, pkgAtVersion, dir, bin)
}

// build runs go install into a temporary directory beside bin and renames
// the result to bin.
func build(ctx context.Context, pkgAtVersion, dir, bin string) error {
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return fmt.Errorf("failed to create build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "install", pkgAtVersion)
	cmd.Dir = os.TempDir() // outside any module: pkg@version builds with its own go.mod
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("go install %s: %w\n%s", pkgAtVersion, ctx.Err(), out)
	}
	if err != nil {
		return fmt.Errorf("go install %s: %w\n%s", pkgAtVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, filepath.Base(bin)), bin); err != nil {
		return fmt.Errorf("failed to move the built command into the cache: %w", err)
	}
	return nil
}

// installDir is the cache directory of pkg at version.
func installDir(ctx context.Context, pkg, version string) (string, error) {
	root := os.Getenv("SUMD_TEST_CACHE")
	if root == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory for built commands (set SUMD_TEST_CACHE): %w", err)
		}
		root = filepath.Join(cache, "sumd-test")
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION", "GOOS", "GOARCH").Output()
	if err != nil {
		return "", fmt.Errorf("failed to run go env: %w", err)
	}
	toolchain := strings.Join(strings.Fields(string(out)), "-")
	epath, err := module.EscapePath(pkg)
	if err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	return filepath.Join(root, "bin", toolchain, filepath.FromSlash(epath)+"@"+version), nil
}
