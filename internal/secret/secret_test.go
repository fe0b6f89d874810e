package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestChangedRacy: on a file system whose time stamps are coarse (a
// second, two on FAT), a file rewritten in place with content of the same
// length within the tick of its last read shows the same stat as then, and
// the new content went unseen until the next change: a revoked password
// stayed valid. A read within racyWindow of the file's stamp is racy, and
// Changed compares its content until a compare finds it unchanged once the
// stamp is safely past; then it goes by the stat alone.
func TestChangedRacy(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	path := filepath.Join(t.TempDir(), "tokens")
	write := func(content string) {
		t.Helper()
		// In place: the same inode, truncated and written, as a coarse
		// file system would show within one tick (b below).
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ci:old-token-0123456789\n")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	at := stamp(fi)
	now = func() time.Time { return at } // read within the stamp's tick
	_, a, err := ReadFile(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	// What stat shows after a rewrite within the tick: nothing moved.
	b, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if Changed(a, b) {
		t.Error("Changed: the racy file is unchanged")
	}
	write("ci:new-token-9876543210\n") // a revocation, the same length
	if !Changed(a, b) {
		t.Error("Changed missed a rewrite of the same length within the tick of the read")
	}
	write("ci:old-token-0123456789\n")
	now = func() time.Time { return at.Add(racyWindow) }
	if Changed(a, b) {
		t.Error("Changed: the file is back as it was read")
	}
	// That compare was made safely past the stamp: any later write has
	// another stamp, so the file is not read again.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if Changed(a, b) {
		t.Error("Changed read the file again once its stamp was safely past")
	}

	// A file read safely past its stamp is never compared.
	write("ci:old-token-0123456789\n")
	if fi, err = os.Stat(path); err != nil {
		t.Fatal(err)
	}
	now = func() time.Time { return stamp(fi).Add(racyWindow) }
	if _, a, err = ReadFile(path, 100); err != nil {
		t.Fatal(err)
	}
	if b, err = os.Stat(path); err != nil {
		t.Fatal(err)
	}
	write("ci:new-token-9876543210\n")
	if Changed(a, b) {
		t.Error("Changed compared the content of a file read safely past its stamp")
	}
}
