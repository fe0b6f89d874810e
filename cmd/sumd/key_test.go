package main

import (
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
