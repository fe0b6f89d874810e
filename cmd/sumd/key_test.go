package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyRotateRetiredKey: sumd key rotate -new-key given the file of a key
// an earlier rotation retired (perhaps because it leaked) refuses it,
// saying it was retired and to generate a new key.
func TestKeyRotateRetiredKey(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 3)
	newKey := filepath.Join(dir, "next", e2eName+".key")
	sumd(t, "key", "rotate", "-db", db, "-key", key, "-new-key", newKey)
	sumd(t, "key", "retire", "-db", db, "-key", key+","+newKey, "-retire", vkey)

	_, errOut, err := sumdRun(t, "key", "rotate", "-db", db, "-key", newKey, "-new-key", key)
	if err == nil || !strings.Contains(errOut, vkey+" was retired") || !strings.Contains(errOut, "sumd keygen") {
		t.Fatalf("key rotate with the retired key: %v\n%s\nwant a refusal saying it was retired, and to generate a new key", err, errOut)
	}
}

// TestKeyRotateNewKeyPasted: a private key pasted where -new-key wants
// its file is refused without being repeated, as every secret file's
// name that does not look like a path is: the error goes to a terminal
// or the journal.
func TestKeyRotateNewKeyPasted(t *testing.T) {
	dir := t.TempDir()
	_, key, db := syntheticLog(t, dir, "sumd.db", 1)
	raw, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	data := strings.TrimSpace(string(raw))
	_, errOut, err := sumdRun(t, "key", "rotate", "-db", db, "-key", key, "-new-key", data)
	if err == nil || !strings.Contains(errOut, "want a file name ending in .key") || strings.Contains(errOut, data[len(data)-20:]) {
		t.Fatalf("key rotate -new-key PRIVATE+KEY+…: %v\n%s\nwant a refusal that does not repeat the key", err, errOut)
	}
}
