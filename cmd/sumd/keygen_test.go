package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestKeygenSyncsDir: writeKey (keygen, key rotate) syncs the directory
// of the key files, and every directory it created above it, before it
// returns. Otherwise a power cut right after key rotate could keep the
// database's new key set and lose the file of the key it names.
func TestKeygenSyncsDir(t *testing.T) {
	var synced []string
	defer func(orig func(string) error) { syncDir = orig }(syncDir)
	syncDir = func(dir string) error {
		synced = append(synced, dir)
		return nil
	}
	base := t.TempDir()
	keyDir := filepath.Join(base, "a", "b")
	skey := filepath.Join(keyDir, "sum.example.com.key")
	if _, err := writeKey("sum.example.com", skey, filepath.Join(keyDir, "sum.example.com.vkey")); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{keyDir, filepath.Join(base, "a"), base} {
		if !slices.Contains(synced, dir) {
			t.Errorf("writeKey did not sync %s; synced %q", dir, synced)
		}
	}

	// In an existing directory, that directory alone.
	synced = nil
	if err := os.Remove(skey); err != nil {
		t.Fatal(err)
	}
	if _, err := writeKey("sum.example.com", skey, filepath.Join(keyDir, "other.vkey")); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(synced, []string{keyDir}) {
		t.Errorf("writeKey into an existing directory synced %q, want %q", synced, []string{keyDir})
	}
}
