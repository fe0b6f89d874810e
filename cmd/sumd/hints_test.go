package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupVerifyMissingFile: sumd backup verify of a file that does not
// exist (a typo) says to check its name, not to take another backup.
func TestBackupVerifyMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.db")
	_, errOut, err := sumdRun(t, "backup", "verify", missing)
	if err == nil || !strings.Contains(errOut, "hint: check the backup file's name: "+missing) || strings.Contains(errOut, "take another backup") {
		t.Errorf("sumd backup verify of a missing file: %v\n%s", err, errOut)
	}
}

// TestAddGosumMissingDatabase: sumd add -gosum with a mistyped -db (and no
// -create) is refused before anything is made: it used to create the
// scratch directory beside the missing database (dta/sumd.db.tmp/) and
// read and sort every file first.
func TestAddGosumMissingDatabase(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	gosum := writeFile(t, filepath.Join(dir, "go.sum"), syntheticRecords(0, 1)[0].Text())
	db := filepath.Join(dir, "dta", "sumd.db")
	out, errOut, err := sumdRun(t, "add", "-db", db, "-key", filepath.Join(dir, "keys", e2eName+".key"), "-gosum", gosum)
	if err == nil || !strings.Contains(errOut, "database "+db+": file does not exist") || strings.Contains(out, "read 1 go.sum file") {
		t.Errorf("sumd add -gosum with a missing -db: %v\n%s%s", err, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "dta")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused sumd add -gosum left %s: %v", filepath.Join(dir, "dta"), err)
	}
}
