package seed

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Files returns the go.sum files that paths name. A regular file is taken
// as it is, whatever its name; anything else that is not a directory (a
// named pipe, a device, a socket) is refused, as reading it could block for
// ever or never end; a directory is walked for files named go.sum, skipping
// the directories the go command ignores too (testdata, vendor, and names
// starting with . or _), whose go.sum files are test fixtures or copies. A
// directory holding no go.sum file is an error: the operator meant one.
func Files(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("failed to read go.sum file: %w", err)
		}
		if fi.Mode().IsRegular() {
			files = append(files, p)
			continue
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s is %s, not a go.sum file: name a regular file or a directory (save a stream to a file first)", p, describeType(fi.Mode()))
		}
		found, err := walk(p)
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("directory %s holds no go.sum file (testdata, vendor, and directories starting with . or _ are skipped)", p)
		}
		files = append(files, found...)
	}
	return dedupe(files), nil
}

// describeType names a file type that is neither regular nor a directory.
func describeType(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// walk returns the go.sum files under dir, in lexical order.
func walk(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != dir && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && name == "go.sum" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to walk %s for go.sum files: %w", dir, err)
	}
	return files, nil
}

// dedupe drops the repeats of files named twice, keeping the first. It
// cleans each name once: a directory may hold 100,000 go.sum files.
func dedupe(files []string) []string {
	var out []string
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if c := filepath.Clean(f); !seen[c] {
			seen[c] = true
			out = append(out, f)
		}
	}
	return out
}
