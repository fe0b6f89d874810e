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
// version, the Go toolchain and the target platform. The user cache dir is
// os.UserCacheDir(): $XDG_CACHE_HOME or ~/.cache on Linux.
//
// Several test processes may want the same command at once (go test runs
// packages in parallel, and developers run several go tests): one builds
// while holding a lock file, the others wait for it, and the binary enters
// the cache by a rename, so nobody ever runs a half-written one.

// installs coalesces the builds of one test process.
var installs sync.Map // "pkg@version" → func() (string, error)

// installOnce returns the function that builds pkgAtVersion once for this
// process, with the timeout of the first caller.
func installOnce(pkgAtVersion string, timeout time.Duration) func() (string, error) {
	f, _ := installs.LoadOrStore(pkgAtVersion, sync.OnceValues(func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return install(ctx, pkgAtVersion)
	}))
	return f.(func() (string, error))
}

// StartInstall begins GoInstall's work for pkgAtVersion in the background,
// so that a cold build overlaps with other tests: call it from TestMain
// when a test that needs the command will run. GoInstall then waits for it.
func StartInstall(pkgAtVersion string, timeout time.Duration) {
	go installOnce(pkgAtVersion, timeout)()
}

// GoInstall returns the path of the command that `go install pkg@version`
// builds, from the cache or, the first time, by building it within timeout.
// A build that cannot start or fails (no go command, no module proxy) ends
// the test as Need does: a skip locally, a failure in CI. A build cut off by
// the timeout always fails the test: the timeout is too short for this
// machine, and skipping would hide it.
func GoInstall(t testing.TB, pkgAtVersion string, timeout time.Duration) string {
	t.Helper()
	start := time.Now()
	bin, err := installOnce(pkgAtVersion, timeout)()
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("go install %s took longer than %s: %v", pkgAtVersion, timeout, err)
	}
	Need(t, "go install "+pkgAtVersion+" (the go command and the Go module proxy)", err)
	if d := time.Since(start); d > time.Second {
		t.Logf("waited %s for go install %s (cached in %s)", d.Round(time.Second), pkgAtVersion, filepath.Dir(bin))
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
	// -s -w: no symbol table or DWARF, which tests never use and which make
	// linking cosign's 130 MB slower. -N -l: no optimization or inlining,
	// which the tests do not need either (they run each command a few
	// times); -dwarf=false: no DWARF compiled in the first place. A cold
	// cosign v2 build took 528 s of CPU so, 602 without -dwarf=false, and
	// 699 with neither.
	cmd := exec.CommandContext(ctx, "go", "install", "-ldflags=-s -w", "-gcflags=all=-N -l -dwarf=false", pkgAtVersion)
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

// cacheRoot returns the directory of the cache; tests replace it.
var cacheRoot = func() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for built commands (set XDG_CACHE_HOME): %w", err)
	}
	return filepath.Join(cache, "sumd-test"), nil
}

// installDir is the cache directory of pkg at version.
func installDir(ctx context.Context, pkg, version string) (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION", "GOOS", "GOARCH").Output()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
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
