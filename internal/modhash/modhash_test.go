package modhash

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/sumd-project/sumd/internal/regfile"
)

// memFile is an in-memory modzip.File.
type memFile struct {
	fsys fstest.MapFS
	name string
}

func (f memFile) Path() string                 { return f.name }
func (f memFile) Lstat() (os.FileInfo, error)  { return f.fsys.Stat(f.name) }
func (f memFile) Open() (io.ReadCloser, error) { return f.fsys.Open(f.name) }

func mv(path, version string) module.Version { return module.Version{Path: path, Version: version} }

// fileMap builds a module's files from name, content pairs.
func fileMap(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// createZip writes the module zip of files the way the go command builds one.
func createZip(t *testing.T, m module.Version, files map[string]string) string {
	t.Helper()
	fsys := fstest.MapFS{}
	var list []modzip.File
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data), Mode: 0o644}
		list = append(list, memFile{fsys, name})
	}
	var buf bytes.Buffer
	if err := modzip.Create(&buf, m, list); err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, buf.Bytes())
}

// rawZip writes a zip with exactly the given entries, bypassing every check.
func rawZip(t *testing.T, names []string, data []string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, name := range names {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, data[i])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, buf.Bytes())
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "m.zip")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestHashDirMatchesHashZip(t *testing.T) {
	m := mv("example.com/m", "v1.2.3")
	files := fileMap("go.mod", "module example.com/m\n", "m.go", "package m\n", "sub/s.go", "package sub\n")
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// What the go command leaves out must not change the hash.
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "nested"), 0o755)
	os.WriteFile(filepath.Join(dir, "nested", "go.mod"), []byte("module example.com/m/nested\n"), 0o644)

	got, err := HashDir(m, dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := HashZip(m, createZip(t, m, files), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("HashDir = %+v, HashZip = %+v", got, want)
	}
	if wantMod, _ := GoModHash([]byte(files["go.mod"])); got.GoMod != wantMod {
		t.Errorf("GoMod = %s, want hash of the go.mod in the dir %s", got.GoMod, wantMod)
	}
}

