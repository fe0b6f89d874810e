// Package regfile reads regular files without the runtime's poller.
//
// os.Open registers every file it opens with the runtime's network poller.
// On Linux that fails for a regular file (epoll refuses them), but only
// after the os package has put the descriptor into non-blocking mode and
// back: an open costs four fcntl(2) and a failed epoll_ctl(2) besides the
// openat(2), fstat(2) and close(2) it needs, about 14 µs where the plain
// system calls take 6. sumd's first lookup of a version opens its .mod and
// its zip, small files read once, so a File is an open regular file and
// nothing more: no poller, no deadlines, reads that block their thread as
// reads of regular files do anyway.
package regfile

import (
	"errors"
	"io"
	"io/fs"
)

// ErrNotRegular is a name that is not a regular file (a directory, a
// device, a FIFO), which Open refuses, wrapped in an *fs.PathError. It is
// a condition of the file system, not of anything read.
var ErrNotRegular = errors.New("not a regular file")

var (
	_ io.ReadCloser = (*File)(nil)
	_ io.ReaderAt   = (*File)(nil)
)

// errNegativeOffset is ReadAt's refusal of an offset before the file's
// start, with the os package's text. It carries no syscall.Errno: a
// negative offset is the caller's error (a zip's lying directory offset),
// not the file system's, and modhash.IsFileError tells the two apart by
// the Errno.
var errNegativeOffset = errors.New("negative offset")

// clip cuts a read of p at off down to the file's size when it was opened,
// and reports whether it cut anything: ReadAt then answers io.EOF, as
// bytes.Reader does, so that a zip read from a file and from memory fail
// alike. It keeps an offset taken from what was read from the kernel: a
// zip whose header put an entry at 2^63-8 made pread(2) fail with EINVAL
// (the offset plus the count overflows), an Errno caused by the zip alone,
// which modhash.IsFileError took for the file system's failure. A file
// grown since it was opened is read no further than it was then, which
// Changed reports.
func clip(p []byte, off, size int64) (q []byte, cut bool) {
	if off >= size {
		return p[:0], len(p) > 0
	}
	if rest := size - off; int64(len(p)) > rest {
		return p[:rest], true
	}
	return p, false
}

func pathError(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}
