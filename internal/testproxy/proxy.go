// Package testproxy is test-support code only: it must be imported only from
// _test.go files.
//
// It builds GOPROXY file trees (the $GOPROXY/<module>/@v/… layout of
// https://go.dev/ref/mod#goproxy-protocol) from in-memory modules, serves them
// over HTTP, and runs the real go command against them in an isolated,
// offline environment, so that end-to-end tests exercise sumd exactly as a
// user's go command would.
package testproxy

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	modzip "golang.org/x/mod/zip"
)

// Module is one module version to publish.
type Module struct {
	Path, Version string
	// Files maps a file name, relative to the module root, to its content.
	// Include "go.mod" unless testing a module without one.
	Files map[string]string
	// Time is reported in the .info file; zero means DefaultTime.
	Time time.Time
}

// DefaultTime is the .info time of a Module whose Time is zero.
var DefaultTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Build writes a GOPROXY file tree for mods under dir:
// dir/<escaped path>/@v/{list,<escaped version>.info,.mod,.zip}.
// It returns the file:// URL of the tree, ready for GOPROXY.
//
// The .mod file is the module's go.mod or, when it has none, the
// "module <path>\n" that the go command synthesizes for such modules.
// Pseudo-versions are left out of list, as the protocol asks; a module with
// only pseudo-versions gets an @latest naming the newest one. Build may be
// called again on the same dir to publish more versions: lists are merged.
func Build(dir string, mods []Module) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("failed to resolve %s: %w", dir, err)
	}
	lists := make(map[string][]string) // module path -> listed versions
	pseudo := make(map[string]Module)  // module path -> newest pseudo-version
	seen := make(map[module.Version]bool)
	for _, m := range mods {
		mv := module.Version{Path: m.Path, Version: m.Version}
		if seen[mv] {
			return "", fmt.Errorf("duplicate module %s", mv)
		}
		seen[mv] = true
		if err := writeModule(abs, m); err != nil {
			return "", fmt.Errorf("failed to write %s: %w", mv, err)
		}
		if _, ok := lists[m.Path]; !ok {
			lists[m.Path] = nil
		}
		if !module.IsPseudoVersion(m.Version) {
			lists[m.Path] = append(lists[m.Path], m.Version)
		} else if p, ok := pseudo[m.Path]; !ok || semver.Compare(m.Version, p.Version) > 0 {
			pseudo[m.Path] = m
		}
	}
	if err := writeLists(abs, lists, pseudo); err != nil {
		return "", err
	}
	return fileURL(abs), nil
}

// writeLists writes each module's list, merged with any list an earlier Build
// left there, and, when nothing is listed, an @latest naming the newest
// pseudo-version, which is what the go command then asks for.
func writeLists(dir string, lists map[string][]string, pseudo map[string]Module) error {
	for p, vs := range lists {
		listFile := filepath.Join(vDir(dir, p), "list")
		old, err := os.ReadFile(listFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failed to read list of %s: %w", p, err)
		}
		vs = append(vs, strings.Fields(string(old))...)
		semver.Sort(vs)
		vs = slices.Compact(vs)
		var b strings.Builder
		for _, v := range vs {
			b.WriteString(v + "\n")
		}
		if err := os.WriteFile(listFile, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("failed to write list of %s: %w", p, err)
		}
		if m, ok := pseudo[p]; ok && len(vs) == 0 {
			info, err := infoJSON(m)
			if err == nil {
				err = os.WriteFile(filepath.Join(filepath.Dir(vDir(dir, p)), "@latest"), info, 0o644)
			}
			if err != nil {
				return fmt.Errorf("failed to write @latest of %s: %w", p, err)
			}
		}
	}
	return nil
}

// fileURL returns the file:// URL of abs: file:///tmp/x, file:///C:/x.
func fileURL(abs string) string {
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return "file://" + p
}