func TestRefusals(t *testing.T) {
	const p = "example.com/m@v1.0.0/"
	goMod := "module example.com/m\n"
	big := strings.Repeat(" ", MaxGoMod+1) // deflates to a few KiB
	tests := []struct {
		name  string
		m     module.Version
		zip   func(t *testing.T) string
		goMod string
		want  string
	}{
		{"traversal", mv("example.com/m", "v1.0.0"), func(t *testing.T) string {
			return rawZip(t, []string{p + "go.mod", p + "../x"}, []string{goMod, "x"})
		}, "", `example.com/m@v1.0.0/../x: malformed file path "../x": invalid path element ".."`},
		{"duplicate", mv("example.com/m", "v1.0.0"), func(t *testing.T) string {
			return rawZip(t, []string{p + "a.go", p + "a.go"}, []string{"package a\n", "package b\n"})
		}, "", `multiple entries for file "a.go"`},
		{"case-fold", mv("example.com/m", "v1.0.0"), func(t *testing.T) string {
			return rawZip(t, []string{p + "a.go", p + "A.go"}, []string{"package a\n", "package a\n"})
		}, "", `case-insensitive file name collision: "a.go" and "A.go"`},
		{"go.mod too large", mv("example.com/m", "v1.0.0"), func(t *testing.T) string {
			return rawZip(t, []string{p + "go.mod"}, []string{big})
		}, "", "go.mod file too large"},
		{"outside prefix", mv("example.com/m", "v1.0.0"), func(t *testing.T) string {
			return rawZip(t, []string{p + "go.mod", "example.com/other@v1.0.0/x.go"}, []string{goMod, "package x\n"})
		}, "", `example.com/other@v1.0.0/x.go: path does not have prefix "example.com/m@v1.0.0/"`},
		{"go.mod mismatch", mv("example.com/m", "v1.0.0"), func(t *testing.T) string {
			return createZip(t, mv("example.com/m", "v1.0.0"), fileMap("go.mod", goMod))
		}, "module example.com/m\n\ngo 1.26\n", "go.mod differs from the go.mod in the zip"},
		{"major without suffix", mv("example.com/m", "v2.0.0"), func(t *testing.T) string {
			return rawZip(t, []string{"example.com/m@v2.0.0/go.mod"}, []string{goMod})
		}, "", "invalid version: should be v0 or v1, not v2"},
		{"non-canonical", mv("example.com/m", "v1.0"), func(t *testing.T) string {
			return rawZip(t, []string{"example.com/m@v1.0/go.mod"}, []string{goMod})
		}, "", `version "v1.0" is not canonical (should be "v1.0.0")`},
		{"/v2 without go.mod", mv("example.com/m/v2", "v2.0.0"), func(t *testing.T) string {
			return rawZip(t, []string{"example.com/m/v2@v2.0.0/m.go"}, []string{"package m\n"})
		}, "", "zip has no go.mod, which a module path ending in /v2 requires"},
		// A proxy's .mod for a zip without go.mod: the go command, fetching
		// from the origin, synthesizes "module PATH" and would find any other
		// recorded hash a SECURITY ERROR; and a /vN path needs a go.mod in the
		// zip whatever the proxy says.
		{"made-up .mod for a zip without go.mod", mv("example.com/m", "v1.0.0"), func(t *testing.T) string {
			return createZip(t, mv("example.com/m", "v1.0.0"), fileMap("m.go", "package m\n"))
		}, "module example.com/m\n\nrequire example.com/x v1.0.0\n", `the zip has no go.mod, so the go command uses "module example.com/m\n"`},
		{"made-up .mod, +incompatible", mv("example.com/m", "v2.0.0+incompatible"), func(t *testing.T) string {
			return createZip(t, mv("example.com/m", "v2.0.0+incompatible"), fileMap("m.go", "package m\n"))
		}, "module example.com/m\n\ngo 1.21\n", "the zip has no go.mod"},
		// A +incompatible zip with a go.mod: the go command fetching from
		// the origin uses that go.mod. Any other .mod is not it: a torn
		// copy of a go.mod written in place in a proxy's tree, cut after
		// its module line, was recorded for ever.
		{"torn .mod, +incompatible", mv("example.com/m", "v2.0.0+incompatible"), func(t *testing.T) string {
			return createZip(t, mv("example.com/m", "v2.0.0+incompatible"), fileMap("go.mod", "module example.com/m\n\ngo 1.21\n\nrequire example.com/x v1.0.0\n"))
		}, "module example.com/m\n\ngo 1.21\n\nrequ", "go.mod differs from the go.mod in the zip"},
		// Cut right after its module line, the torn copy is the go.mod
		// the go command synthesizes for a zip without one, which it never
		// uses for a zip with one: a +incompatible version's too.
		{"torn .mod after its module line, +incompatible", mv("example.com/m", "v2.0.0+incompatible"), func(t *testing.T) string {
			return createZip(t, mv("example.com/m", "v2.0.0+incompatible"), fileMap("go.mod", "module example.com/m\n\ngo 1.21\n"))
		}, "module example.com/m\n", "go.mod differs from the go.mod in the zip"},
		{"/v2 without go.mod, .mod given", mv("example.com/m/v2", "v2.0.0"), func(t *testing.T) string {
			return rawZip(t, []string{"example.com/m/v2@v2.0.0/m.go"}, []string{"package m\n"})
		}, "module example.com/m/v2\n", "zip has no go.mod, which a module path ending in /v2 requires"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var goMod []byte
			if tt.goMod != "" {
				goMod = []byte(tt.goMod)
			}
			_, err := HashZip(tt.m, tt.zip(t), goMod)
			if err == nil {
				t.Fatalf("HashZip succeeded, want error containing %q", tt.want)
			}
			prefix := "failed to hash " + tt.m.String() + ": "
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want %q then %q", msg, prefix, tt.want)
			}
		})
	}
}

func TestGoModChoice(t *testing.T) {
	own := "module example.com/m\n\ngo 1.21\n"
	outside := "module example.com/m\n"
	tests := []struct {
		m           module.Version
		files       map[string]string
		given, want string
	}{
		{mv("example.com/m", "v1.0.0"), fileMap("go.mod", own), "", own},
		{mv("example.com/m", "v1.0.0"), fileMap("go.mod", own), own, own},
		{mv("example.com/m", "v1.0.0"), fileMap("m.go", "package m\n"), "", outside},
		{mv("example.com/m", "v1.0.0"), fileMap("m.go", "package m\n"), outside, outside},
		{mv("example.com/m", "v2.0.0+incompatible"), fileMap("m.go", "package m\n"), outside, outside},
		{mv("example.com/m", "v2.0.0+incompatible"), fileMap("go.mod", own), own, own},
		{mv("example.com/m", "v2.0.0+incompatible"), fileMap("m.go", "package m\n"), "", outside},
		{mv("gopkg.in/m.v2", "v2.0.0"), fileMap("m.go", "package m\n"), "", "module gopkg.in/m.v2\n"},
	}
	for _, tt := range tests {
		var given []byte
		if tt.given != "" {
			given = []byte(tt.given)
		}
		got, err := HashZip(tt.m, createZip(t, tt.m, tt.files), given)
		if err != nil {
			t.Errorf("%s given %q: %v", tt.m, tt.given, err)
			continue
		}
		if want, _ := GoModHash([]byte(tt.want)); got.GoMod != want {
			t.Errorf("%s given %q: GoMod = %s, want hash of %q (%s)", tt.m, tt.given, got.GoMod, tt.want, want)
		}
	}
}

