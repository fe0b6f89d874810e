package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWriteOut: writeOut publishes a complete file under a new name only.
// A name that appears while the file is written is left as it is; a failed
// write or check leaves nothing; a full disk gets its hint.
func TestWriteOut(t *testing.T) {
	dir := t.TempDir()
	noTmp := func() {
		t.Helper()
		if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(left) > 0 {
			t.Errorf("temporary files left: %q", left)
		}
	}
	data := func(w io.Writer) error { _, err := io.WriteString(w, "copy"); return err }

	out := filepath.Join(dir, "new.db")
	var checked string
	if err := writeOut(out, data, func(tmp string) error { checked = tmp; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); string(got) != "copy" || filepath.Dir(checked) != dir {
		t.Errorf("wrote %q, checked %s; want \"copy\", checked beside it", got, checked)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	noTmp()

	raced := filepath.Join(dir, "raced.db")
	err := writeOut(raced, func(w io.Writer) error {
		writeFile(t, raced, []byte("the database"))
		return data(w)
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "appeared while it was being written") {
		t.Errorf("writeOut to a name that appeared = %v", err)
	}
	if got, _ := os.ReadFile(raced); string(got) != "the database" {
		t.Errorf("the file that appeared now holds %q", got)
	}
	noTmp()

	failed := filepath.Join(dir, "failed.db")
	if err := writeOut(failed, data, func(string) error { return errors.New("does not verify") }); err == nil {
		t.Error("writeOut with a failing check succeeded")
	}
	if _, err := os.Lstat(failed); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a copy that failed its check was published: %v", err)
	}
	noTmp()

	full := filepath.Join(dir, "full.db")
	err = writeOut(full, func(w io.Writer) error {
		return fmt.Errorf("failed to copy: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})
	}, nil)
	var ce *cliError
	if !errors.As(err, &ce) || !strings.Contains(ce.hint, "nothing was written to "+full) || !strings.Contains(ce.hint, "the disk holding "+dir+" is full: free space on it, then run the same command again") {
		t.Errorf("writeOut on a full disk = %v (%+v), want the disk-full hint", err, ce)
	}
	noTmp()
}
