package main

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
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
	data := []byte("not really a bundle, but bytes to read twice")
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			f.Write(data)
			f.Close()
		}
	}()
	b, err := openBundle(fifo, dir)
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
