package newdirs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestMissing: Missing names the directories MkdirAll makes, deepest
// first, and none that exists.
func TestMissing(t *testing.T) {
	dir := t.TempDir()
	want := []string{filepath.Join(dir, "a", "b", "c"), filepath.Join(dir, "a", "b"), filepath.Join(dir, "a")}
	if got := Missing(want[0]); !slices.Equal(got, want) {
		t.Errorf("Missing = %q, want %q", got, want)
	}
	if got := Missing(dir); len(got) != 0 {
		t.Errorf("Missing of an existing directory = %q, want none", got)
	}
}

// TestRemove: Remove undoes MkdirAll for the directories of two paths,
// given in any order, but keeps a directory that holds a file, and its
// parents; what existed before stays.
func TestRemove(t *testing.T) {
	dir := t.TempDir()
	one, two := filepath.Join(dir, "a", "b", "c"), filepath.Join(dir, "a", "d")
	made := append(Missing(two), Missing(one)...) // a twice, shallowest not last
	for _, d := range []string{one, two} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	kept := filepath.Join(two, "kept")
	if err := os.WriteFile(kept, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	Remove(made)
	if _, err := os.Lstat(filepath.Join(dir, "a", "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove left an empty directory it was given (%v)", err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("Remove removed a directory holding a file: %v", err)
	}
	os.Remove(kept)
	Remove(made)
	if _, err := os.Lstat(filepath.Join(dir, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove left an empty directory it was given (%v)", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("Remove removed a directory that was there before: %v", err)
	}
}

// TestRemoveKeepsFiles: a name Missing listed that is a file by the time
// of Remove (another process made it, as MkdirAll failed here: "not a
// directory") is not this command's directory, and stays, with its
// contents.
func TestRemoveKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "sumd.db")
	dirs := Missing(name)
	if err := os.WriteFile(name, []byte("another process's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	Remove(dirs)
	if b, err := os.ReadFile(name); err != nil || string(b) != "another process's\n" {
		t.Errorf("Remove of a name that became a file: %q, %v; want the file kept", b, err)
	}
}
