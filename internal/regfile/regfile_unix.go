//go:build unix

package regfile

import (
	"io"

	"golang.org/x/sys/unix"
)

// A File is a regular file open for reading. It is not safe for
// concurrent use, except ReadAt.
type File struct {
	fd   int
	name string
	st   unix.Stat_t // when opened
}

// Open opens the regular file name for reading. Errors are *fs.PathError:
// of the system calls (wrapping their syscall.Errno, so that a missing
// file is fs.ErrNotExist), or ErrNotRegular. It opens with O_NONBLOCK, which
// reads of a regular file ignore, so that a FIFO in the file's place is
// refused rather than waited on for a writer.
func Open(name string) (*File, error) {
	fd, err := ignoringEINTR2(func() (int, error) {
		return unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	})
	if err != nil {
		return nil, pathError("open", name, err)
	}
	f := &File{fd: fd, name: name}
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &f.st) }); err != nil {
		unix.Close(fd)
		return nil, pathError("stat", name, err)
	}
	if f.st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, pathError("open", name, ErrNotRegular)
	}
	return f, nil
}

// Name is the name f was opened by.
func (f *File) Name() string { return f.name }

// Size is f's size when it was opened.
func (f *File) Size() int64 { return f.st.Size }

// Read reads from f's offset, as io.Reader: io.EOF at the end.
func (f *File) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := ignoringEINTR2(func() (int, error) { return unix.Read(f.fd, p) })
	switch {
	case err != nil:
		return 0, pathError("read", f.name, err)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt: fewer only with an
// error, io.EOF at the end, which is Size: nothing past it is read (see
// clip).
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, pathError("readat", f.name, errNegativeOffset)
	}
	p, cut := clip(p, off, f.st.Size)
	done := 0
	for done < len(p) {
		n, err := ignoringEINTR2(func() (int, error) { return unix.Pread(f.fd, p[done:], off+int64(done)) })
		if err != nil {
			return done, pathError("read", f.name, err)
		}
		if n == 0 {
			return done, io.EOF
		}
		done += n
	}
	if cut {
		return done, io.EOF
	}
	return done, nil
}

// Changed reports whether f's size or modification time differs now from
// when it was opened: whether it was written to (or truncated, or its
// time set back by hand) in between. A rename or removal of its name
// does not change the open file.
func (f *File) Changed() (bool, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(f.fd, &st) }); err != nil {
		return true, pathError("stat", f.name, err)
	}
	return st.Size != f.st.Size || st.Mtim != f.st.Mtim, nil
}

// Close closes f.
func (f *File) Close() error {
	if err := unix.Close(f.fd); err != nil {
		return pathError("close", f.name, err)
	}
	return nil
}

// ignoringEINTR retries fn interrupted by a signal, as the os package
// does: the runtime's handlers restart most system calls, not all.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

func ignoringEINTR2(fn func() (int, error)) (int, error) {
	for {
		if n, err := fn(); err != unix.EINTR {
			return n, err
		}
	}
}
