package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTUFInitLostRoot: tuf init over a published repository that lost
// metadata/1.root.json refuses it, and its hint says to restore that file,
// not to publish into a repository no command can open.
func TestTUFInitLostRoot(t *testing.T) {
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	repo := filepath.Join(dir, "tuf")
	args := []string{"tuf", "init", "-name", e2eName, "-dir", repo, "-keys", filepath.Join(dir, "offline"), "-vkey", vkey, "-url", "https://" + e2eName}
	sumd(t, args...)
	root := filepath.Join(repo, "metadata", "1.root.json")
	data, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(repo, "metadata", "2.root.json"), data)
	os.Remove(root)
	_, errOut, err := sumdRun(t, args...)
	if err == nil {
		t.Fatal("tuf init over a repository that lost 1.root.json succeeded")
	}
	if !strings.Contains(errOut, "hint: restore") || strings.Contains(errOut, "tuf publish") {
		t.Errorf("tuf init over a repository that lost 1.root.json:\n%s", errOut)
	}
}
