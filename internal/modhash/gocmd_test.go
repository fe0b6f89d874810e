package modhash

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testenv"
)

// proxyModule is one module version served from a GOPROXY file tree.
type proxyModule struct {
	m   module.Version
	mod string // the .mod file
	zip string // path of the .zip file
}

// TestMatchesGoCommand checks HashZip against the sums the real go command
// computes when it downloads the same module versions from a file:// proxy.
func TestMatchesGoCommand(t *testing.T) {
	goCmd := testenv.LookPath(t, "go")
	plain := mv("example.com/plain", "v1.0.0")
	upper := mv("example.com/Upper/m", "v1.0.0")
	old := mv("example.com/old", "v2.0.0+incompatible")
	dirs := mv("example.com/dirs", "v1.0.0")
	const dirsPrefix = "example.com/dirs@v1.0.0/"
	mods := []proxyModule{
		{plain, "module example.com/plain\n\ngo 1.21\n", createZip(t, plain, fileMap(
			"go.mod", "module example.com/plain\n\ngo 1.21\n", "plain.go", "package plain\n"))},
		{upper, "module example.com/Upper/m\n", createZip(t, upper, fileMap(
			"go.mod", "module example.com/Upper/m\n", "m.go", "package m\n"))},
		{old, "module example.com/old\n", createZip(t, old, fileMap("old.go", "package old\n"))},
		// A directory entry, which the go command's own zips never have, is
		// hashed as an empty file: a proxy's zip must be hashed as served.
		{dirs, "module example.com/dirs\n", rawZip(t,
			[]string{dirsPrefix + "go.mod", dirsPrefix + "sub/", dirsPrefix + "sub/s.go"},
			[]string{"module example.com/dirs\n", "", "package sub\n"})},
	}

	tmp := t.TempDir()
	root := filepath.Join(tmp, "proxy")
	var args []string
	for _, pm := range mods {
		writeProxy(t, root, pm)
		args = append(args, pm.m.String())
	}
	cmd := exec.Command(goCmd, append([]string{"mod", "download", "-json"}, args...)...)
	cmd.Dir = filepath.Join(tmp, "work")
	os.Mkdir(cmd.Dir, 0o755)
	cmd.Env = append(os.Environ(),
		"GOPROXY=file://"+filepath.ToSlash(root), "GOSUMDB=off", "GONOSUMDB=", "GOPRIVATE=",
		"GONOPROXY=", "GOFLAGS=-modcacherw", "GOTOOLCHAIN=local", "GOENV=off", "GOWORK=off",
		"GOPATH="+tmp, "GOMODCACHE="+filepath.Join(tmp, "mod"), "HOME="+testenv.GoHome(t), "XDG_CONFIG_HOME=",
		"GOCACHE="+filepath.Join(tmp, "cache"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download: %v\n%s%s", err, out, stderr.Bytes())
	}

	got := map[string]struct{ Sum, GoModSum, Error string }{}
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var r struct{ Path, Version, Sum, GoModSum, Error string }
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding go mod download output: %v\n%s", err, out)
		}
		got[r.Path+"@"+r.Version] = struct{ Sum, GoModSum, Error string }{r.Sum, r.GoModSum, r.Error}
	}
	for _, pm := range mods {
		g, ok := got[pm.m.String()]
		if !ok || g.Error != "" || g.Sum == "" || g.GoModSum == "" {
			t.Errorf("%s: go mod download reported %+v", pm.m, g)
			continue
		}
		// The go.mod the go command hashed is the .mod file: pass it, and
		// also let HashZip find or synthesize it, which must agree.
		for _, goMod := range [][]byte{[]byte(pm.mod), nil} {
			s, err := HashZip(pm.m, pm.zip, goMod)
			if err != nil {
				t.Errorf("HashZip(%s, goMod %q): %v", pm.m, goMod, err)
				continue
			}
			if s.Hash != g.Sum || s.GoMod != g.GoModSum {
				t.Errorf("HashZip(%s, goMod %q) = %+v; go command: %s %s", pm.m, goMod, s, g.Sum, g.GoModSum)
			}
		}
	}

	// The directory entry changes the hash: the quirk above is real.
	again, err := HashZip(dirs, createZip(t, dirs, fileMap(
		"go.mod", "module example.com/dirs\n", "sub/s.go", "package sub\n")), nil)
	if err != nil || again.Hash == got[dirs.String()].Sum {
		t.Errorf("re-zipped %s: %+v, %v; want a hash other than %s", dirs, again, err, got[dirs.String()].Sum)
	}
}

// writeProxy lays out one module version as a GOPROXY file tree serves it.
func writeProxy(t *testing.T, root string, pm proxyModule) {
	t.Helper()
	escPath, err := module.EscapePath(pm.m.Path)
	if err != nil {
		t.Fatal(err)
	}
	escVers, err := module.EscapeVersion(pm.m.Version)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, filepath.FromSlash(escPath), "@v")
	zipData, err := os.ReadFile(pm.zip)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"list":            []byte(pm.m.Version + "\n"),
		escVers + ".info": []byte(`{"Version":"` + pm.m.Version + `"}`),
		escVers + ".mod":  []byte(pm.mod),
		escVers + ".zip":  zipData,
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
