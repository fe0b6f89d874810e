package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreOverDamagedDatabase: sumd restore over a database it cannot
// open (damaged: the case restore is for) failed with the open's error
// alone, whose own advice is to restore it from a mirror: the operator was
// sent round in a circle. It is refused, the file left as it was, with a
// hint to move it aside; restore then rebuilds the database.
func TestRestoreOverDamagedDatabase(t *testing.T) {
	dir, key, db, m := restoreFixture(t)
	for _, damage := range []struct {
		name string
		data func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:8192] }},
		{"overwritten", func(b []byte) []byte { return bytes.Repeat([]byte("x"), len(b)) }},
	} {
		data, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		damaged := writeFile(t, filepath.Join(dir, damage.name+".db"), damage.data(data))
		before, _ := os.ReadFile(damaged)
		_, errOut, err := sumdRun(t, "restore", "-db", damaged, "-key", key, "-from", m)
		if err == nil || !strings.Contains(errOut, "hint: ") || !strings.Contains(errOut, "move it aside") {
			t.Errorf("restore over a %s database: %v\n%s\nwant a refusal with a hint to move it aside", damage.name, err, errOut)
		}
		if after, _ := os.ReadFile(damaged); !bytes.Equal(after, before) {
			t.Errorf("the refused restore over a %s database changed it", damage.name)
		}
		if err := os.Rename(damaged, damaged+".damaged"); err != nil {
			t.Fatal(err)
		}
		if out := sumd(t, "restore", "-db", damaged, "-key", key, "-from", m); !strings.Contains(out, "tree 20 (was 0)") {
			t.Errorf("restore once the %s database was moved aside printed %q", damage.name, out)
		}
	}
}

// restoreFixture makes a log of 20 records in dir (db, signed with key)
// and a full mirror of it (m).
func restoreFixture(t *testing.T) (dir, key, db, m string) {
	dir = t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 20)
	p := startServer(t, "-db", db, "-key", key)
	m = filepath.Join(dir, "mirror.db")
	mirrorOf(t, m, p.url, vkey)
	p.stop()
	return dir, key, db, m
}

// TestRestoreLowDisk: a restore stopped by -min-free-disk said only that
// nothing was changed, not what to do; it names the floor and the ways
// out, as sumd backup does, and leaves no file behind.
func TestRestoreLowDisk(t *testing.T) {
	dir, key, _, m := restoreFixture(t)
	db := filepath.Join(dir, "new.db")
	_, errOut, err := sumdRun(t, "restore", "-db", db, "-key", key, "-from", m, "-min-free-disk", "100000000")
	if err == nil || !strings.Contains(errOut, "hint: ") || !strings.Contains(errOut, "free space") || !strings.Contains(errOut, "lower -min-free-disk") {
		t.Errorf("restore under -min-free-disk: %v\n%s\nwant a hint to free space or lower -min-free-disk", err, errOut)
	}
	if names, _ := filepath.Glob(db + "*"); len(names) > 0 {
		t.Errorf("the refused restore left %s", names)
	}
}

// TestRestoreFromDamagedMirror: sumd restore from a mirror file that is
// damaged was told -from must be a mirror of this log (it is), or, for a
// file bbolt cannot open, about -mirror, a flag restore does not have. A
// damaged mirror is named as one, with the way out: another mirror.
func TestRestoreFromDamagedMirror(t *testing.T) {
	dir, key, _, m := restoreFixture(t)
	data, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; {
		j := bytes.Index(data[i:], []byte(" h1:"))
		if j < 0 {
			break
		}
		i += j + 4
		data[i] ^= 'A' ^ 'B' // a record's hash, another base64 digit
	}
	for _, tc := range []struct{ name, want string }{
		{"records", "another mirror"},
		{"overwritten", "-from"},
	} {
		from := filepath.Join(dir, tc.name+".db")
		if tc.name == "overwritten" {
			data = bytes.Repeat([]byte("x"), len(data))
		}
		writeFile(t, from, data)
		_, errOut, err := sumdRun(t, "restore", "-db", filepath.Join(dir, "new.db"), "-key", key, "-from", from)
		if err == nil || !strings.Contains(errOut, "hint: ") || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "-mirror names") || strings.Contains(errOut, "must be a mirror of this log") && tc.name == "records" {
			t.Errorf("restore from a mirror with damaged %s: %v\n%s\nwant a hint naming %q", tc.name, err, errOut, tc.want)
		}
	}
}

// TestRestoreFromUnreachable: sumd restore -from a URL that does not
// answer was told to check -origin, sumd mirror's flag, which restore
// does not have. It is told to check -from, and the empty mirror file
// it made is removed: the next restore has nothing in it to resume from.
// Nor does it warn first that it created a new checksum database (the
// mirror file it then removes): a new mirror signs nothing, and its
// creation is information.
func TestRestoreFromUnreachable(t *testing.T) {
	dir, key, _, _ := restoreFixture(t)
	_, errOut, err := sumdRun(t, "restore", "-db", filepath.Join(dir, "new.db"), "-key", key, "-from", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(errOut, "hint: check -from") || strings.Contains(errOut, "-origin") {
		t.Errorf("restore from a URL that does not answer: %v\n%s\nwant a hint to check -from, not -origin", err, errOut)
	}
	// Nothing was mirrored: no empty mirror file is left for the next
	// restore to resume from, and the hint does not say one is.
	if _, err := os.Lstat(filepath.Join(dir, "new.db.restore-mirror")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("restore from a URL that does not answer left new.db.restore-mirror: %v", err)
	}
	if strings.Contains(errOut, "resumes") {
		t.Errorf("restore from a URL that does not answer says the next restore resumes:\n%s", errOut)
	}
	if strings.Contains(errOut, "level=WARN") {
		t.Errorf("restore from a URL that does not answer warns of the mirror file it made and removed:\n%s", errOut)
	}
}

// TestRestoreFromURLLowDisk: sumd restore -from URL stopped by
// -min-free-disk where it mirrors the URL was told about -mirror, sumd
// mirror's flag; it names the floor and the ways out, and a later restore
// with the room mirrors and restores.
func TestRestoreFromURLLowDisk(t *testing.T) {
	dir, key, db, _ := restoreFixture(t)
	p := startServer(t, "-db", db, "-key", key)
	defer p.stop()
	restored := filepath.Join(dir, "new.db")
	_, errOut, err := sumdRun(t, "restore", "-db", restored, "-key", key, "-from", p.url, "-min-free-disk", "100000000")
	if err == nil || !strings.Contains(errOut, "lower -min-free-disk") || strings.Contains(errOut, "-mirror names") {
		t.Errorf("restore -from URL under -min-free-disk: %v\n%s\nwant a hint to free space or lower -min-free-disk", err, errOut)
	}
	if out := sumd(t, "restore", "-db", restored, "-key", key, "-from", p.url); !strings.Contains(out, "tree 20 (was 0)") {
		t.Errorf("restore -from URL with the room printed %q", out)
	}
}
