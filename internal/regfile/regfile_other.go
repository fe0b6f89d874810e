//go:build !unix

package regfile

import (
	"io"
	"os"
	"time"
)

// A File is a regular file open for reading: where the poller's cost is
// not measured, an *os.File.
type File struct {
	f    *os.File
	size int64
	mod  time.Time
}

// Open opens the regular file name for reading. Errors are *fs.PathError,
// ErrNotRegular among them.
func Open(name string) (*File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, pathError("open", name, ErrNotRegular)
	}
	return &File{f: f, size: fi.Size(), mod: fi.ModTime()}, nil
}

func (f *File) Name() string { return f.f.Name() }
func (f *File) Size() int64  { return f.size }

func (f *File) Read(p []byte) (int, error) { return f.f.Read(p) }

func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, pathError("readat", f.f.Name(), errNegativeOffset)
	}
	p, cut := clip(p, off, f.size)
	n, err := f.f.ReadAt(p, off)
	if err == nil && cut {
		err = io.EOF
	}
	return n, err
}

func (f *File) Changed() (bool, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return true, err
	}
	return fi.Size() != f.size || !fi.ModTime().Equal(f.mod), nil
}

func (f *File) Close() error { return f.f.Close() }

var _ io.ReaderAt = (*File)(nil)
