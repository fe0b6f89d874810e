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
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// ErrChanged means the tree already holds the version with other content.
// A module proxy must never change a version: every go.sum that has it
// would fail, so it is refused.
var ErrChanged = errors.New("the GOPROXY tree already has this version with other content")

// Add publishes version m in the tree at dir: a copy of zipFile, goMod and
// an .info file dated t, then m in the list. Each file is written under a
// temporary name, synced and renamed, and the list last, so that a proxy
// serving the tree meanwhile never lists a version it cannot serve in
// full. The caller has validated the zip and goMod (modhash.HashZip).
// Adding a version again with the same zip and go.mod finishes what an
// interrupted Add left undone (a missing .info or list entry) and changes
// nothing else: an .info already there keeps its time.
//
// Add reads and writes in dir only (os.Root): a symbolic link in the tree
// that leads out of it is an error, never followed, since whoever may
// write to the tree (a web server's user) must not have Add copy another
// file into the list it serves, or write elsewhere.
func Add(dir string, m module.Version, zipFile string, goMod []byte, t time.Time) error {
	vdir, base, err := paths(m)
	if err != nil {
		return err
	}
	// The zip is copied and compared in pieces, never held: it may be
	// 500 MiB (modhash.MaxZipFile).
	zf, err := os.Open(zipFile)
	if err != nil {
		return fmt.Errorf("failed to read module zip: %w", err)
	}
	defer zf.Close()
	tr, err := openTree(dir)
	if err != nil {
		return err
	}
	defer tr.root.Close()
	same, err := tr.unchanged(base, zf, goMod)
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
		if err := tr.mkdirAll(vdir); err != nil {
			return err
		}
		if _, err := zf.Seek(0, io.SeekStart); err != nil { // unchanged may have read it
			return fmt.Errorf("failed to read module zip: %w", err)
		}
		for _, f := range []struct {
			ext  string
			data io.Reader
		}{{".zip", zf}, {".mod", bytes.NewReader(goMod)}, {".info", bytes.NewReader(append(info, '\n'))}} {
			if err := tr.writeFrom(base+f.ext, f.data); err != nil {
				return err
			}
		}
	} else if err := tr.writeIfMissing(base+".info", append(info, '\n')); err != nil {
		return err
	}
	// The renames of the files must be on disk before the list's: a
	// crash must not leave a listed version without its files.
	if err := tr.syncDir(vdir); err != nil {
		return err
	}
	if err := tr.addToList(filepath.Join(vdir, "list"), m.Version); err != nil {
		return err
	}
	return tr.syncDir(vdir)
}

// A tree is a GOPROXY tree open for Add. Names are relative to its root.
type tree struct {
	root *os.Root
	dir  string // for messages
}

// openTree opens the tree at dir, creating dir if needed.
func openTree(dir string) (*tree, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create GOPROXY tree directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to open GOPROXY tree: %w", err)
	}
	return &tree{root: root, dir: dir}, nil
}

// path is name's path for messages.
func (tr *tree) path(name string) string { return filepath.Join(tr.dir, name) }

// writeIfMissing writes data to name unless name exists.
func (tr *tree) writeIfMissing(name string, data []byte) error {
	_, err := tr.root.Lstat(name)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("failed to look for %s: %w", tr.path(name), err)
	}
	return tr.writeFile(name, data)
}

// paths returns the @v directory of m and the path of its files without
// the extension, relative to the tree.
func paths(m module.Version) (vdir, base string, err error) {
	ep, err := module.EscapePath(m.Path)
	if err != nil {
		return "", "", fmt.Errorf("failed to escape module path: %w", err)
	}
	ev, err := module.EscapeVersion(m.Version)
	if err != nil {
		return "", "", fmt.Errorf("failed to escape version: %w", err)
	}
	vdir = filepath.Join(filepath.FromSlash(ep), "@v")
	return vdir, filepath.Join(vdir, ev), nil
}

