//go:build unix

package secret

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		mode    fs.FileMode
		refused bool
	}{
		{0o600, false}, {0o400, false}, {0o700, false},
		{0o640, true}, {0o644, true}, {0o604, true}, {0o620, true}, {0o602, true}, {0o660, true},
	} {
		path := filepath.Join(dir, "secret")
		os.Remove(path)
		if err := os.WriteFile(path, []byte("s3cret"), tt.mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, tt.mode) // beyond the umask
		data, fi, err := ReadFile(path, 100)
		var me *ModeError
		switch {
		case tt.refused && (!errors.As(err, &me) || me.Mode != tt.mode || !strings.Contains(me.Hint(), "chmod 600 "+path)):
			t.Errorf("mode %v: %v, want a ModeError with a chmod hint", tt.mode, err)
		case tt.refused && data != nil:
			t.Errorf("mode %v: refused, but returned the secret", tt.mode)
		case !tt.refused && (err != nil || string(data) != "s3cret" || fi.Size() != 6):
			t.Errorf("mode %v: %q, %v; want the secret", tt.mode, data, err)
		}
	}
}

// TestCredential: a systemd credential may show group read (the mask of
// the ACL that lets the unit's user read it), and nothing more; the same
// mode elsewhere is refused.
func TestCredential(t *testing.T) {
	creds := t.TempDir()
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	other := t.TempDir()
	for _, tt := range []struct {
		dir     string
		mode    fs.FileMode
		refused bool
	}{
		{creds, 0o440, false}, {creds, 0o400, false}, {creds, 0o444, true}, {creds, 0o460, true},
		{other, 0o440, true}, {filepath.Join(creds, "sub"), 0o440, true},
	} {
		os.MkdirAll(tt.dir, 0o700)
		path := filepath.Join(tt.dir, "signing.key")
		os.Remove(path)
		os.WriteFile(path, []byte("s3cret"), 0o600)
		os.Chmod(path, tt.mode)
		_, _, err := ReadFile(path, 100)
		var me *ModeError
		if refused := errors.As(err, &me); refused != tt.refused || !refused && err != nil {
			t.Errorf("%s mode %v: %v; want refused %v", path, tt.mode, err, tt.refused)
		}
	}
}
