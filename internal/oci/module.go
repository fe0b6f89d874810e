package oci

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"

	"github.com/sumd-project/sumd/internal/modhash"
)

// A Module is a module version ready to push: a zip the go command accepts
// and the go.mod it would use, with their go.sum hashes.
type Module struct {
	Version module.Version
	Zip     string       // path of the module zip
	GoMod   []byte       // the go.mod layer: the zip's, or the one the go command synthesizes
	Sums    modhash.Sums // what the log will record
	tmp     string       // a zip OpenModule made, removed by Close
}

// OpenModule prepares module version m from src, a module directory (zipped
// as the go command does, with zip.CreateFromDir) or a module zip, and
// validates it with modhash as `sumd add` does: what cannot be recorded is
// not pushed. Close removes the temporary zip made from a directory.
func OpenModule(m module.Version, src string) (*Module, error) {
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("failed to read module source: %w", err)
	}
	mod := &Module{Version: m, Zip: src}
	if fi.IsDir() {
		if mod.tmp, err = zipDir(m, src); err != nil {
			return nil, err
		}
		mod.Zip = mod.tmp
	}
	if err := mod.load(); err != nil {
		mod.Close()
		return nil, err
	}
	return mod, nil
}

// load validates and hashes the zip and picks the go.mod layer.
func (mod *Module) load() error {
	// HashZip runs zip.CheckZip first, which bounds every size read below.
	sums, err := modhash.HashZip(mod.Version, mod.Zip, nil)
	if err != nil {
		return err
	}
	if mod.GoMod, err = zipGoMod(mod.Version, mod.Zip); err != nil {
		return err
	}
	if mod.GoMod == nil {
		mod.GoMod = modhash.SynthesizedGoMod(mod.Version.Path)
	}
	mod.Sums = sums
	return nil
}

// Close removes the temporary zip, if OpenModule made one.
func (mod *Module) Close() {
	if mod.tmp != "" {
		os.Remove(mod.tmp)
	}
}

func zipDir(m module.Version, dir string) (string, error) {
	f, err := os.CreateTemp("", "sumd-push-*.zip")
	if err != nil {
		return "", fmt.Errorf("failed to create temporary file: %w", err)
	}
	err = modzip.CreateFromDir(f, m, dir)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("failed to zip %s: %w", dir, err)
	}
	return f.Name(), nil
}

// zipGoMod returns path@version/go.mod from a zip that passed CheckZip, or
// nil if it has none.
func zipGoMod(m module.Version, zipPath string) ([]byte, error) {
	z, err := zip.OpenReader(zipPath)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	f, err := z.Open(m.Path + "@" + m.Version + "/go.mod")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read go.mod from %s: %w", zipPath, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, modhash.MaxGoMod+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read go.mod from %s: %w", zipPath, err)
	}
	if len(data) > modhash.MaxGoMod {
		return nil, fmt.Errorf("go.mod in %s is larger than %d bytes", zipPath, modhash.MaxGoMod)
	}
	return data, nil
}
