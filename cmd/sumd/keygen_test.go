package main

import (
	"errors"
	"io/fs"
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

// TestWriteKeyFailedRemovesFiles: a writeKey that failed after creating
// the key files (its directory's sync failed, the verifier key could not
// be written on a full disk) left them behind, so the next try was
// refused ("already exists") and a first start of sumd serve that failed
// so turned every later start into the refusal of a key without its
// database; it now removes the files, and the directories, it created.
func TestWriteKeyFailedRemovesFiles(t *testing.T) {
	defer func(orig func(string) error) { syncDir = orig }(syncDir)
	syncDir = func(string) error { return errors.New("injected sync failure") }
	base := t.TempDir()
	keyDir := filepath.Join(base, "keys")
	skey := filepath.Join(keyDir, "sumd.local.key")
	if _, err := writeKey("sumd.local", skey, filepath.Join(keyDir, "sumd.local.vkey")); err == nil {
		t.Fatal("writeKey succeeded though its directory's sync failed")
	}
	if _, err := os.Stat(keyDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after the failed writeKey, %s: %v; want it gone with its key files", keyDir, err)
	}

	// An existing verifier key is refused and kept.
	syncDir = func(string) error { return nil }
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	vkey := filepath.Join(keyDir, "other.vkey")
	if err := os.WriteFile(vkey, []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := writeKey("sumd.local", skey, vkey); err == nil {
		t.Fatal("writeKey overwrote an existing verifier key")
	}
	if data, err := os.ReadFile(vkey); err != nil || string(data) != "kept\n" {
		t.Errorf("the existing verifier key after the refusal: %q, %v", data, err)
	}
	if _, err := os.Stat(skey); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after the refusal, %s: %v; want it gone", skey, err)
	}
}
