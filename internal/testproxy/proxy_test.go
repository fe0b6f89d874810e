package testproxy

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
)

// testMods covers the path and version shapes a checksum database meets.
func testMods() []Module {
	gomod := func(p string) string { return "module " + p + "\n\ngo 1.21\n" }
	src := "package m\n\nconst X = 1\n"
	mods := []Module{
		{Path: "example.com/plain", Version: "v1.0.0", Files: map[string]string{"go.mod": gomod("example.com/plain"), "m.go": src}},
		{Path: "example.com/Upper/m", Version: "v1.0.0", Files: map[string]string{"go.mod": gomod("example.com/Upper/m"), "m.go": src}},
		{Path: "example.com/pseudo", Version: "v0.0.0-20240101000000-abcdefabcdef", Files: map[string]string{"go.mod": gomod("example.com/pseudo"), "m.go": src}},
		{Path: "example.com/old", Version: "v2.0.0+incompatible", Files: map[string]string{"old.go": "package old\n"}},
		{Path: "example.com/plain/v2", Version: "v2.1.0", Files: map[string]string{"go.mod": gomod("example.com/plain/v2"), "m.go": src}},
	}
	return append(mods, Versions("example.com/many", 12)...)
}

func buildTree(t *testing.T) (dir, url string) {
	t.Helper()
	dir = t.TempDir()
	url, err := Build(dir, testMods())
	if err != nil {
		t.Fatal(err)
	}
	return dir, url
}

// downloadInfo is the part of "go mod download -json" output we check.
type downloadInfo struct {
	Path, Version, Error, GoMod, Sum, GoModSum string
}

func TestBuildFileProxy(t *testing.T) {
	t.Parallel()
	dir, url := buildTree(t)
	g := NewGo(t)
	g.Env = []string{"GOPROXY=" + url, "GOSUMDB=off"}
	var args []string
	for _, m := range testMods()[:5] {
		args = append(args, m.Path+"@"+m.Version)
	}
	out, err := g.Run(append([]string{"mod", "download", "-json"}, args...)...)
	if err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	got := make(map[string]downloadInfo)
	for dec := json.NewDecoder(strings.NewReader(out)); ; {
		var info downloadInfo
		if err := dec.Decode(&info); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("failed to decode go mod download output: %v\n%s", err, out)
		}
		got[info.Path+"@"+info.Version] = info
	}
	for _, m := range testMods()[:5] {
		info, ok := got[m.Path+"@"+m.Version]
		if !ok || info.Error != "" || info.Sum == "" || info.GoModSum == "" {
			t.Fatalf("%s@%s: got %+v", m.Path, m.Version, info)
		}
		// The go command hashed the zip at ZipPath: the escaping agrees.
		want, err := dirhash.HashZip(ZipPath(dir, module.Version{Path: m.Path, Version: m.Version}), dirhash.DefaultHash)
		if err != nil || info.Sum != want {
			t.Errorf("%s@%s: Sum = %s, want %s (%v)", m.Path, m.Version, info.Sum, want, err)
		}
	}

	// Without a go.mod, .mod must be exactly what the go command synthesizes.
	old := got["example.com/old@v2.0.0+incompatible"]
	synth := "module example.com/old\n"
	if b, err := os.ReadFile(old.GoMod); err != nil || string(b) != synth {
		t.Errorf("cached go.mod of example.com/old = %q, %v; want %q", b, err, synth)
	}
	want, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(synth)), nil
	})
	if err != nil || old.GoModSum != want {
		t.Errorf("GoModSum of example.com/old = %s, want %s (%v)", old.GoModSum, want, err)
	}
}

