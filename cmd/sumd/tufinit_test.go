package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/sumd-project/sumd/internal/tuf"
)

// TestTUFInitLostRoot: tuf init over a published repository that lost
// metadata/1.root.json refuses it, and its hint says to restore that file,
// not to publish into a repository no command can open.
func TestTUFInitLostRoot(t *testing.T) {
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	repo := filepath.Join(dir, "tuf")
	args := []string{"tuf", "init", "-name", e2eName, "-dir", repo, "-keys", filepath.Join(dir, "offline"), "-vkey", vkey, "-url", "https://" + e2eName}
	sumd(t, args...)
	root := filepath.Join(repo, "metadata", "1.root.json")
	data, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(repo, "metadata", "2.root.json"), data)
	os.Remove(root)
	_, errOut, err := sumdRun(t, args...)
	if err == nil {
		t.Fatal("tuf init over a repository that lost 1.root.json succeeded")
	}
	if !strings.Contains(errOut, "hint: restore") || strings.Contains(errOut, "tuf publish") {
		t.Errorf("tuf init over a repository that lost 1.root.json:\n%s", errOut)
	}
}

// TestTUFRotateRootOfflineKeyNotOnline: tuf rotate-root refuses a new root
// or targets key file in the online keys' directory (DIR/keys by default,
// or -online-keys), as tuf init does, before writing anything: that
// directory stays where the server signs, and an offline key there is one
// the server's machine holds.
func TestTUFRotateRootOfflineKeyNotOnline(t *testing.T) {
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	repo := filepath.Join(dir, "tuf")
	offline := filepath.Join(dir, "offline")
	sumd(t, "tuf", "init", "-name", e2eName, "-dir", repo, "-keys", offline, "-vkey", vkey, "-url", "https://"+e2eName)
	online := filepath.Join(repo, "keys")
	for _, flag := range []string{"-new-root-key", "-new-targets-key"} {
		role := strings.TrimSuffix(strings.TrimPrefix(flag, "-new-"), "-key")
		for name, file := range map[string]string{
			"path":    filepath.Join(online, role+"-new.key"),
			"unclean": repo + "/./keys/../keys/" + role + "-new.key",
		} {
			_, errOut, err := sumdRun(t, "tuf", "rotate-root", "-dir", repo, "-keys", offline, flag, file)
			if err == nil || !strings.Contains(errOut, "online keys' directory") {
				t.Errorf("%s in the online keys' directory (%s): err %v\n%s", flag, name, err, errOut)
			}
			if _, err := os.Stat(file); err == nil {
				t.Errorf("%s in the online keys' directory (%s) wrote %s", flag, name, file)
			}
		}
	}
	// Another -online-keys directory, named through a symlink.
	other := filepath.Join(dir, "online")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(link, "root-new.key")
	_, errOut, err := sumdRun(t, "tuf", "rotate-root", "-dir", repo, "-keys", offline, "-online-keys", other, "-new-root-key", file)
	if err == nil || !strings.Contains(errOut, "online keys' directory") {
		t.Errorf("-new-root-key in -online-keys through a symlink: err %v\n%s", err, errOut)
	}
	if _, err := os.Stat(file); err == nil {
		t.Errorf("-new-root-key in -online-keys through a symlink wrote %s", file)
	}
}

