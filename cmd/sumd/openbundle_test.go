package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestOpenBundleFIFO: a bundle that can be read once (a FIFO) is copied
// into the mirror's directory and read again from the copy, which no name
// points to even while it is open: a signal or a crash cannot leave a copy
// as large as the log behind.
func TestOpenBundleFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(t.TempDir(), "b.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	data := append(bundleStart(0, 10), "not all of a bundle, but bytes to read twice"...)
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Write(data)
			f.Close()
		}
	}()
	b, err := openBundle(fifo, dir, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("the open copy has a name in %s: %v", dir, left)
	}
	for range 2 {
		got, err := io.ReadAll(b)
		if err != nil || string(got) != string(data) {
			t.Fatalf("read %q, %v; want %q", got, err, data)
		}
		if _, err := b.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImportFIFOKeepsFloor: a bundle that is not a regular file is copied
// into the mirror's directory, the disk the mirror's database commits on,
// under -min-free-disk: with a floor above any disk's free space (1 PiB),
// the copy stops at its first write, with an error naming the floor, and
// leaves nothing behind. It was copied whole, with no floor, so a large
// stream could fill the disk and fail the database's next commit, which
// stops the log.
func TestImportFIFOKeepsFloor(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(t.TempDir(), "b.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	const size = 8 << 20
	wrote := make(chan int64, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			wrote <- -1
			return
		}
		defer f.Close()
		n, _ := f.Write(make([]byte, size)) // EPIPE once the reader is gone
		wrote <- int64(n)
	}()
	var stdout, stderr bytes.Buffer
	db := filepath.Join(dir, "mirror.db")
	err := runMirrorImport([]string{"-mirror", db, "-min-free-disk", "1073741824", fifo}, &stdout, &stderr)
	if !errors.Is(err, itlog.ErrLowDisk) || !strings.Contains(err.Error(), "min-free-disk") || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("import of a FIFO under a floor above the free space = %v; want a refusal of the copy naming min-free-disk", err)
	}
	// The import opened the FIFO and closed it: the writer ends (a
	// reader of the test's own would leave it waiting).
	if n := <-wrote; n >= size {
		t.Errorf("the import read all %d bytes of the FIFO; the copy should stop at its first write", n)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("the refused import left %v in the mirror's directory", left)
	}
}

// TestOpenBundleFIFOCapped: a stream that is not a bundle (its first
// entry is no bundle header) is refused at its start, and one larger than
// any bundle of the trees its header names could be is refused once it
// is: neither is copied whole. Such a stream was copied to the disk's
// floor (or its end) before anything read it.
func TestOpenBundleFIFOCapped(t *testing.T) {
	const size = 64 << 20
	bundle := bytes.NewBuffer(bundleStart(0, 10))
	tw := tar.NewWriter(bundle)
	tw.WriteHeader(&tar.Header{Name: "head", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
	tw.Flush()
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"not a bundle", bytes.Repeat([]byte("x"), size), "not a sumd mirror bundle"},
		{"too large", append(bundle.Bytes(), make([]byte, size)...), "larger than any bundle"},
	} {
		dir := t.TempDir()
		fifo := filepath.Join(t.TempDir(), "b.fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		wrote := make(chan int, 1)
		go func() {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				wrote <- -1
				return
			}
			defer f.Close()
			n, _ := f.Write(tc.stream) // EPIPE once the reader is gone
			wrote <- n
		}()
		b, err := openBundle(fifo, dir, -1)
		if err == nil {
			b.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: openBundle = %v, want %q", tc.name, err, tc.want)
		}
		if n := <-wrote; n >= len(tc.stream) {
			t.Errorf("%s: all %d bytes of the stream were read", tc.name, n)
		}
		if left, _ := os.ReadDir(dir); len(left) > 0 {
			t.Errorf("%s: the refused stream left %v", tc.name, left)
		}
	}
}

// bundleStart is the start of a bundle from tree from to tree to: its
// header entry.
func bundleStart(from, to int64) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	header := fmt.Appendf(nil, "sumd mirror bundle 1\nname example.com\nfrom %d\nto %d\ncreated 2026-01-01T00:00:00Z\npartial false\n", from, to)
	tw.WriteHeader(&tar.Header{Name: "sumd-bundle", Mode: 0o644, Size: int64(len(header)), Typeflag: tar.TypeReg})
	tw.Write(header)
	tw.Flush()
	return b.Bytes()
}