func TestServeHTTP(t *testing.T) {
	t.Parallel()
	dir, _ := buildTree(t)
	g := NewGo(t)
	g.Env = []string{"GOPROXY=" + ServeHTTP(t, dir), "GOSUMDB=off"}
	args := []string{"mod", "download"}
	for _, m := range testMods()[:5] {
		args = append(args, m.Path+"@"+m.Version)
	}
	if out, err := g.Run(args...); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	// list is sorted as semver (v1.0.10 after v1.0.9) and @latest follows it.
	out, err := g.Run("list", "-m", "-versions", "example.com/many")
	want := "example.com/many v1.0.0 v1.0.1 v1.0.2 v1.0.3 v1.0.4 v1.0.5 v1.0.6 v1.0.7 v1.0.8 v1.0.9 v1.0.10 v1.0.11\n"
	if err != nil || out != want {
		t.Errorf("go list -m -versions = %q, %v; want %q", out, err, want)
	}
	out, err = g.Run("list", "-m", "example.com/pseudo@latest")
	if err != nil || out != "example.com/pseudo v0.0.0-20240101000000-abcdefabcdef\n" {
		t.Errorf("go list -m example.com/pseudo@latest = %q, %v", out, err)
	}
	out, err = g.Run("mod", "download", "example.com/plain@v1.0.9")
	if err == nil || !strings.Contains(out, "404 Not Found") {
		t.Errorf("download of a missing version: err = %v, output:\n%s", err, out)
	}
}

func TestTamperDetected(t *testing.T) {
	t.Parallel()
	plain := module.Version{Path: "example.com/plain", Version: "v1.0.0"}
	for _, tc := range []struct {
		name, want string
		tamper     func(dir string) error
	}{
		{"zip", "verifying example.com/plain@v1.0.0: checksum mismatch", func(dir string) error {
			return TamperZip(dir, plain)
		}},
		{"mod", "verifying example.com/plain@v1.0.0/go.mod: checksum mismatch", func(dir string) error {
			return os.WriteFile(ModPath(dir, plain), []byte("module example.com/plain\n\ngo 1.22\n"), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, url := buildTree(t)
			g := NewGo(t)
			g.Env = []string{"GOPROXY=" + url, "GOSUMDB=off"}
			if out, err := g.Run("get", "example.com/plain@v1.0.0"); err != nil {
				t.Fatalf("go get: %v\n%s", err, out)
			}
			// Sanity: an untouched tree still verifies against go.sum.
			if err := g.CleanModCache(); err != nil {
				t.Fatal(err)
			}
			if out, err := g.Run("mod", "download", "example.com/plain@v1.0.0"); err != nil {
				t.Fatalf("go mod download before tampering: %v\n%s", err, out)
			}
			if err := tc.tamper(dir); err != nil {
				t.Fatal(err)
			}
			if err := g.CleanModCache(); err != nil {
				t.Fatal(err)
			}
			out, err := g.Run("mod", "download", "example.com/plain@v1.0.0")
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("go mod download after tampering: err = %v, want output containing %q:\n%s", err, tc.want, out)
			}
		})
	}
}

// TestEnvIsolated checks that the parent's GO* settings do not leak and that
// a forgotten GOSUMDB fails closed. It cannot be parallel (t.Setenv).
func TestEnvIsolated(t *testing.T) {
	t.Setenv("GOFLAGS", "-mod=vendor")
	t.Setenv("GOPROXY", "http://127.0.0.1:1")
	t.Setenv("GONOSUMDB", "*")
	_, url := buildTree(t)
	g := NewGo(t)
	out, err := g.Run("env", "GOFLAGS", "GOPROXY", "GONOSUMDB", "GOMODCACHE", "GOTOOLCHAIN")
	want := strings.Join([]string{"-modcacherw", "off", "", filepath.Join(g.GOPATH, "pkg", "mod"), "local"}, "\n") + "\n"
	if err != nil || out != want {
		t.Errorf("go env = %q, %v; want %q", out, err, want)
	}
	g.Env = []string{"GOPROXY=" + url}
	out, err = g.Run("mod", "download", "example.com/plain@v1.0.0")
	if err == nil || !strings.Contains(out, "gosumdb-not-set.testproxy.invalid") {
		t.Errorf("download without GOSUMDB: err = %v, want a failure naming the unset GOSUMDB:\n%s", err, out)
	}
}

func TestBuildMergesLists(t *testing.T) {
	dir := t.TempDir()
	mods := Versions("example.com/many", 3)
	if _, err := Build(dir, mods[1:]); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(dir, mods[:1]); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(filepath.Dir(ModPath(dir, module.Version{Path: "example.com/many", Version: "v1.0.0"})), "list")
	if b, err := os.ReadFile(list); err != nil || string(b) != "v1.0.0\nv1.0.1\nv1.0.2\n" {
		t.Errorf("list = %q, %v", b, err)
	}
	if _, err := Build(dir, append(mods, mods[0])); err == nil {
		t.Error("Build accepted a duplicate module version")
	}
}
