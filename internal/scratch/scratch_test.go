package scratch

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestOpen: Open creates the directory 0700 and removes exactly the files
// Create makes, whatever else the directory holds.
func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sumd.db.tmp")
	if removed, err := Open(dir); err != nil || len(removed) != 0 {
		t.Fatalf("Open of a new directory: %v, %v", removed, err)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() || runtime.GOOS != "windows" && fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory: %v, %v; want a 0700 directory", fi, err)
	}
	var made []string
	for _, k := range []Kind{Upstream, Upload, OCI, Sort, Backup} {
		f, err := Create(dir, k)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if fi, _ := os.Stat(f.Name()); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f.Name(), fi.Mode().Perm())
		}
		made = append(made, f.Name())
	}
	keep := []string{"sumd.db", "sumd-upstream-1.zip.keep", "notes-sumd-upload-1.zip", "sumd-other-1.zip", "sumd-upload-x.zip", "sumd-sort-1.zip", "sumd-upload-1.run", "sumd-backup-1.zip"}
	for _, name := range keep {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600)
	}
	os.Mkdir(filepath.Join(dir, "sumd-oci-2.zip"), 0o700) // not a regular file

	removed, err := Open(dir)
	slices.Sort(made)
	slices.Sort(removed)
	if err != nil || !slices.Equal(removed, made) {
		t.Errorf("Open removed %v, %v; want %v", removed, err, made)
	}
	for _, name := range append(keep, "sumd-oci-2.zip") {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("Open removed %s, which Create did not make", name)
		}
	}
}

// TestDir: -tmp-dir wins; else beside a database file; else (PostgreSQL,
// no database) a new directory of the process's own, which done removes.
func TestDir(t *testing.T) {
	for _, tt := range []struct{ dir, db, want string }{
		{"/srv/tmp/sumd", "/srv/sumd/log.db", "/srv/tmp/sumd"},
		{"/srv/tmp/sumd", "", "/srv/tmp/sumd"},
		{"", "/srv/sumd/log.db", "/srv/sumd/log.db.tmp"},
		{"", "data/sumd.db", "data/sumd.db.tmp"},
	} {
		if got, _, err := Dir(tt.dir, tt.db); err != nil || got != tt.want {
			t.Errorf("Dir(%q, %q) = %q, %v; want %q", tt.dir, tt.db, got, err, tt.want)
		}
	}
	given := t.TempDir()
	if _, done, err := Dir(given, ""); err == nil {
		done()
	}
	if _, err := os.Stat(given); err != nil {
		t.Errorf("done removed the -tmp-dir it did not make: %v", err)
	}
	t.Setenv("TMPDIR", t.TempDir())
	own, done, err := Dir("", "")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(own) != os.Getenv("TMPDIR") || !strings.HasPrefix(filepath.Base(own), "sumd-") {
		t.Errorf("Dir for a shared database = %q, want a new sumd-* directory in $TMPDIR", own)
	}
	if _, err := Open(own); err != nil { // 0700: sumd's own
		t.Errorf("Open(%s): %v", own, err)
	}
	other, done2, err := Dir("", "")
	if err != nil || other == own {
		t.Errorf("Dir again = %q, %v; want another directory than %q", other, err, own)
	}
	done2()
	done()
	if _, err := os.Stat(own); !os.IsNotExist(err) {
		t.Errorf("after done, %s: %v; want it removed", own, err)
	}
}