// writeModule writes the .info, .mod and .zip files of one module version.
func writeModule(dir string, m Module) error {
	mv := module.Version{Path: m.Path, Version: m.Version}
	if err := module.Check(m.Path, m.Version); err != nil {
		return err
	}
	var zb bytes.Buffer
	if err := modzip.Create(&zb, mv, memFiles(m.Files)); err != nil {
		return err
	}
	info, err := infoJSON(m)
	if err != nil {
		return err
	}
	gomod, ok := m.Files["go.mod"]
	if !ok {
		gomod = "module " + modfile.AutoQuote(m.Path) + "\n"
	}
	if err := os.MkdirAll(vDir(dir, m.Path), 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		filePath(dir, mv, ".info"): info,
		ModPath(dir, mv):           []byte(gomod),
		ZipPath(dir, mv):           zb.Bytes(),
	} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// infoJSON returns the .info (and @latest) content for m.
func infoJSON(m Module) ([]byte, error) {
	t := m.Time
	if t.IsZero() {
		t = DefaultTime
	}
	return json.Marshal(struct {
		Version string
		Time    time.Time
	}{m.Version, t.UTC()})
}

// ZipPath returns the path of m's .zip in the tree at dir; it panics on a bad m.
func ZipPath(dir string, m module.Version) string {
	return filePath(dir, m, ".zip")
}

// ModPath returns the path of m's .mod in the tree at dir; it panics on a bad m.
func ModPath(dir string, m module.Version) string {
	return filePath(dir, m, ".mod")
}

func filePath(dir string, m module.Version, ext string) string {
	v, err := module.EscapeVersion(m.Version)
	if err != nil {
		panic(fmt.Sprintf("testproxy: %v", err))
	}
	return filepath.Join(vDir(dir, m.Path), v+ext)
}

// vDir returns dir/<escaped path>/@v.
func vDir(dir, modPath string) string {
	p, err := module.EscapePath(modPath)
	if err != nil {
		panic(fmt.Sprintf("testproxy: %v", err))
	}
	return filepath.Join(dir, filepath.FromSlash(p), "@v")
}

// Versions returns n distinct versions v1.0.0 … v1.0.<n-1> of the module at
// modPath, each with a go.mod and a small .go file that differs per version,
// one minute apart from DefaultTime.
func Versions(modPath string, n int) []Module {
	mods := make([]Module, n)
	for i := range mods {
		v := fmt.Sprintf("v1.0.%d", i)
		mods[i] = Module{
			Path:    modPath,
			Version: v,
			Files: map[string]string{
				"go.mod": "module " + modPath + "\n\ngo 1.21\n",
				"v.go":   "package m\n\n// Version is this module's version.\nconst Version = \"" + v + "\"\n",
			},
			Time: DefaultTime.Add(time.Duration(i) * time.Minute),
		}
	}
	return mods
}

// memFiles adapts files to modzip.File, sorted so zips are reproducible.
func memFiles(files map[string]string) []modzip.File {
	out := make([]modzip.File, 0, len(files))
	for name, data := range files {
		out = append(out, memFile{name, data})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path() < out[j].Path() })
	return out
}

// memFile is a regular file held in memory; it is also its own fs.FileInfo.
type memFile struct{ name, data string }

func (f memFile) Path() string                 { return f.name }
func (f memFile) Lstat() (fs.FileInfo, error)  { return f, nil }
func (f memFile) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(f.data)), nil }
func (f memFile) Name() string                 { return path.Base(f.name) }
func (f memFile) Size() int64                  { return int64(len(f.data)) }
func (f memFile) Mode() fs.FileMode            { return 0o644 }
func (f memFile) ModTime() time.Time           { return time.Time{} }
func (f memFile) IsDir() bool                  { return false }
func (f memFile) Sys() any                     { return nil }

// TamperZip rewrites m's .zip in the tree at dir as a still well-formed zip
// whose content differs by one bit: the last byte of its first non-empty
// file. The go command then reports "checksum mismatch". Flipping a raw byte
// of the zip instead is either unnoticed (local-header names are never read
// back) or fails the read with a bare "zip: checksum error".
func TamperZip(dir string, m module.Version) error {
	name := ZipPath(dir, m)
	names, contents, err := readZip(name)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	tampered := false
	for i, data := range contents {
		if !tampered && len(data) > 0 {
			data[len(data)-1] ^= 1
			tampered = true
		}
		w, err := zw.Create(names[i])
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if !tampered {
		return fmt.Errorf("failed to tamper with %s: no file has content", name)
	}
	return os.WriteFile(name, buf.Bytes(), 0o644)
}

// readZip returns the names and contents of the files in the zip at name.
func readZip(name string) (names []string, contents [][]byte, err error) {
	zr, err := zip.OpenReader(name)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to open %s: %w", name, err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		var data []byte
		rc, err := f.Open()
		if err == nil {
			data, err = io.ReadAll(rc)
			rc.Close()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("failed to read %s in %s: %w", f.Name, name, err)
		}
		names = append(names, f.Name)
		contents = append(contents, data)
	}
	return names, contents, nil
}
