package tuf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sumd-project/sumd/internal/durable"
)

// Directories and files of a repository.
const (
	metadataDir = "metadata"
	targetsDir  = "targets"
	lockFile    = ".lock"
	// DefaultOnlineKeys is where the online keys live unless configured
	// otherwise, relative to the repository directory.
	DefaultOnlineKeys = "keys"
	timestampFile     = "timestamp.json"
)

// maxMetadata caps every metadata file read or served. go-tuf's client
// accepts a root of 512,000 bytes and a timestamp of 16 KiB; sumd's are a
// few KiB.
const maxMetadata = 1 << 20

// versionedName is the file of version v of a role, "<v>.<role>.json".
func versionedName(v int64, role string) string {
	return strconv.FormatInt(v, 10) + "." + role + ".json"
}

// versions lists the versions of role in dir/metadata, ascending.
func versions(dir, role string) ([]int64, error) {
	entries, err := os.ReadDir(filepath.Join(dir, metadataDir))
	if err != nil {
		return nil, fmt.Errorf("failed to list metadata: %w", err)
	}
	var vs []int64
	for _, e := range entries {
		num, ok := strings.CutSuffix(e.Name(), "."+role+".json")
		if v, ok2 := parseVersion(num); ok && ok2 {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// maxVersion bounds the versions sumd signs: far below what clients
// (int64) and parseVersion (18 digits) accept, and out of reach of any
// honest repository (a version a minute for 190 billion years). Metadata
// signed at or above it can only come from a leaked online key.
const maxVersion int64 = 1e17

// nextVersion returns the version of role after v (at least 1), refusing
// to reach maxVersion: the next version of a leaked key's 2^63-1 is an
// error, never an overflow.
func nextVersion(role string, v int64) (int64, error) {
	if v >= maxVersion-1 {
		return 0, fmt.Errorf("refusing to sign %s version %d or above (it would follow version %d of verified metadata): "+
			"no honest repository gets there, only a leaked key", role, maxVersion, v)
	}
	return max(v, 0) + 1, nil
}

// freeVersion returns the first version of role above after whose file
// does not exist. Versions come from verified metadata only; a file in
// the way (a write interrupted before the timestamp named it, or a file
// planted by someone without the keys) is stepped over, never trusted:
// a planted far-away name raises nothing, and each planted name in the
// way costs its writer one file.
func (r *Repo) freeVersion(role string, after int64) (int64, error) {
	for v := after; ; {
		var err error
		if v, err = nextVersion(role, v); err != nil {
			return 0, err
		}
		_, err = os.Lstat(filepath.Join(r.dir, metadataDir, versionedName(v, role)))
		if errors.Is(err, fs.ErrNotExist) {
			return v, nil
		}
		if err != nil {
			return 0, fmt.Errorf("failed to check for %s version %d: %w", role, v, err)
		}
	}
}

// parseVersion parses a metadata version: a positive decimal number
// without leading zeros, so that one version has one file name.
func parseVersion(s string) (int64, bool) {
	if s == "" || s[0] == '0' || len(s) > 18 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// targetFile is where a target's content lives with consistent snapshots:
// targets/<dir>/<sha256 hex>.<base>, as go-tuf's updater asks for it.
func targetFile(path string, data []byte) string {
	sum := sha256.Sum256(data)
	return hashedTargetFile(path, sum[:])
}

func hashedTargetFile(path string, sum []byte) string {
	dir, base := filepath.Split(path)
	return filepath.Join(targetsDir, dir, hex.EncodeToString(sum)+"."+base)
}

// readCapped reads a regular file of at most max bytes. It follows no
// symbolic link in the last element and opens nothing else: a link or a
// FIFO planted in the repository by someone who may write there but not
// read the keys must neither serve the keys it points at nor block the
// reader (which may hold the repository's lock) for ever.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|readFlags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readRegular(f, nil, max)
}

// readRegular reads f, at most max bytes, if it is a regular file and,
// when want is not nil, the file want describes (os.SameFile).
func readRegular(f *os.File, want fs.FileInfo, max int64) ([]byte, error) {
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", f.Name())
	case want != nil && !os.SameFile(fi, want):
		return nil, fmt.Errorf("%s: %w", f.Name(), errReplaced)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(data)) > max {
		err = fmt.Errorf("%s is larger than %d bytes", f.Name(), max)
	}
	return data, err
}

// writeNew writes data to path, which must not exist: versioned metadata
// and hashed targets never change once written. The data reaches the disk
// before the name appears (a temporary file, synced, then linked), so a
// crash leaves either no file or the whole file. It returns an error
// matching fs.ErrExist if path exists.
func writeNew(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// writeTarget writes a content-addressed target file. The name is the
// content's hash, so an existing file should hold these bytes; one that
// does not (damaged on disk, written by someone without the keys, a link
// or a FIFO) is replaced, since clients refuse it on its hash.
func writeTarget(path string, data []byte) error {
	if err := mkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("failed to create targets directory: %w", err)
	}
	err := writeNew(path, data)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	if old, err := readCapped(path, int64(len(data))); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return replaceFile(path, data)
}

// replaceFile replaces path with data atomically (rename): readers see the
// old file or the new one, never a part.
func replaceFile(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("failed to replace %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes data to a synced temporary file beside path, mode 0644:
// metadata and targets are public.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return "", fmt.Errorf("failed to create temporary file: %w", err)
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Chmod(0o644), syncFile(f), f.Close())
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("failed to write temporary file: %w", err)
	}
	return f.Name(), nil
}

// syncDir makes a new or renamed name in dir durable.
var syncDir = durable.SyncDir

// syncFile makes the content of a file written in full durable; tests
// watch it.
var syncFile = (*os.File).Sync

// mkdirAll is os.MkdirAll, also syncing the parent of each directory it
// creates: until then a crash may lose the new directory's name, and with
// it the files synced into it.
func mkdirAll(dir string, perm fs.FileMode) error {
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) || filepath.Dir(d) == d {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}
