package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
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

// TestDatabaseUnwritableHint: a database this user may not create or open
// for writing (a data/ directory owned by root, a volume mounted for
// another user) says which user and what to do, not the bare "permission
// denied" it was. As root, who writes anywhere, the error bbolt's open
// gives other users is synthesized.
func TestDatabaseUnwritableHint(t *testing.T) {
	db := filepath.Join(t.TempDir(), "data", "sumd.db")
	opened := fmt.Errorf("failed to open database %s: %w", db, &fs.PathError{Op: "open", Path: db, Err: fs.ErrPermission})
	err := openLogError(opened, config.Database{DB: db}, openOptions{cmd: "serve"}, true)
	var ce *cliError
	if !errors.As(err, &ce) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("openLogError(permission denied) = %v, want the error with a hint", err)
	}
	for _, want := range []string{fmt.Sprintf("uid %d", os.Geteuid()), filepath.Dir(db), "-db"} {
		if !strings.Contains(ce.hint, want) {
			t.Errorf("hint %q does not say %q", ce.hint, want)
		}
	}
}

// TestSyncTmpDirHint: sumd sync, whose temporary directory is always the
// database file's name plus .tmp (it has no -tmp-dir), was told to "set
// -tmp-dir" when that directory could not be made, an option it refuses;
// the hint now names the directory to clear instead.
func TestSyncTmpDirHint(t *testing.T) {
	dir := t.TempDir()
	l := newVerifyLog(t, dir)
	_, cosignPub := cosignKeys(t, dir)
	writeFile(t, l.db+".tmp", []byte("in the way\n"))
	_, errOut, err := sumdRun(t, "sync", "-create", "-db", l.db, "-key", l.key, "-registry", "registry.example/gomod", "-cosign-key", cosignPub)
	_, hint, _ := strings.Cut(errOut, "hint:")
	if err == nil || strings.Contains(hint, "-tmp-dir") || !strings.Contains(hint, l.db+".tmp") {
		t.Errorf("sumd sync with %s.tmp a file: %v\n%s\nwant a hint naming that directory, not -tmp-dir", l.db, err, errOut)
	}
}

// TestKeygenThenCreateHint: the first hour's most likely turn off the
// Quick start, sumd keygen -name of a name of one's own followed by the
// Quick start's sumd add -create (or sumd serve), was refused with a hint
// to pass "-db <its database>", a database the new log does not have yet;
// the hint now gives the command that creates it, which works.
func TestKeygenThenCreateHint(t *testing.T) {
	t.Chdir(t.TempDir()) // the default log's paths are relative
	sumd(t, "keygen", "-name", "corp.example")
	if err := os.Mkdir("m", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join("m", "go.mod"), []byte("module example.com/m\n"))
	create := "-key keys/corp.example.key -db data/corp.example.db -create"
	for _, args := range [][]string{{"serve", "-listen", "127.0.0.1:0"}, {"add", "-create", "example.com/m@v1.2.3", "./m"}} {
		_, errOut, err := sumdRun(t, args...)
		if want := "sumd " + args[0] + " " + create; err == nil || !strings.Contains(errOut, want) {
			t.Errorf("sumd %s after sumd keygen -name corp.example: %v\n%s\nwant a hint saying %q", strings.Join(args, " "), err, errOut, want)
		}
	}
	if out := sumd(t, append(append([]string{"add"}, strings.Fields(create)...), "example.com/m@v1.2.3", "./m")...); !strings.Contains(out, "recorded") {
		t.Errorf("the hint's command: %s", out)
	}
}
