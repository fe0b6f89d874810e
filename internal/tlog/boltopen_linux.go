//go:build linux

package tlog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// writableOpenFile returns bbolt's OpenFile for a file opened for writing:
// the file opened and locked, its writes synced and its cached pages
// dropped, before bbolt reads a byte of it.
//
// Why: after a failed fdatasync (or a failed writeback, in this process or
// in one that exited or was killed since), Linux may mark the pages it
// could not write clean and keep them in the page cache, readable
// ("fsyncgate"). A failed sync in this process is fatal (ErrFatal), and
// the restarted process reopens the file; without this, bbolt would read
// the meta page and the tree from those pages, and the Log would publish a
// head that is not on disk, which a later power loss rolls back under
// clients that were served it, and the next commit would sign a fork.
//
// The order matters. bbolt reads the first page (pread) and maps the file
// right after it takes its flock, and fadvise does not drop pages that
// another process still maps: the previous writer may not have exited yet.
// So this takes the exclusive flock itself, on the file bbolt will use
// (flock locks belong to the open file, so bbolt's own flock on it then
// succeeds at once), and only then, with no other sumd holding the file:
//
//   - fsync, which writes what the page cache still holds dirty (a writer
//     killed between its write and its sync) or fails: then the file is
//     not opened, as after any failed sync. fsync, not bbolt's fdatasync:
//     once per open, the file's size and times come along, and a fault
//     injected into fdatasync (tests, PROTOCOL.md §6) still reaches the
//     commits it is aimed at;
//   - fadvise(POSIX_FADV_DONTNEED) over the whole file, which drops the
//     clean pages — those on disk and those a failed writeback marked
//     clean — so that bbolt reads the file from the disk.
//
// Not covered: pages another process maps (a read-only opener takes a
// shared flock, so none while this lock is held; only a program ignoring
// the lock could) are not dropped; a read-only open (BoltOptions.ReadOnly)
// does neither step and may read such pages, which is acceptable for a
// process that never publishes or signs; and a disk that acknowledges a
// write it then loses is beyond what the kernel can tell.
//
// The file locked must still be the one at the path: a process waiting for
// the lock may get it only after the file it opened was renamed away (sumd
// restore moves the database aside and the restored one into its place
// while it holds the old one), and would then sign heads on a tree no
// longer at the path, beside the one that is: a fork. So, once locked,
// the file is compared with the one at the path, and on a difference
// closed and the path opened again, within the same timeout.
//
// Only the first open may create the file, and only if create is set
// (BoltOptions.Create; bbolt always asks for O_CREATE). A path found empty
// once the lock is held had a file when this opened it, moved or removed
// since (an operator's mv, a restore failing partway): a new, empty file
// there would be refused as holding no log, and left to say so on the next
// start instead of that the database is missing, or, with create set,
// become a second log under the same key. So the reopen fails with an
// fs.ErrNotExist instead.
func writableOpenFile(timeout time.Duration, create bool) func(string, int, os.FileMode) (*os.File, error) {
	return func(path string, flag int, mode os.FileMode) (*os.File, error) {
		deadline := time.Now().Add(timeout)
		if !create {
			flag &^= os.O_CREATE
		}
		for retry := false; ; retry = true {
			f, err := os.OpenFile(path, flag, mode)
			if retry && errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("the file was moved or removed while this waited for its lock, and is not created again: %w", err)
			}
			if err != nil {
				return nil, err
			}
			flag &^= os.O_CREATE
			if beforeLock != nil {
				beforeLock(path)
			}
			same, err := lockAtPath(f, path, deadline)
			if err == nil && same {
				err = syncAndDrop(f)
				if err == nil {
					return f, nil
				}
			}
			f.Close()
			if err != nil {
				return nil, err
			}
			if time.Now().After(deadline) {
				// A file system whose files do not compare equal with
				// themselves would have this loop forever.
				return nil, fmt.Errorf("failed to open %s: the file at the path changed under every lock taken until the timeout", path)
			}
		}
	}
}

// beforeLock, if set by a test, runs between writableOpenFile's open and
// its lock.
var beforeLock func(path string)

// lockAtPath takes f's exclusive flock, waiting until deadline as bbolt
// does (then bbolt's ErrTimeout), and reports whether f is still the file
// at path. A path that no longer exists is not f: opening it again fails
// (writableOpenFile).
func lockAtPath(f *os.File, path string, deadline time.Time) (bool, error) {
	if err := lockFile(f, deadline); err != nil {
		return false, err
	}
	held, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("failed to stat %s: %w", f.Name(), err)
	}
	now, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to stat %s: %w", path, err)
	}
	return os.SameFile(held, now), nil
}

// lockFile takes f's exclusive flock, waiting until deadline.
func lockFile(f *os.File, deadline time.Time) error {
	fd := int(f.Fd())
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK {
			return fmt.Errorf("failed to lock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			return bolterrors.ErrTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncAndDrop syncs the locked f and drops its cached pages.
func syncAndDrop(f *os.File) error {
	fd := int(f.Fd())
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("failed to sync %s before reading it (its last writes may not be on disk): %w", f.Name(), err)
	}
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("failed to drop the cached pages of %s: %w", f.Name(), err)
	}
	return nil
}
