//go:build unix

package scratch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenRefuses: a directory others may write to, or a file, is refused.
func TestOpenRefuses(t *testing.T) {
	shared := filepath.Join(t.TempDir(), "shared")
	os.Mkdir(shared, 0o700)
	os.Chmod(shared, 0o1777)
	if _, err := Open(shared); err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Errorf("Open of a 1777 directory: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Open(file); err == nil {
		t.Error("Open of a file succeeded")
	}
	if _, err := Create(t.TempDir(), "other"); err == nil {
		t.Error("Create of an unknown kind succeeded")
	}
}
