//go:build unix

package scratch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// lockName is the lock file in a scratch directory; Open never removes it.
const lockName = "sumd.lock"

// held are the lock files of the directories this process has opened, by
// the lock file's absolute name. They stay open, and so locked, until the
// process exits.
var (
	heldMu sync.Mutex
	held   = map[string]*os.File{}
)

// lock takes dir for this process (see Open).
func lock(dir string) error {
	name, err := filepath.Abs(filepath.Join(dir, lockName))
	if err != nil {
		return fmt.Errorf("failed to lock the temporary directory: %w", err)
	}
	heldMu.Lock()
	defer heldMu.Unlock()
	if f := held[name]; f != nil {
		if isFile(f, name) {
			return nil
		}
		f.Close() // the directory was removed and made again
		delete(held, name)
	}
	// O_NOFOLLOW and onlyLink: the file is truncated and written below,
	// so a link planted in its place by whoever could write to the
	// directory (the service user whose database root's sumd add opens)
	// must not lead there to a file of theirs to destroy, /etc/shadow.
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		// O_NOFOLLOW's refusal is ELOOP on Linux but EMLINK or EFTYPE
		// elsewhere; Lstat tells the link apart from a directory in its
		// place or a file this user may not open.
		if fi, lerr := os.Lstat(name); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("failed to lock the temporary directory (%s must be a regular file, not a link): %w", name, err)
		}
		return fmt.Errorf("failed to lock the temporary directory: %w", err)
	}
	if err := onlyLink(f); err != nil {
		f.Close()
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("temporary directory %s is %w%s: give each sumd its own -tmp-dir", dir, ErrInUse, holder(f))
		}
		return fmt.Errorf("failed to lock the temporary directory %s: %w", dir, err)
	}
	// The process id is for the message of the next one refused; the
	// lock is what counts.
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	held[name] = f
	return nil
}

// onlyLink refuses a lock file that is not a regular file of one name:
// a hard link to another file would have it truncated.
func onlyLink(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("failed to lock the temporary directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || ok && st.Nlink != 1 {
		return fmt.Errorf("failed to lock the temporary directory: %s is not a regular file of its own (a link to another file?): remove it", f.Name())
	}
	return nil
}

// isFile reports whether the open file f is still the file at name.
func isFile(f *os.File, name string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(name)
	return err == nil && os.SameFile(a, b)
}

// holder names the process that wrote its id into the lock file f, or is "".
func holder(f *os.File) string {
	buf := make([]byte, 20)
	n, _ := f.ReadAt(buf, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil || pid <= 0 {
		return ""
	}
	return fmt.Sprintf(" (pid %d)", pid)
}

// checkOwner refuses dir, of FileInfo fi, unless the user uid owns it.
func checkOwner(dir string, fi os.FileInfo, uid int) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		return fmt.Errorf("temporary directory %s belongs to uid %d, not to this user (uid %d): sumd needs a directory of its own", dir, st.Uid, uid)
	}
	return nil
}
