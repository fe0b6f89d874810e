// Package secret reads the files that hold sumd's secrets, the signing keys
// and the admin token. A secret that other users of the machine can read is
// no longer a secret, and one they can write is not the operator's: sumd
// refuses such a file instead of warning about it, as ssh refuses a private
// key that is "too open".
package secret

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// A ModeError is a secret file that users other than its owner may access.
type ModeError struct {
	Path string
	Mode fs.FileMode // the file's permission bits
}

func (e *ModeError) Error() string {
	return fmt.Sprintf("%s is accessible by other users (mode %s): a secret file must be readable by its owner only", e.Path, e.Mode)
}

// Hint says what to do about it, for the CLI's hint line.
func (e *ModeError) Hint() string {
	return "run chmod 600 " + e.Path + " (and keep it owned by the user sumd runs as)"
}

// CheckMode returns a *ModeError if fi, the result of stat on path, grants
// any permission to its group or to others. Windows has no such bits.
func CheckMode(path string, fi fs.FileInfo) error {
	if runtime.GOOS == "windows" || fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return &ModeError{Path: path, Mode: fi.Mode().Perm()}
}

// ReadFile reads the regular file at path, which must pass CheckMode and
// hold at most limit bytes, and returns its content and the FileInfo of the
// file it read (for callers that cache the content until the file changes).
func ReadFile(path string, limit int64) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	// Stat the open file, not the path: it is the file whose bytes we read,
	// even if the path is replaced meanwhile.
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("failed to stat %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	if err := CheckMode(path, fi); err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("failed to read %s: %w", path, err)
	case int64(len(data)) > limit:
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, fi, nil
}