func TestGoModHash(t *testing.T) {
	// A line of sum.golang.org, as found in public go.sum files:
	//	gopkg.in/yaml.v2 v2.0.0-20170812160011-eb3733d160e7/go.mod h1:JAlM8MvJe8wmxCU4Bli9HhUf9+ttbYbLASfIpnQbh74=
	// yaml.v2 had no go.mod in 2017: a v2 of a gopkg.in path gets the
	// synthesized go.mod, where a "/v2" path would be refused.
	got, err := GoModHash(SynthesizedGoMod("gopkg.in/yaml.v2"))
	if want := "h1:JAlM8MvJe8wmxCU4Bli9HhUf9+ttbYbLASfIpnQbh74="; err != nil || got != want {
		t.Errorf("GoModHash(synthesized yaml.v2) = %q, %v; want %q", got, err, want)
	}
	if _, err := GoModHash(make([]byte, MaxGoMod+1)); err == nil {
		t.Error("GoModHash accepted a go.mod over MaxGoMod")
	}
}

// TestDeclaredPath refuses a module whose go.mod names another path, as the
// go command does ("module declares its path as ...").
func TestDeclaredPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/m\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "m.go"), []byte("package m\n"), 0o644)
	_, err := HashDir(module.Version{Path: "example.com/other", Version: "v1.0.0"}, dir)
	if err == nil || !strings.Contains(err.Error(), `go.mod declares module path "example.com/m", not "example.com/other"`) {
		t.Fatalf("HashDir with another path = %v, want the declared-path error", err)
	}
	if _, err := HashDir(module.Version{Path: "example.com/m", Version: "v1.0.0"}, dir); err != nil {
		t.Fatalf("HashDir with the declared path: %v", err)
	}
}

// TestHashZipSizes holds HashZip to dirhash.HashZip and to the zip's own
// go.mod on both sides of wholeZip: zips read into memory and zips read
// where they lie.
func TestHashZipSizes(t *testing.T) {
	m := mv("example.com/big", "v1.0.0")
	for _, size := range []int{wholeZip / 2, wholeZip * 2} {
		// Bytes that do not compress, so that the zip is about size.
		data := make([]byte, size)
		x := uint32(size)
		for i := range data {
			x = x*1664525 + 1013904223
			data[i] = byte(x >> 24)
		}
		goMod := "module example.com/big\n"
		name := createZip(t, m, fileMap("go.mod", goMod, "blob.bin", string(data)))
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if (size > wholeZip) != (fi.Size() > wholeZip) {
			t.Fatalf("a zip of %d bytes holding %d: on the wrong side of wholeZip", fi.Size(), size)
		}
		got, err := HashZip(m, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := dirhash.HashZip(name, dirhash.Hash1)
		if err != nil {
			t.Fatal(err)
		}
		wantMod, _ := GoModHash([]byte(goMod))
		if got.Hash != want || got.GoMod != wantMod {
			t.Errorf("zip of %d bytes: HashZip = %+v; want %s and %s", fi.Size(), got, want, wantMod)
		}
	}
}

// TestHashZipFile: HashZipFile of an open zip is HashZip's answer, and it
// reads the file that was opened: another zip renamed over its name
// meanwhile changes nothing.
func TestHashZipFile(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	name := createZip(t, m, fileMap("go.mod", "module example.com/m\n", "m.go", "package m\n"))
	want, err := HashZip(m, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := regfile.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other := createZip(t, m, fileMap("go.mod", "module example.com/m\n", "m.go", "package m // other\n"))
	if err := os.Rename(other, name); err != nil {
		t.Fatal(err)
	}
	if got, err := HashZipFile(m, f, nil); err != nil || got != want {
		t.Errorf("HashZipFile = %+v, %v; want the opened zip's %+v", got, err, want)
	}
	if _, err := HashZipFile(mv("example.com/m", "v1.0"), f, nil); err == nil || !strings.Contains(err.Error(), "not canonical") {
		t.Errorf("HashZipFile of a non-canonical version: %v, want it refused", err)
	}
}
