package testproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/testenv"
)

// Go runs the real go command for tests in an isolated, offline environment.
// Make one with NewGo.
type Go struct {
	// GOPATH is kept across runs, so the client's saved tree head
	// ($GOPATH/pkg/sumdb/<name>/latest) persists like a real user's.
	GOPATH string
	// Env holds extra KEY=VALUE settings, e.g. GOPROXY=… and GOSUMDB=….
	// They override everything else.
	Env []string
	// Dir is the work module's directory (module example.com/e2etest).
	Dir string

	bin  string          // absolute path of the go command
	home string          // HOME, GOCACHE and the user config dir live here
	ctx  context.Context // cancelled when the test ends
}

// NewGo makes an isolated environment under t.TempDir(): a GOPATH, a build
// cache, a HOME and a work module. Without a go command on PATH it ends the
// test as testenv.Need does: a skip locally, a failure in CI.
func NewGo(t testing.TB) *Go {
	t.Helper()
	bin := testenv.LookPath(t, "go")
	root := t.TempDir()
	g := &Go{
		GOPATH: filepath.Join(root, "gopath"),
		Dir:    filepath.Join(root, "work"),
		bin:    bin,
		home:   testenv.GoHome(t),
		ctx:    t.Context(),
	}
	for _, d := range []string{g.GOPATH, g.Dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gomod := "module example.com/e2etest\n\ngo 1.21\n"
	if err := os.WriteFile(filepath.Join(g.Dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	return g
}

// unsetSumDB is the default GOSUMDB: a well-formed key nobody holds, at a
// host that cannot resolve (RFC 6761 .invalid). A test that forgets to set
// GOSUMDB thus fails, naming the problem, instead of passing unchecked (as
// with off) or asking sum.golang.org over the network (the go default).
const unsetSumDB = "gosumdb-not-set.testproxy.invalid+2f9172d4+AabRYb7YzQCYm4Wf/lXgSEnAcuUNx62qJaAJYCoJ7nGV" +
	" https://gosumdb-not-set.testproxy.invalid"

// Environ returns the environment Run uses: the process environment minus
// every GO* variable and the ones below, then the fixed settings, then Env.
func (g *Go) Environ() []string {
	fixed := map[string]string{
		"GOPATH":       g.GOPATH,
		"GOMODCACHE":   filepath.Join(g.GOPATH, "pkg", "mod"),
		"GOCACHE":      filepath.Join(g.home, "gocache"),
		"HOME":         g.home,
		"GOFLAGS":      "-modcacherw", // lets t.TempDir remove the module cache
		"GOTOOLCHAIN":  "local",
		"GOWORK":       "off",
		"GOENV":        "off",
		"CGO_ENABLED":  "0",
		"GOPROXY":      "off", // never the network unless a test says so
		"GOSUMDB":      unsetSumDB,
		"GONOSUMDB":    "",
		"GONOSUMCHECK": "",
		"GOPRIVATE":    "",
		"GONOPROXY":    "",
		"GOINSECURE":   "",
	}
	// Dropped so that nothing (telemetry, caches) writes outside the
	// test's directory: os.UserConfigDir and UserCacheDir fall back to HOME.
	drop := map[string]bool{"XDG_CONFIG_HOME": true, "XDG_CACHE_HOME": true}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := fixed[k]; ok || drop[k] || strings.HasPrefix(k, "GO") {
			continue
		}
		env = append(env, kv)
	}
	keys := make([]string, 0, len(fixed))
	for k := range fixed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+fixed[k])
	}
	// exec.Cmd keeps the last value of a duplicated key, so Env wins.
	return append(env, g.Env...)
}

// Run runs "go args..." in the work module and returns its combined output
// (stdout and stderr together; "go mod download -json" writes nothing else).
// The command is killed when the test ends, so do not call Run in Cleanup.
func (g *Go) Run(args ...string) (string, error) {
	cmd := exec.CommandContext(g.ctx, g.bin, args...)
	cmd.Dir = g.Dir
	cmd.Env = g.Environ()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// CleanModCache runs "go clean -modcache". The client's saved tree head in
// $GOPATH/pkg/sumdb survives it, as it does for real users.
func (g *Go) CleanModCache() error {
	out, err := g.Run("clean", "-modcache")
	if err != nil {
		return &runError{args: "clean -modcache", out: out, err: err}
	}
	return nil
}

type runError struct {
	args, out string
	err       error
}

func (e *runError) Error() string { return "go " + e.args + ": " + e.err.Error() + "\n" + e.out }
func (e *runError) Unwrap() error { return e.err }

// ServeHTTP serves the GOPROXY tree at dir over HTTP on 127.0.0.1 until the
// test ends and returns its URL. Missing files are 404s, which the go command
// reads as "not found here".
func ServeHTTP(t testing.TB, dir string) string {
	t.Helper()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return srv.URL
}
