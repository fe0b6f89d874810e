package tlog

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCreateSyncsDir: creating a log in a new bbolt file syncs the file's
// directory, and the parent of each directory made for it, before Open
// returns: bbolt syncs the file's pages, never its name, so without it a
// power cut could lose the whole file, and with it records Add
// acknowledged. A failed sync fails the Open, which removes the file.
func TestCreateSyncsDir(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "sum.example.com")
	opts := Options{Keys: []*Key{k}, Create: true, MinFree: -1, Logger: slog.New(slog.DiscardHandler)}
	path := filepath.Join(dir, "new", "sub", "sumd.db")
	var synced []string
	defer func(orig func(string) error) { syncDir = orig }(syncDir)
	syncDir = func(d string) error {
		synced = append(synced, d)
		return nil
	}
	l, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, want := range []string{filepath.Dir(path), filepath.Join(dir, "new"), dir} {
		if !slices.Contains(synced, want) {
			t.Errorf("synced %q, not %s", synced, want)
		}
	}

	fault := errors.New("injected: directory sync failed")
	syncDir = func(string) error { return fault }
	other := filepath.Join(dir, "other", "sumd.db")
	if _, err := Open(other, opts); !errors.Is(err, fault) {
		t.Fatalf("Open whose directory sync failed = %v, want the fault", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "other")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed Open left the file or the directory it made (%v)", err)
	}
}
