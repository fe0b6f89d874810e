//go:build unix

package secret

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testenv"
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

// TestChangedInPlace: a rewrite in place that keeps the size and the
// modification time (cp -p, rsync -t, a tool restoring mtimes) is seen,
// by its change time.
func TestChangedInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("ci:old-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if ctime(a).IsZero() {
		testenv.Need(t, "a file system that records change times", errors.New("stat gave no change time"))
	}
	// The change time has the kernel's clock granularity: write until it
	// moves (at once, but for a file written within the same tick).
	var b fs.FileInfo
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := os.WriteFile(path, []byte("ci:new-token-9876543210\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, a.ModTime(), a.ModTime()); err != nil {
			t.Fatal(err)
		}
		if b, err = os.Stat(path); err != nil {
			t.Fatal(err)
		}
		if ctime(b) != ctime(a) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the change time did not move in 10 s")
		}
	}
	if !b.ModTime().Equal(a.ModTime()) || b.Size() != a.Size() || !os.SameFile(a, b) {
		t.Fatalf("the rewrite changed more than the content and change time: %v %v", a, b)
	}
	if !Changed(a, b) {
		t.Error("Changed missed a rewrite in place keeping size and modification time")
	}
	if Changed(b, b) {
		t.Error("Changed(b, b)")
	}
}
