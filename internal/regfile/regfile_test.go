package regfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func writeFile(t *testing.T, data string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func open(t *testing.T, name string) *File {
	t.Helper()
	f, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestRead: Read reads the file through to io.EOF, ReadAt at any offset,
// short only at the end, with io.EOF.
func TestRead(t *testing.T) {
	const text = "module example.com/m\n"
	f := open(t, writeFile(t, text))
	if f.Size() != int64(len(text)) {
		t.Errorf("Size = %d, want %d", f.Size(), len(text))
	}
	data, err := io.ReadAll(f)
	if err != nil || string(data) != text {
		t.Errorf("ReadAll = %q, %v; want %q", data, err, text)
	}
	buf := make([]byte, 7)
	if n, err := f.ReadAt(buf, 7); n != 7 || err != nil || string(buf) != text[7:14] {
		t.Errorf("ReadAt(7) = %d, %v, %q; want %q", n, err, buf[:n], text[7:14])
	}
	if n, err := f.ReadAt(buf, int64(len(text))-3); n != 3 || err != io.EOF || string(buf[:n]) != text[len(text)-3:] {
		t.Errorf("ReadAt over the end = %d, %v, %q; want 3, EOF", n, err, buf[:n])
	}
}

// TestReadAtNegative: a negative offset is refused with an error that
// names no errno, as the os package's is: modhash counts an Errno as the
// file system's failure, and this one is the caller's (a zip's lie).
func TestReadAtNegative(t *testing.T) {
	f := open(t, writeFile(t, "data"))
	var errno syscall.Errno
	if _, err := f.ReadAt(make([]byte, 2), -1); err == nil || errors.As(err, &errno) {
		t.Errorf("ReadAt(-1) = %v, want an error without an Errno", err)
	}
}

// TestReadAtPastEnd: past the file's size ReadAt reads nothing and
// answers io.EOF, as bytes.Reader does, up to offsets whose sum with the
// count overflows, where pread(2) fails with EINVAL: an Errno, which
// modhash counts as the file system's failure, caused by what was read (a
// zip's lying offset).
func TestReadAtPastEnd(t *testing.T) {
	f := open(t, writeFile(t, "data"))
	for _, off := range []int64{4, 5, 1 << 40, 1<<63 - 8, 1<<63 - 1} {
		if n, err := f.ReadAt(make([]byte, 16), off); n != 0 || err != io.EOF {
			t.Errorf("ReadAt(%d) = %d, %v; want 0, io.EOF", off, n, err)
		}
	}
}

// TestOpenRefuses: a missing name is fs.ErrNotExist with its Errno; a
// directory is ErrNotRegular.
func TestOpenRefuses(t *testing.T) {
	var errno syscall.Errno
	if _, err := Open(filepath.Join(t.TempDir(), "gone")); !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &errno) {
		t.Errorf("Open(missing) = %v, want fs.ErrNotExist with its Errno", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Open(directory) = %v, want ErrNotRegular", err)
	}
}

// TestChanged: a write to the open file, or its time set back, is a
// change; its name renamed away and replaced is not (the open file is
// still the one read).
func TestChanged(t *testing.T) {
	name := writeFile(t, "0123456789")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(name, old, old); err != nil {
		t.Fatal(err)
	}
	changed := func(f *File) bool {
		t.Helper()
		c, err := f.Changed()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	f := open(t, name)
	if changed(f) {
		t.Error("Changed = true for an untouched file")
	}
	if err := os.Rename(name, name+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte("other content"), 0o600); err != nil {
		t.Fatal(err)
	}
	if changed(f) {
		t.Error("Changed = true after the name was given to another file")
	}
	// The same size, a new time: rewritten in place.
	if err := os.WriteFile(name+".old", []byte("9876543210"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !changed(f) {
		t.Error("Changed = false after the file was rewritten")
	}

	g := open(t, name)
	if err := os.Truncate(name, 3); err != nil {
		t.Fatal(err)
	}
	if !changed(g) {
		t.Error("Changed = false after the file was truncated")
	}
}
