//go:build unix

package tuf

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sumd-project/sumd/internal/secret"
)

// TestKeyFileMode checks that a TUF key other users may read (such as the
// online keys sumd serve -tuf signs with) is refused, as sumd's other
// secrets are.
func TestKeyFileMode(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys", "timestamp.key")
	if err := k.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path); err != nil {
		t.Fatalf("a 0600 key: %v", err)
	}
	os.Chmod(path, 0o644)
	var me *secret.ModeError
	if _, err := ReadKeyFile(path); !errors.As(err, &me) {
		t.Errorf("a 0644 key: %v; want a *secret.ModeError", err)
	}
}
