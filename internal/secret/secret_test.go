package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFileRefuses(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, 101), 0o600)
	if _, _, err := ReadFile(big, 100); err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Errorf("file over the limit: %v", err)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)
	if _, _, err := ReadFile(sub, 100); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, _, err := ReadFile(filepath.Join(dir, "missing"), 100); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestNotExistHidesName: the name of a secret file that is not there was
// repeated in the error (open NAME: no such file or directory), and the
// name is often the secret itself, pasted where its file belongs, so it
// went to the journal or the terminal; the error no longer repeats a name
// that does not look like a file's (one with an extension), and says when
// it looks like a secret rather than a path.
func TestNotExistHidesName(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		name               string
		named, looksSecret bool
	}{
		{"tS0GKR9q2mXc7LbYvWnE4a1Hd8JpQz", false, true}, // a token: long, no separator
		{"q1w2/e3r4+t5y6u7i8o9p0A=", false, false},      // base64 has a slash
		{"admin-token", false, false},
		{"secrets/admin.token", true, false}, // a file's name: the error says which
		{"keys/sumd.local.key", true, false},
		{"admin.TOKEN", true, false}, // an extension in upper case is one too
		{"keys/Sumd.Key", true, false},
	} {
		_, _, err := ReadFile(tc.name, 100)
		if !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), tc.name) != tc.named {
			t.Errorf("ReadFile(%q) = %v, want fs.ErrNotExist naming it: %v", tc.name, err, tc.named)
		}
		if got := strings.Contains(fmt.Sprint(err), "looks like a secret"); got != tc.looksSecret {
			t.Errorf("ReadFile(%q) = %v, want it to say it looks like a secret: %v", tc.name, err, tc.looksSecret)
		}
	}
}
