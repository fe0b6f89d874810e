//go:build unix

package tuf

import (
	"errors"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestStrayKeyFiles: key files that do not parse (an empty file a crash
// left, a stray copy) are skipped while the role's threshold is met by
// the others, and reported; below the threshold they are named in the
// error.
func TestStrayKeyFiles(t *testing.T) {
	f := newFixture(t)
	for _, bad := range []string{
		filepath.Join(f.online, "timestamp-deadbeef.key"),
		filepath.Join(f.online, "snapshot-deadbeef.key"),
		filepath.Join(f.offline, "targets-deadbeef.key"),
	} {
		if err := os.WriteFile(bad, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.advance(SnapshotRenewAfter)
	s, err := f.repo.SignOnline([]string{f.online}, f.clock.Now())
	if err != nil {
		t.Fatalf("SignOnline beside unparsable key files: %v", err)
	}
	if !s.Snapshot || !s.Timestamp {
		t.Errorf("signed snapshot %v, timestamp %v; want both", s.Snapshot, s.Timestamp)
	}
	wantProblem(t, s.Status, "timestamp-deadbeef.key")
	if _, err := f.repo.Publish(mustDatabase(t, newVKey(t)), []string{f.offline}, f.clock.Now().Add(DefaultTargetsExpiry)); err != nil {
		t.Errorf("Publish beside an unparsable key file: %v", err)
	}

	// The real timestamp key gone: the error names the file skipped.
	keys, _ := filepath.Glob(filepath.Join(f.online, "timestamp-*.key"))
	for _, k := range keys {
		if !strings.HasSuffix(k, "deadbeef.key") {
			os.Rename(k, k+".away")
		}
	}
	f.clock.advance(TimestampRenewAfter)
	var missing *MissingKeysError
	_, err = f.repo.SignOnline([]string{f.online}, f.clock.Now())
	if !errors.As(err, &missing) || !strings.Contains(err.Error(), "timestamp-deadbeef.key") {
		t.Errorf("SignOnline without the timestamp key: %v; want a MissingKeysError naming the unparsable file", err)
	}
}

// TestKeyWriteFileFails: a key file whose write fails (disk full, here the
// file size limit) leaves no file, so that the next attempt and the
// readers find none; the name still appears only once.
func TestKeyWriteFileFails(t *testing.T) {
	k := mustKey(t)
	path := filepath.Join(t.TempDir(), "keys", KeyFileName(metadata.TIMESTAMP, k))
	if err := makeKeyDir(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	}
	func() {
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatal(err)
		}
		signal.Ignore(syscall.SIGXFSZ) // EFBIG instead of the signal
		defer signal.Reset(syscall.SIGXFSZ)
		small := lim
		small.Cur = 16
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &small); err != nil {
			t.Fatalf("cannot limit the file size: %v", err) // lowering a soft limit needs no privilege
		}
		defer syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim)
		if err := k.WriteFile(path); err == nil {
			t.Errorf("WriteFile succeeded past the file size limit")
		}
	}()
	if fi, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed WriteFile left %s (%v, %v)", path, fi.Size(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("a failed WriteFile left %v beside .gitignore", entries)
	}
	if err := k.WriteFile(path); err != nil {
		t.Fatalf("WriteFile after the failure: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %s: %v, want mode 0600", path, err)
	}
	if err := mustKey(t).WriteFile(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteFile over an existing key: %v, want fs.ErrExist", err)
	}
	if got, err := ReadKeyFile(path); err != nil || got.ID() != k.ID() {
		t.Errorf("the key file holds %v, %v; want the first key", got, err)
	}
}

// TestInitFailureLeavesNoKeys: an Init that fails after writing some keys
// (here the online key directory cannot be created) removes the keys it
// wrote: no one must take them for the keys of a repository.
func TestInitFailureLeavesNoKeys(t *testing.T) {
	base := t.TempDir()
	blocker := filepath.Join(base, "file")
	os.WriteFile(blocker, nil, 0o600)
	offline := filepath.Join(base, "offline")
	_, err := Init(filepath.Join(base, "repo"), InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: offline,
		OnlineKeys: filepath.Join(blocker, "keys"), Now: time.Now()})
	if err == nil {
		t.Fatal("Init with an online key directory below a file succeeded")
	}
	if keys, _ := filepath.Glob(filepath.Join(offline, "*.key")); len(keys) != 0 {
		t.Errorf("a failed Init left key files %q", keys)
	}
}

// TestNewDirectoriesSynced: a directory created for a key, a target or a
// repository is a new name in its parent, lost in a crash (with the
// synced files in it) unless the parent is synced too. Only the directory
// a file was linked into used to be synced.
func TestNewDirectoriesSynced(t *testing.T) {
	var synced []string
	orig := syncDir
	t.Cleanup(func() { syncDir = orig })
	syncDir = func(d string) error {
		synced = append(synced, d)
		return orig(d)
	}
	base := t.TempDir()
	check := func(what string, want ...string) {
		t.Helper()
		for _, d := range want {
			if !slices.Contains(synced, d) {
				t.Errorf("%s: synced %q, want %s among them", what, synced, d)
			}
		}
		synced = nil
	}

	k := mustKey(t)
	if err := k.WriteFile(filepath.Join(base, "k1", "k2", KeyFileName(metadata.ROOT, k))); err != nil {
		t.Fatal(err)
	}
	check("key file", base, filepath.Join(base, "k1"), filepath.Join(base, "k1", "k2"))

	if err := writeTarget(filepath.Join(base, "t1", "t2", "x"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	check("target", base, filepath.Join(base, "t1"), filepath.Join(base, "t1", "t2"))

	dir := filepath.Join(base, "r1", "repo")
	if _, err := Init(dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: filepath.Join(base, "offline")}); err != nil {
		t.Fatal(err)
	}
	// targets/sumdb/ is created while targets/ is in Init's build
	// directory: targets/ is synced there, before it is renamed.
	if !slices.ContainsFunc(synced, func(d string) bool {
		ok, _ := filepath.Match(filepath.Join(dir, initTemp+"*", targetsDir), d)
		return ok
	}) {
		t.Errorf("repository: synced %q, want the targets directory (where sumdb/ was created) among them", synced)
	}
	check("repository", base, filepath.Join(base, "r1"), dir)
}