// TestTUFRotateRootKeyLinkedOnline: a new root or targets key file that
// is a symbolic link to a key file in the online keys' directory was
// checked by the link's directory alone, so tuf rotate-root made a key
// the server's machine holds the new offline key; the link is followed
// before the check now.
func TestTUFRotateRootKeyLinkedOnline(t *testing.T) {
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	repo := filepath.Join(dir, "tuf")
	offline := filepath.Join(dir, "offline")
	sumd(t, "tuf", "init", "-name", e2eName, "-dir", repo, "-keys", offline, "-vkey", vkey, "-url", "https://"+e2eName)
	k, err := tuf.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(repo, "keys", "root-there.key")
	if err := k.WriteFile(target); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(dir, "new")
	if err := os.Mkdir(elsewhere, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(elsewhere, "root-new.key")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := sumdRun(t, "tuf", "rotate-root", "-dir", repo, "-keys", offline, "-new-root-key", link)
	if err == nil || !strings.Contains(errOut, "online keys' directory") {
		t.Errorf("-new-root-key linked to a key in the online keys' directory: err %v\n%s", err, errOut)
	}
	if _, err := os.Stat(filepath.Join(repo, "metadata", "2.root.json")); err == nil {
		t.Error("tuf rotate-root wrote root version 2 with it")
	}
}

// TestTUFRotateRootKeysNotOnline: tuf rotate-root refused new offline keys
// in the online keys' directory but signed with the root and targets keys
// -keys found there, so a root key kept where the server signs went
// unremarked at every ceremony. A -keys directory that is the online keys'
// is now refused, as tuf init refuses it, before anything is written.
func TestTUFRotateRootKeysNotOnline(t *testing.T) {
	testKeysNotOnline(t, filepath.Join("metadata", "2.root.json"), "rotate-root")
}

// TestTUFPublishKeysNotOnline: tuf publish signed the targets with the
// offline keys -keys found in the online keys' directory without a word,
// as rotate-root did; it now refuses that directory before writing.
func TestTUFPublishKeysNotOnline(t *testing.T) {
	testKeysNotOnline(t, filepath.Join("metadata", "2.targets.json"), "publish", "-vkey", "")
}

// TestTUFInitKeysNotOnline: tuf init with -keys naming the online keys'
// directory (DIR/keys, or -online-keys) is a usage error (exit 2) with a
// hint, as in tuf publish and rotate-root, where it failed with exit 1
// and no hint, writing nothing.
func TestTUFInitKeysNotOnline(t *testing.T) {
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	repo := filepath.Join(dir, "tuf")
	for _, extra := range [][]string{
		{"-keys", filepath.Join(repo, "keys")},
		{"-keys", filepath.Join(dir, "online"), "-online-keys", filepath.Join(dir, "online")},
	} {
		args := append([]string{"tuf", "init", "-name", e2eName, "-dir", repo, "-vkey", vkey, "-url", "https://" + e2eName}, extra...)
		_, errOut, err := sumdRun(t, args...)
		if statusOf(err) != 2 || !strings.Contains(errOut, "online keys' directory") || !strings.Contains(errOut, "hint: ") {
			t.Errorf("tuf init %q: %v\n%s\nwant exit 2, saying -keys is the online keys' directory, with a hint", extra, err, errOut)
		}
		if _, err := os.Stat(filepath.Join(repo, "metadata", "1.root.json")); err == nil {
			t.Fatalf("tuf init %q wrote its root", extra)
		}
	}
}

// testKeysNotOnline copies the offline keys of a new repository into its
// online keys' directory, runs tuf STEP ARGS with -keys naming that
// directory (alone, second, through a link) and checks each run is refused
// before written, a file the step would write, exists. An empty -vkey in
// args is given the log's verifier key.
func testKeysNotOnline(t *testing.T, written, step string, args ...string) {
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	for i, a := range args {
		if a == "" && i > 0 && args[i-1] == "-vkey" {
			args[i] = vkey
		}
	}
	repo := filepath.Join(dir, "tuf")
	offline := filepath.Join(dir, "offline")
	sumd(t, "tuf", "init", "-name", e2eName, "-dir", repo, "-keys", offline, "-vkey", vkey, "-url", "https://"+e2eName)
	online := filepath.Join(repo, "keys")
	// The offline keys copied where the server signs.
	keys, err := filepath.Glob(filepath.Join(offline, "*.key"))
	if err != nil || len(keys) == 0 {
		t.Fatalf("no offline keys in %s: %v", offline, err)
	}
	for _, k := range keys {
		data, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(online, filepath.Base(k)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, dirs string }{
		{"alone", online},
		{"second", offline + "," + repo + "/./keys"},
		{"renamed", filepath.Join(dir, "offline2")},
	} {
		name, dirs := tc.name, tc.dirs
		if name == "renamed" {
			// The online keys' directory named through a symlink.
			if err := os.Symlink(online, dirs); err != nil {
				t.Fatal(err)
			}
		}
		run := append([]string{"tuf", step, "-dir", repo, "-keys", dirs}, args...)
		_, errOut, err := sumdRun(t, run...)
		if statusOf(err) != 2 || !strings.Contains(errOut, "online keys' directory") || !strings.Contains(errOut, "hint: ") {
			t.Errorf("tuf %s -keys %s (%s): err %v\n%s\nwant exit 2 with a hint", step, dirs, name, err, errOut)
		}
		if _, err := os.Stat(filepath.Join(repo, written)); err == nil {
			t.Fatalf("tuf %s -keys %s (%s) wrote %s", step, dirs, name, written)
		}
	}
}

// TestTUFRotateRootFailedReportsOnlineKeys: a tuf rotate-root
// -rotate-online that failed after its new root was written (its
// directory not synced, say) kept the online keys it generated, which that
// root names, but said nothing of them: the operator, told only of the
// failure, did not learn which keys sumd serve must now sign with, nor to
// delete the old ones. They are now reported as after a success.
func TestTUFRotateRootFailedReportsOnlineKeys(t *testing.T) {
	dir := t.TempDir()
	vkey := strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	repoDir := filepath.Join(dir, "tuf")
	offline := filepath.Join(dir, "offline")
	sumd(t, "tuf", "init", "-name", e2eName, "-dir", repoDir, "-keys", offline, "-vkey", vkey, "-url", "https://"+e2eName)
	repo, err := openRepo(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	online := &newOnlineKeys{dir: filepath.Join(repoDir, "keys")}
	var ch tuf.RootChange
	if ch.SnapshotKey, err = online.generate(metadata.SNAPSHOT); err != nil {
		t.Fatal(err)
	}
	if ch.TimestampKey, err = online.generate(metadata.TIMESTAMP); err != nil {
		t.Fatal(err)
	}
	ch.Expires = time.Now().Add(24 * time.Hour)
	before := rootVersion(repo)
	if _, err := repo.RotateRoot(ch, []string{offline}); err != nil {
		t.Fatal(err)
	}
	// The root is written; then, say, syncing its directory failed.
	var stderr strings.Builder
	if err := rotateFailed(repo, before, online, errors.New("failed to sync metadata"), &stderr); err == nil {
		t.Fatal("rotateFailed returned no error")
	}
	for _, f := range online.files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the new online key %s, which the new root names, is gone: %v", f, err)
		}
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("the new online key %s, which the new root names, was not reported:\n%s", f, stderr.String())
		}
	}
}
