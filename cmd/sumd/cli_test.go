package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/tlog"
)

// TestAddWhileServing checks that sumd add on a database a server holds
// fails without touching it, and points to adding through the server
// without saying a server holds it: any sumd process may.
func TestAddWhileServing(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "keys", e2eName+".key")
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	mod := filepath.Join(dir, "m")
	os.Mkdir(mod, 0o755)
	writeFile(t, filepath.Join(mod, "go.mod"), []byte("module example.com/m\n"))
	sumd(t, "add", "-db", db, "-key", key, "-create", "example.com/m@v1.0.0", mod)
	startServer(t, "-db", db, "-key", key)

	_, errOut, err := sumdRun(t, "add", "-db", db, "-key", key, "example.com/m@v1.0.1", mod)
	if err == nil {
		t.Fatal("sumd add succeeded on a database sumd serve holds")
	}
	if !strings.Contains(errOut, "hint: another sumd process (serve, add, copy, key…) holds the database: if it is sumd serve, add through it with sumd add -server URL -token-file FILE MODULE@VERSION [DIR|ZIP]") {
		t.Errorf("sumd add while serving said:\n%s\nwant a hint pointing to add -server", errOut)
	}
}

// TestAddGoSumWhileServing: sumd add -gosum on a database a server holds
// says so, as sumd add does, and points to adding the go.sum files through
// the server. It used to meet the server's temporary directory first
// (database.tmp, locked too) and tell the user to give it a -tmp-dir of its
// own, after which it met the database's lock.
func TestAddGoSumWhileServing(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "keys", e2eName+".key")
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	mod := filepath.Join(dir, "m")
	os.Mkdir(mod, 0o755)
	writeFile(t, filepath.Join(mod, "go.mod"), []byte("module example.com/m\n"))
	sumd(t, "add", "-db", db, "-key", key, "-create", "example.com/m@v1.0.0", mod)
	gosum := filepath.Join(dir, "go.sum")
	writeFile(t, gosum, []byte("example.com/q v1.0.0 h1:CXGiIalcC8b5E7RQI+sUdbIEb5/3nDWFUtXN7Ipj5LU=\n"+
		"example.com/q v1.0.0/go.mod h1:ONeDgCa5UF/jJRjGzpOKmUiezgFEk4IPFZ96frvroW0=\n"))
	startServer(t, "-db", db, "-key", key)

	_, errOut, err := sumdRun(t, "add", "-db", db, "-key", key, "-gosum", gosum)
	if err == nil {
		t.Fatal("sumd add -gosum succeeded on a database sumd serve holds")
	}
	if !strings.Contains(errOut, "database is in use by another process") ||
		!strings.Contains(errOut, "hint: another sumd process (serve, add, copy, key…) holds the database: if it is sumd serve, add through it with sumd add -server URL -token-file FILE -gosum FILE|DIR") ||
		strings.Contains(errOut, "-tmp-dir") {
		t.Errorf("sumd add -gosum while serving said:\n%s\nwant the database named as in use, a hint pointing to add -server -gosum, and nothing about -tmp-dir", errOut)
	}
}

// TestPostgresUnreachable: a PostgreSQL database that cannot be reached is
// named (without its password), with why it cannot be reached and the same
// hint, whether a log is opened on it (sumd key, serve) or the bare store
// (sumd copy); a process that fails to start does not log that it will
// answer 503.
func TestPostgresUnreachable(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	url := "postgres://sumd:secret@127.0.0.1:1/sumd?connect_timeout=5"
	const want = "hint: check that PostgreSQL runs and is reachable, and the URL's host, user, sslmode and password (PGPASSWORD or ~/.pgpass)\n"
	for _, args := range [][]string{
		{"copy", "-from", url, "-to", filepath.Join(dir, "copy.db")},
		{"key", "rotate", "-db", url, "-key", filepath.Join(dir, "keys", e2eName+".key"), "-new-key", filepath.Join(dir, "new.key")},
		{"serve", "-listen", "127.0.0.1:0", "-db", url, "-key", filepath.Join(dir, "keys", e2eName+".key")},
	} {
		_, errOut, err := sumdRun(t, args...)
		if err == nil || !strings.Contains(errOut, "sumd: error: database postgres://sumd:xxxxx@127.0.0.1:1/sumd?connect_timeout=5: the checksum database's storage is unavailable; try again shortly\n\tcause: ") ||
			!strings.Contains(errOut, "127.0.0.1") || !strings.Contains(errOut, "connection refused") || !strings.HasSuffix(errOut, want) {
			t.Errorf("sumd %s: %v, stderr:\n%s\nwant the redacted URL, the cause and:\n%s", args[0], err, errOut, want)
		}
		if strings.Contains(errOut, "secret") || strings.Contains(errOut, "answering 503") {
			t.Errorf("sumd %s: stderr shows the password, or a 503 it will never answer:\n%s", args[0], errOut)
		}
	}
}

// TestRolledBackDatabase: a database whose head was rolled back behind
// sumd's back, its records left beyond it, is refused with a hint not to
// restart (the generic corruption hint said to restore from a backup; the
// red team's processes were told to start again, which signed a fork).
func TestRolledBackDatabase(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "keys", e2eName+".key")
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	mod := filepath.Join(dir, "m")
	os.Mkdir(mod, 0o755)
	writeFile(t, filepath.Join(mod, "go.mod"), []byte("module example.com/m\n"))
	sumd(t, "add", "-db", db, "-key", key, "-create", "example.com/m@v1.0.0", mod)
	old := storedHead(t, db)
	sumd(t, "add", "-db", db, "-key", key, "example.com/m@v1.0.1", mod)
	last := storedHead(t, db)
	s, err := tlog.OpenBolt(db, tlog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Commit(context.Background(), &tlog.Batch{Prev: last, Head: old})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, err := sumdRun(t, "add", "-db", db, "-key", key, "example.com/m@v1.0.2", mod)
	if err == nil {
		t.Fatal("sumd add succeeded on a rolled-back database")
	}
	if !strings.Contains(errOut, "the database holds data beyond its signed tree of 1 records (records up to id 1") ||
		!strings.Contains(errOut, "hint: do NOT restart sumd on this database") {
		t.Errorf("sumd add on a rolled-back database said:\n%s\nwant the data beyond the head named, and a hint not to restart", errOut)
	}
	// sumd serve exits with the status sumd.service does not restart.
	_, errOut, err = sumdRun(t, "serve", "-listen", "127.0.0.1:0", "-db", db, "-key", key)
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != exitDoNotRestart {
		t.Errorf("sumd serve on a rolled-back database: %v, want exit status %d\n%s", err, exitDoNotRestart, errOut)
	}
	// Its backup and copy are refused with the same hint: a copy up to
	// the head would be a clean database that signs a fork.
	for _, args := range [][]string{
		{"backup", "-db", db, "-o", filepath.Join(dir, "backup.db")},
		{"copy", "-from", db, "-to", filepath.Join(dir, "copy.db")},
	} {
		_, errOut, err := sumdRun(t, args...)
		if err == nil || !strings.Contains(errOut, "holds data beyond its signed tree of 1 records") || !strings.Contains(errOut, "do NOT restart sumd on this database") ||
			strings.Contains(errOut, "run the backup again") {
			t.Errorf("sumd %s of a rolled-back database: %v\n%s\nwant it refused with the hint not to restart", args[0], err, errOut)
		}
	}
}
