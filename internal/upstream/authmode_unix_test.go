//go:build unix

package upstream

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/secret"
)

// TestCredentialFileMode checks that a password or token file other users
// may read is refused, as sumd's other secrets are, with the chmod hint;
// a .netrc is the go command's and keeps its rules.
func TestCredentialFileMode(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o644)
	for _, spec := range []string{"basic:alice:" + open, "bearer:" + open} {
		var me *secret.ModeError
		if _, err := ClientAuth(spec); !errors.As(err, &me) {
			t.Errorf("ClientAuth(%s) with a 0644 file: %v; want a *secret.ModeError", spec, err)
		}
		a, err := ParseAuth(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.check(); !errors.As(err, &me) {
			t.Errorf("upstream auth %s with a 0644 file: %v; want a *secret.ModeError", spec, err)
		}
	}
	if _, err := ClientAuth("netrc:" + open); err != nil {
		t.Errorf("a 0644 .netrc: %v; want it read as the go command reads it", err)
	}
}

// TestCredentialNotAFile checks that a password given where its file is
// expected is not echoed back, and that the error says a FILE is wanted.
func TestCredentialNotAFile(t *testing.T) {
	_, err := ClientAuth("basic:alice:mypassword")
	if err == nil || strings.Contains(err.Error(), "mypassword") || !strings.Contains(err.Error(), "FILE holding the password") {
		t.Errorf("basic:alice:mypassword = %v; want the FILE explained, the value not echoed", err)
	}
}
