// Package secret reads the files that hold sumd's secrets, the signing keys
// and the admin token. A secret that other users of the machine can read is
// no longer a secret, and one they can write is not the operator's: sumd
// refuses such a file instead of warning about it, as ssh refuses a private
// key that is "too open".
package secret

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
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
//
// Time stamps are coarse on some file systems (a second, two on FAT): a
// rewrite of the same length within the tick of a read shows the same
// stat as the file read, and would go unseen until the next change (a
// revoked password valid meanwhile). So if a is the stat ReadFile or
// ReadPublicFile returned for a read that may share its tick with a later
// write (racy, as git calls it), Changed compares the file's content with
// the content read too, until a compare finds it unchanged safely past
// its stamp: a write after that has another stamp. That is a few small
// reads for each change, whatever the number of calls in between.
func Changed(a, b fs.FileInfo) bool {
	r, _ := a.(*readInfo)
	a, b = plain(a), plain(b)
	if !os.SameFile(a, b) || !a.ModTime().Equal(b.ModTime()) || a.Size() != b.Size() || a.Mode() != b.Mode() ||
		!ctime(a).Equal(ctime(b)) {
		return true
	}
	return r != nil && r.rewritten()
}

// racyWindow is how long after a file's stamp (stamp) a read may share the
// stamp's tick with a later write: the coarsest time stamps, FAT's, are of
// two seconds. A file system whose clock is ahead of sumd's (NFS) makes
// reads racy for longer, which costs reads; one behind by more than this
// is not covered.
const racyWindow = 2 * time.Second

// now is the clock reads are timed by; tests set it.
var now = time.Now

// stamp is when fi's file last changed: its change time, set by every
// write and which no one can set back, else its modification time.
func stamp(fi fs.FileInfo) time.Time {
	if c := ctime(fi); !c.IsZero() {
		return c
	}
	return fi.ModTime()
}

// racy reports whether a read of fi's file begun at t may share the tick
// of its stamp with a later write, which then leaves the stat unchanged.
func racy(fi fs.FileInfo, t time.Time) bool { return t.Sub(stamp(fi)) < racyWindow }

// A readInfo is the stat of a file as read, with what Changed needs to
// tell whether a racy read's file was rewritten since.
type readInfo struct {
	fs.FileInfo
	path string
	sum  [sha256.Size]byte // of the content read
	racy atomic.Bool       // the read, or the last compare, may share its tick with a write
}

// plain returns the stat a readInfo wraps (os.SameFile wants it), or fi.
func plain(fi fs.FileInfo) fs.FileInfo {
	if r, ok := fi.(*readInfo); ok {
		return r.FileInfo
	}
	return fi
}

// rewritten reports whether the file at r.path may hold other content
// than the one read, comparing it while the read is racy. A compare that
// finds it unchanged and begins safely past the stamp ends that: a write
// after it has another stamp. A file that cannot be read is a change, for
// the caller to read again and report.
func (r *readInfo) rewritten() bool {
	if !r.racy.Load() {
		return false
	}
	t := now()
	f, err := os.Open(r.path)
	if err != nil {
		return true
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, r.Size()+1))
	if err != nil || n != r.Size() || [sha256.Size]byte(h.Sum(nil)) != r.sum {
		return true
	}
	if !racy(r.FileInfo, t) {
		r.racy.Store(false)
	}
	return false
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
// file's name (PathLike); else err, which names it.
func Hide(path string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) || PathLike(path) {
		return err
	}
	return &NotExistError{looksSecret: len(path) >= 16 && !strings.ContainsAny(path, "/"+string(filepath.Separator))}
}

// PathLike reports whether name ends in a short extension (.key, .token,
// .pem, .htpasswd, in either case: .TOKEN too): no token has one, as
// neither base64 nor hex has a dot, and a JWT's last part is long.
func PathLike(name string) bool {
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
// file it read, for callers that cache the content until the file changes:
// given to Changed as a, it lets Changed see a rewrite the stat misses.
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
	t := now() // before the read: a write after t has a stamp of t's tick or later
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
	ri := &readInfo{FileInfo: fi, path: path, sum: sha256.Sum256(data)}
	ri.racy.Store(racy(fi, t))
	return data, ri, nil
}
