//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tuf"
)

// sharedDir makes a directory every user may write to, sticky as /tmp.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return dir
}

// plant gives path to another user, as if that user had put it there:
// as root, to nobody (65534). It reports whether it could.
func plant(t *testing.T, path string) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		return false
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return true
}

// TestKeyRotatePlantedKey: sumd key rotate -new-key took an existing key
// file as the log's new key whoever had put it there, and sumd tuf
// rotate-root an existing -new-root-key or -new-targets-key file alike:
// under a directory every user may write to (/tmp), another user could
// plant a key of their own (mode 0600, so that the mode check passes),
// and an operator running sumd as root, who may read it, made it a key of
// the log or the repository's root. Such a file, or one in a directory of
// another user there, is refused now. Without root, the check is made as
// for another user's process.
func TestKeyRotatePlantedKey(t *testing.T) {
	shared := sharedDir(t)
	skey, _, err := tlog.GenerateKey(e2eName)
	if err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(shared, e2eName+".key")
	writeFile(t, planted, []byte(skey+"\n"))
	if err := os.Chmod(planted, 0o600); err != nil {
		t.Fatal(err)
	}
	if !plant(t, planted) {
		if err := checkPlanted(planted, os.Geteuid()+1); err == nil || !strings.Contains(err.Error(), "belongs to uid") {
			t.Errorf("a key file of another user under a shared directory: %v, want it refused", err)
		}
		return
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "sumd.db")
	oldVKey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	oldKey := filepath.Join(dir, "keys", e2eName+".key")
	mod := filepath.Join(dir, "m")
	if err := os.Mkdir(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(mod, "go.mod"), []byte("module example.com/m\n"))
	sumd(t, "add", "-create", "-db", db, "-key", oldKey, "example.com/m@v1.0.0", mod)
	_, errOut, err := sumdRun(t, "key", "rotate", "-db", db, "-key", oldKey, "-new-key", planted)
	if err == nil || !strings.Contains(errOut, "belongs to uid 65534") {
		t.Errorf("key rotate with a planted -new-key: err %v\n%s", err, errOut)
	}
	// The log still signs with its own key alone.
	_, errOut, err = sumdRun(t, "key", "retire", "-db", db, "-key", oldKey, "-retire", oldVKey)
	if err == nil || !strings.Contains(errOut, "the log's only key") {
		t.Errorf("after the refused rotation, the log signs with more than its own key: %v\n%s", err, errOut)
	}

	// A planted directory is refused too, before a key is generated in
	// it: its owner may swap the key before sumd reads it, or delete it.
	theirs := filepath.Join(shared, "next")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	plant(t, theirs)
	_, errOut, err = sumdRun(t, "key", "rotate", "-db", db, "-key", oldKey, "-new-key", filepath.Join(theirs, e2eName+".key"))
	if err == nil || !strings.Contains(errOut, "belongs to uid 65534") {
		t.Errorf("key rotate with -new-key in a planted directory: err %v\n%s", err, errOut)
	}
	if _, err := os.Stat(filepath.Join(theirs, e2eName+".key")); err == nil {
		t.Error("key rotate generated the new key in a planted directory")
	}

	// tuf rotate-root, with a planted new root key.
	repo := filepath.Join(dir, "tuf")
	offline := filepath.Join(dir, "offline")
	sumd(t, "tuf", "init", "-name", e2eName, "-dir", repo, "-keys", offline, "-vkey", oldVKey, "-url", "https://"+e2eName)
	k, err := tuf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rootKey := filepath.Join(shared, "root-new.key")
	if err := k.WriteFile(rootKey); err != nil {
		t.Fatal(err)
	}
	plant(t, rootKey)
	_, errOut, err = sumdRun(t, "tuf", "rotate-root", "-dir", repo, "-keys", offline, "-new-root-key", rootKey)
	if err == nil || !strings.Contains(errOut, "belongs to uid 65534") {
		t.Errorf("tuf rotate-root with a planted -new-root-key: err %v\n%s", err, errOut)
	}
	if _, err := os.Stat(filepath.Join(repo, "metadata", "2.root.json")); err == nil {
		t.Error("tuf rotate-root wrote root version 2 with the planted key")
	}
}

