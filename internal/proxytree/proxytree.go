// Package proxytree publishes module versions in a GOPROXY file tree: the
// layout of https://go.dev/ref/mod#goproxy-protocol on disk, which the go
// command reads directly with GOPROXY=file:///path and which any web
// server can serve. It is how `sumd add -proxy-dir` makes the version it
// records downloadable, so that a first experiment with sumd needs no
// module proxy at all.
//
// For module path P and version V (both escaped, see module.EscapePath):
//
//	DIR/P/@v/list      the versions, one per line (pseudo-versions left out,
//	                   as the protocol asks)
//	DIR/P/@v/V.info    {"Version": V, "Time": …}
//	DIR/P/@v/V.mod     the go.mod the go command uses for V
//	DIR/P/@v/V.zip     the module zip, as built by golang.org/x/mod/zip
package proxytree

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/sumd-project/sumd/internal/durable"
)

// ErrChanged means the tree already holds the version with other content.
// A module proxy must never change a version: every go.sum that has it
// would fail, so it is refused.
var ErrChanged = errors.New("the GOPROXY tree already has this version with other content")

// Add publishes version m in the tree at dir: a copy of zipFile, goMod and
// an .info file dated t, then m in the list. Each file is written under a
// temporary name, synced and renamed, and the list last, so that a proxy serving
// the tree meanwhile never lists a version it cannot serve in full. The
// caller has validated the zip and goMod (modhash.HashZip). Adding a
// version again with the same zip and go.mod finishes what an interrupted
// Add left undone (a missing .info or list entry) and changes nothing
// else: an .info already there keeps its time.
func Add(dir string, m module.Version, zipFile string, goMod []byte, t time.Time) error {
	vdir, base, err := paths(dir, m)
	if err != nil {
		return err
	}
	zipData, err := os.ReadFile(zipFile)
	if err != nil {
		return fmt.Errorf("failed to read module zip: %w", err)
	}
	same, err := unchanged(base, zipData, goMod)
	if err != nil {
		return err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{m.Version, t.UTC().Truncate(time.Second)})
	if err != nil {
		return fmt.Errorf("failed to encode .info: %w", err)
	}
	if !same {
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return fmt.Errorf("failed to create GOPROXY tree directory: %w", err)
		}
		for _, f := range []struct {
			ext  string
			data []byte
		}{{".zip", zipData}, {".mod", goMod}, {".info", append(info, '\n')}} {
			if err := writeFile(base+f.ext, f.data); err != nil {
				return err
			}
		}
	} else if err := writeIfMissing(base+".info", append(info, '\n')); err != nil {
		return err
	}
	// The renames of the files must be on disk before the list's: a
	// crash must not leave a listed version without its files.
	if err := durable.SyncDir(vdir); err != nil {
		return err
	}
	if err := addToList(filepath.Join(vdir, "list"), m.Version); err != nil {
		return err
	}
	return durable.SyncDir(vdir)
}

// writeIfMissing writes data to name unless name exists.
func writeIfMissing(name string, data []byte) error {
	_, err := os.Lstat(name)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("failed to look for %s: %w", name, err)
	}
	return writeFile(name, data)
}

// paths returns the @v directory of m and the path of its files without
// the extension.
func paths(dir string, m module.Version) (vdir, base string, err error) {
	ep, err := module.EscapePath(m.Path)
	if err != nil {
		return "", "", fmt.Errorf("failed to escape module path: %w", err)
	}
	ev, err := module.EscapeVersion(m.Version)
	if err != nil {
		return "", "", fmt.Errorf("failed to escape version: %w", err)
	}
	vdir = filepath.Join(dir, filepath.FromSlash(ep), "@v")
	return vdir, filepath.Join(vdir, ev), nil
}

// unchanged reports whether the tree already has the version with this
// zip and go.mod, and refuses it if it has other content.
func unchanged(base string, zipData, goMod []byte) (bool, error) {
	oldZip, err := os.ReadFile(base + ".zip")
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to read the published zip: %w", err)
	}
	oldMod, err := os.ReadFile(base + ".mod")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("failed to read the published go.mod: %w", err)
	}
	if !bytes.Equal(oldZip, zipData) || err == nil && !bytes.Equal(oldMod, goMod) {
		return false, fmt.Errorf("%s.zip: %w", base, ErrChanged)
	}
	return err == nil, nil // a missing .mod is written again
}

// addToList adds version to the list file, keeping it in semver order.
func addToList(list, version string) error {
	if module.IsPseudoVersion(version) {
		return nil // the protocol lists tagged versions only
	}
	data, err := os.ReadFile(list)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed to read %s: %w", list, err)
	}
	versions := strings.Fields(string(data))
	for _, v := range versions {
		if v == version {
			return nil
		}
	}
	versions = append(versions, version)
	semver.Sort(versions)
	return writeFile(list, []byte(strings.Join(versions, "\n")+"\n"))
}

// writeFile writes data to name through a temporary file in the same
// directory and a rename, so that readers see the old file or the new one.
// The file is synced before the rename: else a crash could leave the new
// name on an empty file (ext4's delayed allocation), a broken version the
// next Add takes for another build (ErrChanged). The caller syncs the
// directory.
func writeFile(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	_, err = io.Copy(tmp, bytes.NewReader(data))
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = syncFile(tmp)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", name, err)
	}
	return nil
}

// syncFile syncs a file written (writeFile); tests make it fail.
var syncFile = (*os.File).Sync