// unchanged reports whether the tree already has the version with the
// zip zf and goMod, and refuses it if it has other content.
func (tr *tree) unchanged(base string, zf *os.File, goMod []byte) (bool, error) {
	oldZip, err := tr.root.Open(base + ".zip")
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to read the published zip: %w", err)
	}
	defer oldZip.Close()
	sameZip, err := sameContent(oldZip, zf)
	if err != nil {
		return false, fmt.Errorf("failed to compare the published zip with %s: %w", zf.Name(), err)
	}
	oldMod, err := tr.root.ReadFile(base + ".mod")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("failed to read the published go.mod: %w", err)
	}
	if !sameZip || err == nil && !bytes.Equal(oldMod, goMod) {
		return false, fmt.Errorf("%s.zip: %w", tr.path(base), ErrChanged)
	}
	return err == nil, nil // a missing .mod is written again
}

// sameContent reports whether a and b hold the same bytes, reading both
// in pieces of compareChunk bytes.
func sameContent(a, b io.Reader) (bool, error) {
	bufA, bufB := make([]byte, compareChunk), make([]byte, compareChunk)
	for {
		na, errA := io.ReadFull(a, bufA)
		nb, errB := io.ReadFull(b, bufB)
		if errA != nil && errA != io.EOF && errA != io.ErrUnexpectedEOF {
			return false, errA
		}
		if errB != nil && errB != io.EOF && errB != io.ErrUnexpectedEOF {
			return false, errB
		}
		if !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		if errA != nil || errB != nil { // both ended: a shorter one differed above
			return true, nil
		}
	}
}

// compareChunk is the size of the pieces sameContent compares.
const compareChunk = 64 << 10

// addToList adds version to the list file, keeping it in semver order.
func (tr *tree) addToList(list, version string) error {
	if module.IsPseudoVersion(version) {
		return nil // the protocol lists tagged versions only
	}
	data, err := tr.root.ReadFile(list)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed to read %s: %w", tr.path(list), err)
	}
	versions := strings.Fields(string(data))
	for _, v := range versions {
		if v == version {
			return nil
		}
	}
	versions = append(versions, version)
	semver.Sort(versions)
	return tr.writeFile(list, []byte(strings.Join(versions, "\n")+"\n"))
}

// writeFile writes data to name, as writeFrom does.
func (tr *tree) writeFile(name string, data []byte) error {
	return tr.writeFrom(name, bytes.NewReader(data))
}

// writeFrom writes what r holds to name through a temporary file in the
// same directory and a rename, so that readers see the old file or the
// new one. The file is synced before the rename: else a crash could leave
// the new name on an empty file (ext4's delayed allocation), a broken
// version the next Add takes for another build (ErrChanged). The caller
// syncs the directory.
func (tr *tree) writeFrom(name string, r io.Reader) error {
	tmp, f, err := tr.createTemp(filepath.Dir(name))
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", tr.path(name), err)
	}
	defer tr.root.Remove(tmp) // a no-op after the rename
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(0o644) // whatever the umask: the tree is public
	}
	if err == nil {
		err = syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = tr.root.Rename(tmp, name)
	}
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", tr.path(name), err)
	}
	return nil
}

// mkdirAll creates dir in the tree with its missing parents, and syncs
// the directory holding each one it created: a new name survives a crash
// only once its directory is synced, and a lost module directory takes
// its published versions with it.
func (tr *tree) mkdirAll(dir string) error {
	var missing []string
	for d := dir; d != "."; d = filepath.Dir(d) {
		if _, err := tr.root.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break // there (or an error MkdirAll reports)
		}
		missing = append(missing, d)
	}
	if err := tr.root.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create GOPROXY tree directory: %w", err)
	}
	for _, d := range missing {
		if err := tr.syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// createTemp creates a new file ".tmp-<random>" in dir, as os.CreateTemp
// does, which os.Root lacks.
func (tr *tree) createTemp(dir string) (string, *os.File, error) {
	for range 10000 {
		name := filepath.Join(dir, ".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := tr.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			return name, f, err
		}
	}
	return "", nil, errors.New("no free temporary name")
}

// syncDir makes the names just renamed in dir durable: a rename survives
// a crash only once its directory is synced.
func (tr *tree) syncDir(dir string) error {
	d, err := tr.root.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to open directory %s: %w", tr.path(dir), err)
	}
	defer d.Close()
	if err := syncDirFile(d); err != nil {
		return fmt.Errorf("failed to sync directory %s: %w", tr.path(dir), err)
	}
	return nil
}

// syncFile syncs a file written (writeFile); tests make it fail.
var syncFile = (*os.File).Sync

// syncDirFile syncs a directory (syncDir); a test records them.
var syncDirFile = (*os.File).Sync
