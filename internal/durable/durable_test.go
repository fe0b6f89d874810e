package durable

import (
	"path/filepath"
	"testing"
)

// TestSyncDir: a directory syncs; a missing one is an error naming it.
func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Fatalf("SyncDir(%s) = %v", dir, err)
	}
	missing := filepath.Join(dir, "missing")
	if err := SyncDir(missing); err == nil {
		t.Fatalf("SyncDir of a missing directory = nil")
	}
}
