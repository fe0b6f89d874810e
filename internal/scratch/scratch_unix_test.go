//go:build unix

package scratch

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestOpenLocked: a second process that opens a directory the first one
// holds is refused, with a message that says what to do, and removes
// nothing: the files there may be the first one's zips in flight. The
// holder may open it again, and once it exits, the next process may.
func TestOpenLocked(t *testing.T) {
	if dir := os.Getenv("SCRATCH_TEST_OPEN"); dir != "" { // the second process
		_, err := Open(dir)
		fmt.Print(err)
		os.Exit(0)
	}
	second := func(dir string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenLocked$")
		cmd.Env = append(os.Environ(), "SCRATCH_TEST_OPEN="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("second process: %v: %s", err, out)
		}
		return string(out)
	}

	dir := t.TempDir()
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	inFlight, err := Create(dir, Upstream)
	if err != nil {
		t.Fatal(err)
	}
	inFlight.Close()
	out := second(dir)
	if want := fmt.Sprintf("temporary directory %s is in use by another sumd process (pid %d): give each sumd its own -tmp-dir", dir, os.Getpid()); out != want {
		t.Errorf("second Open: %q, want %q", out, want)
	}
	if _, err := os.Stat(inFlight.Name()); err != nil {
		t.Errorf("the second Open removed the first one's file: %v", err)
	}
	if removed, err := Open(dir); err != nil || len(removed) != 1 {
		t.Errorf("Open again by the holder: %v, %v; want its own leftover removed", removed, err)
	}

	free := t.TempDir()
	if out := second(free); out != "<nil>" {
		t.Fatalf("Open of a free directory by another process: %s", out)
	}
	if _, err := Open(free); err != nil { // that process exited: its lock went with it
		t.Errorf("Open after the holder exited: %v", err)
	}
}

// TestOpenLockNotFollowed: a sumd.lock that is a symbolic link or a hard
// link to another file, planted by whoever could write to the directory
// before (another user, or the service user whose directory root's sumd
// add opens), is refused, and the file it names is neither truncated nor
// written: Open would otherwise put its process id in place of, say,
// /etc/shadow.
func TestOpenLockNotFollowed(t *testing.T) {
	for _, link := range []func(oldname, newname string) error{os.Symlink, os.Link} {
		dir := t.TempDir()
		victim := filepath.Join(t.TempDir(), "victim")
		os.WriteFile(victim, []byte("keep me\n"), 0o600)
		if err := link(victim, filepath.Join(dir, lockName)); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir); err == nil {
			t.Errorf("Open with %s a link to another file succeeded", lockName)
		}
		if b, _ := os.ReadFile(victim); string(b) != "keep me\n" {
			t.Errorf("Open wrote through the lock file's link: the file it names holds %q", b)
		}
	}
}

// TestOpenLockError: a sumd.lock that cannot be opened for a reason other
// than being a link (here a directory in its place) is reported as what
// failed, with the cause wrapped, not as a link; a symbolic link keeps the
// link's message.
func TestOpenLockError(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, lockName), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if err == nil || !errors.Is(err, syscall.EISDIR) || strings.Contains(err.Error(), "link") {
		t.Errorf("Open with %s a directory: %v, want the open's own failure (is a directory), no word of a link", lockName, err)
	}

	dir = t.TempDir()
	if err := os.Symlink(filepath.Join(t.TempDir(), "victim"), filepath.Join(dir, lockName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "must be a regular file, not a link") {
		t.Errorf("Open with %s a symbolic link: %v, want it refused as a link", lockName, err)
	}
}

// TestOpenRefusesOthersDirectory: a directory of another user is refused,
// whatever its mode, and nothing in it is removed: its owner may swap the
// files sumd writes there between their writing and their reading (a zip
// once hashed, a sorted run of checked lines), or plant links. As root,
// the directory is given to nobody (65534); otherwise the check is made
// as for another user's process.
func TestOpenRefusesOthersDirectory(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, "sumd-upload-1.zip")
	os.WriteFile(left, nil, 0o600)
	var err error
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err = Open(dir)
	} else {
		fi, serr := os.Stat(dir)
		if serr != nil {
			t.Fatal(serr)
		}
		err = checkOwner(dir, fi, os.Geteuid()+1)
	}
	if err == nil || !strings.Contains(err.Error(), "belongs to uid") {
		t.Errorf("Open of another user's directory: %v, want it refused", err)
	}
	if _, err := os.Stat(left); err != nil {
		t.Errorf("the refused Open removed a file: %v", err)
	}
}
