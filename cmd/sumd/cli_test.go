package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAddWhileServing checks that sumd add on a database a server holds
// fails without touching it, and points to adding through the server.
func TestAddWhileServing(t *testing.T) {
	dir := t.TempDir()
	db, key := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "keys", e2eName+".key")
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	mod := filepath.Join(dir, "m")
	os.Mkdir(mod, 0o755)
	writeFile(t, filepath.Join(mod, "go.mod"), []byte("module example.com/m\n"))
	sumd(t, "add", "-db", db, "-key", key, "-create", "example.com/m@v1.0.0", mod)
	startServer(t, "-db", db, "-key", key)

	_, errOut, err := sumdRun("add", "-db", db, "-key", key, "example.com/m@v1.0.1", mod)
	if err == nil {
		t.Fatal("sumd add succeeded on a database sumd serve holds")
	}
	if !strings.Contains(errOut, "hint: a running sumd serve holds the database: add through it with sumd add -server URL -token-file FILE MODULE@VERSION [DIR|ZIP]") {
		t.Errorf("sumd add while serving said:\n%s\nwant a hint pointing to add -server", errOut)
	}
}