// TestTUFRotateRootKeyInOthersDirectory: tuf rotate-root generated a new
// root or targets key named in a directory of another user under a
// directory every user may write to, and made it a key of the new root:
// that user, unable to read the file, could still delete it, and the
// root keys, kept nowhere else, were lost with it. Such a directory is
// refused now, before anything is generated.
func TestTUFRotateRootKeyInOthersDirectory(t *testing.T) {
	shared := sharedDir(t)
	theirs := filepath.Join(shared, "theirs")
	if err := os.Mkdir(theirs, 0o777); err != nil {
		t.Fatal(err)
	}
	if !plant(t, theirs) {
		if err := checkPlanted(filepath.Join(theirs, "root-new.key"), os.Geteuid()+1); err == nil || !strings.Contains(err.Error(), "belongs to uid") {
			t.Errorf("a new key file in another user's directory under a shared directory: %v, want it refused", err)
		}
		return
	}
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	repo := filepath.Join(dir, "tuf")
	offline := filepath.Join(dir, "offline")
	sumd(t, "tuf", "init", "-name", e2eName, "-dir", repo, "-keys", offline, "-vkey", vkey, "-url", "https://"+e2eName)
	for _, flag := range []string{"-new-root-key", "-new-targets-key"} {
		role := strings.TrimSuffix(strings.TrimPrefix(flag, "-new-"), "-key")
		file := filepath.Join(theirs, role+"-new.key")
		_, errOut, err := sumdRun(t, "tuf", "rotate-root", "-dir", repo, "-keys", offline, flag, file)
		if err == nil || !strings.Contains(errOut, "belongs to uid 65534") {
			t.Errorf("tuf rotate-root %s in another user's directory: err %v\n%s", flag, err, errOut)
		}
		if _, err := os.Stat(file); err == nil {
			t.Errorf("tuf rotate-root %s in another user's directory generated %s", flag, file)
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "metadata", "2.root.json")); err == nil {
		t.Error("tuf rotate-root wrote root version 2 with a key in another user's directory")
	}
}

// TestKeygenInOthersDirectory: sumd keygen -key-dir wrote a log's key into
// a directory of another user under a directory every user may write to:
// that user could swap the file for a key of their own before sumd serve
// -create read it (as root, sumd reads another user's 0600 file), and the
// new log would sign with it. Such a directory is refused now, before the
// key is generated.
func TestKeygenInOthersDirectory(t *testing.T) {
	shared := sharedDir(t)
	theirs := filepath.Join(shared, "keys")
	if err := os.Mkdir(theirs, 0o777); err != nil {
		t.Fatal(err)
	}
	if !plant(t, theirs) {
		if err := checkPlanted(filepath.Join(theirs, e2eName+".key"), os.Geteuid()+1); err == nil || !strings.Contains(err.Error(), "belongs to uid") {
			t.Errorf("a key file to write into another user's directory under a shared directory: %v, want it refused", err)
		}
		return
	}
	_, errOut, err := sumdRun(t, "keygen", "-name", e2eName, "-key-dir", theirs)
	if err == nil || !strings.Contains(errOut, "belongs to uid 65534") {
		t.Errorf("keygen -key-dir of another user under a shared directory: err %v\n%s", err, errOut)
	}
	if _, err := os.Stat(filepath.Join(theirs, e2eName+".key")); err == nil {
		t.Error("keygen wrote the key into another user's directory")
	}
}

// TestTUFInitKeysInOthersDirectory: sumd tuf init wrote the root and
// targets keys (-keys) and the online keys (-online-keys) into a
// directory of another user under a directory every user may write to:
// that user could delete the only copy of the root keys, or swap the
// online keys' files. Such a directory is refused now, before anything is
// written.
func TestTUFInitKeysInOthersDirectory(t *testing.T) {
	shared := sharedDir(t)
	theirs := filepath.Join(shared, "tufkeys")
	if err := os.Mkdir(theirs, 0o777); err != nil {
		t.Fatal(err)
	}
	if !plant(t, theirs) {
		if err := checkPlanted(theirs, os.Geteuid()+1); err == nil || !strings.Contains(err.Error(), "belongs to uid") {
			t.Errorf("a key directory of another user under a shared directory: %v, want it refused", err)
		}
		return
	}
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	for _, flag := range []string{"-keys", "-online-keys"} {
		repo := filepath.Join(dir, "tuf"+flag)
		args := []string{"tuf", "init", "-name", e2eName, "-dir", repo, "-vkey", vkey, flag, theirs}
		if flag != "-keys" {
			args = append(args, "-keys", filepath.Join(dir, "offline"))
		}
		_, errOut, err := sumdRun(t, args...)
		if err == nil || !strings.Contains(errOut, "belongs to uid 65534") {
			t.Errorf("tuf init %s of another user under a shared directory: err %v\n%s", flag, err, errOut)
		}
		if _, err := os.Stat(filepath.Join(repo, "metadata", "1.root.json")); err == nil {
			t.Errorf("tuf init %s of another user created the repository", flag)
		}
	}
	if keys, _ := filepath.Glob(filepath.Join(theirs, "*.key")); len(keys) > 0 {
		t.Errorf("tuf init wrote keys into another user's directory: %q", keys)
	}
}
