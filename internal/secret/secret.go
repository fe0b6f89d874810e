// Package secret reads the files that hold sumd's secrets, the signing keys
// and the admin token. A secret that other users of the machine can read is
// no longer a secret, and one they can write is not the operator's: sumd
// refuses such a file instead of warning about it, as ssh refuses a private
// key that is "too open".
package secret

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Changed reports whether the file now at a path (b, from stat) may hold
// other content than the one read before (a): for callers that keep a
// secret in memory until its file changes. A rotation by rename gives
// another inode, an edit in place another modification time or size; a
// chmod must be seen too, since the mode decides whether the file is
// accepted. A rewrite in place that keeps the size and restores the
// modification time (cp -p, rsync -t) changes only the change time
// (ctime), which no one can set back: it is compared where the system
// has one (unix).
func Changed(a, b fs.FileInfo) bool {
	return !os.SameFile(a, b) || !a.ModTime().Equal(b.ModTime()) || a.Size() != b.Size() || a.Mode() != b.Mode() ||
		!ctime(a).Equal(ctime(b))
}

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
//
// One exception: a systemd credential (a file directly in
// $CREDENTIALS_DIRECTORY, as LoadCredential= places it) may show group
// read. systemd writes it 0400 and lets the unit's user read it through an
// ACL entry, and stat shows the ACL's mask in the group bits (0440) though
// no group can read it; the directory is read-only, and only the unit sees
// it.
func CheckMode(path string, fi fs.FileInfo) error {
	perm := fi.Mode().Perm()
	allowed := fs.FileMode(0)
	if isCredential(path) {
		allowed = 0o040
	}
	if runtime.GOOS == "windows" || perm&0o077&^allowed == 0 {
		return nil
	}
	return &ModeError{Path: path, Mode: perm}
}

// isCredential reports whether path names a file directly in the systemd
// credentials directory of this process.
func isCredential(path string) bool {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return false
	}
	abs, err := filepath.Abs(path)
	credDir, derr := filepath.Abs(dir)
	return err == nil && derr == nil && filepath.Dir(abs) == credDir
}

// A NotExistError is a secret file that is not there, named by something
// that does not look like a file's name. Its message does not repeat that
// name: it is often the secret itself, pasted where its file belongs, and
// the error goes to a terminal or the journal. Callers name the option
// instead.
type NotExistError struct {
	looksSecret bool // no path separator, and a token's length
}

// Hide returns err, an error of opening or stat'ing path, as a
// *NotExistError if the file is not there and path does not look like a
// file's name (pathLike); else err, which names it.
func Hide(path string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) || pathLike(path) {
		return err
	}
	return &NotExistError{looksSecret: len(path) >= 16 && !strings.ContainsAny(path, "/"+string(filepath.Separator))}
}

// pathLike reports whether name ends in a short extension (.key, .token,
// .pem, .htpasswd, in either case: .TOKEN too): no token has one, as
// neither base64 nor hex has a dot, and a JWT's last part is long.
func pathLike(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return len(ext) >= 2 && len(ext) <= 9 && strings.Trim(ext[1:], "abcdefghijklmnopqrstuvwxyz0123456789") == ""
}

func (e *NotExistError) Error() string {
	if e.looksSecret {
		return "no such file, and its name (not repeated here) looks like a secret rather than a path: give the file that holds the secret"
	}
	return "no such file (its name is not repeated here, in case it is the secret itself)"
}

// Is makes errors.Is(err, fs.ErrNotExist) true.
func (e *NotExistError) Is(target error) bool { return target == fs.ErrNotExist }

// ReadFile reads the regular file at path, which must pass CheckMode and
// hold at most limit bytes, and returns its content and the FileInfo of the
// file it read (for callers that cache the content until the file changes).
// A missing file's error goes through Hide.
func ReadFile(path string, limit int64) ([]byte, fs.FileInfo, error) {
	return read(path, limit, true)
}

// ReadPublicFile is ReadFile for a file that holds nothing secret (a
// certificate): any mode will do.
func ReadPublicFile(path string, limit int64) ([]byte, fs.FileInfo, error) {
	return read(path, limit, false)
}

func read(path string, limit int64, secret bool) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	switch {
	case err != nil && secret:
		return nil, nil, Hide(path, err)
	case err != nil:
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
	if secret {
		if err := CheckMode(path, fi); err != nil {
			return nil, nil, err
		}
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
