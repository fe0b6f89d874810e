// Package durable holds what makes a file system change survive a crash
// beyond syncing the file itself.
package durable

import (
	"fmt"
	"os"
)

// SyncDir makes a name just created, renamed or removed in dir durable: a
// rename (the way sumd replaces a file whole) survives a crash only once
// its directory is synced, and until then the old file may come back.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("failed to sync directory %s: %w", dir, err)
	}
	return nil
}
