package tuf

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestInitAfterCrash: an Init that crashed after creating metadata/ (an
// older sumd created it before anything else) left no root version 1, so
// nothing was published and no client pinned anything: Init must succeed
// over what is left, not call it an existing repository.
func TestInitAfterCrash(t *testing.T) {
	for name, leftover := range map[string][]string{
		"empty":   {"metadata/", "targets/"},
		"partial": {"metadata/", "metadata/.tmp-123", "targets/sumdb/", "targets/sumdb/" + sha256Hex("x") + ".a.vkey", ".init-123/metadata/"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			for _, p := range leftover {
				path := filepath.Join(dir, filepath.FromSlash(p))
				if p[len(p)-1] == '/' {
					os.MkdirAll(path, 0o755)
					continue
				}
				os.MkdirAll(filepath.Dir(path), 0o755)
				os.WriteFile(path, []byte("x"), 0o644)
			}
			if _, err := Open(dir); err == nil {
				t.Fatal("Open of a crashed Init's leftovers succeeded")
			}
			r, err := Init(dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: t.TempDir()})
			if err != nil {
				t.Fatalf("Init over a crashed Init's leftovers: %v", err)
			}
			if _, err := r.Status(); err != nil {
				t.Errorf("Status: %v", err)
			}
			if _, err := Open(dir); err != nil {
				t.Errorf("Open: %v", err)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".init-*")); len(left) != 0 {
				t.Errorf("Init left %q", left)
			}
		})
	}
}

// TestInitRefusesForeignDirectory: a metadata/ directory that holds files
// of no TUF layout is not a crashed Init's: Init leaves it alone.
func TestInitRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, metadataDir), 0o755)
	notes := filepath.Join(dir, metadataDir, "notes.txt")
	os.WriteFile(notes, []byte("mine"), 0o644)
	if _, err := Init(dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: t.TempDir()}); err == nil {
		t.Error("Init over a foreign metadata/ succeeded")
	}
	if _, err := os.Stat(notes); err != nil {
		t.Errorf("Init removed a foreign file: %v", err)
	}
}

// TestConcurrentInit runs several Inits of one directory at once: one
// creates the repository, the others find it (ErrExists) and leave it
// whole, with the winner's root.
func TestConcurrentInit(t *testing.T) {
	for range 20 {
		dir := filepath.Join(t.TempDir(), "repo")
		const n = 4
		var (
			wg   sync.WaitGroup
			errs [n]error
			offs [n]string
		)
		for i := range n {
			offs[i] = t.TempDir()
			wg.Go(func() {
				_, errs[i] = Init(dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: offs[i], Now: time.Now()})
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("Inits %d and %d both succeeded", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, ErrExists):
				t.Errorf("Init %d: %v, want ErrExists", i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("no Init succeeded: %v", errs)
		}
		r, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Status(); err != nil {
			t.Fatalf("the repository after concurrent Inits: %v", err)
		}
		// The winner's root keys sign it.
		if _, err := r.RotateRoot(RootChange{Expires: time.Now().Add(time.Hour)}, []string{offs[winner]}); err != nil {
			t.Errorf("the winner's root keys: %v", err)
		}
		if _, err := r.loadRoot(); err != nil || len(mustGlob(t, filepath.Join(dir, metadataDir, "*."+metadata.ROOT+".json"))) != 2 {
			t.Errorf("root versions after a rotation: %v", err)
		}
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestInitKeepsPublishedRepository: a repository that has lost
// metadata/1.root.json but holds a later version of any role was
// published, and clients pinned its chain: Init must refuse it, not
// remove it and publish a new root 1 in its place.
func TestInitKeepsPublishedRepository(t *testing.T) {
	// A timestamp re-signed once (daily, by sumd serve) is published too:
	// an interrupted Init leaves version 1 at most.
	const timestamp2 = `{"signed":{"_type":"timestamp","version":2}}`
	for _, later := range []string{"2.root.json", "2.targets.json", "2.snapshot.json", timestampFile} {
		t.Run(later, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "repo")
			if _, err := Init(dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
			path, content := filepath.Join(dir, metadataDir, later), "published"
			if later == timestampFile {
				content = timestamp2
			}
			os.WriteFile(path, []byte(content), 0o644)
			os.Remove(filepath.Join(dir, metadataDir, versionedName(1, metadata.ROOT)))
			_, err := Init(dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: t.TempDir()})
			if !errors.Is(err, ErrExists) {
				t.Errorf("Init over a repository without 1.root.json: %v, want ErrExists", err)
			}
			if data, err := os.ReadFile(path); err != nil || string(data) != content {
				t.Errorf("Init removed or replaced %s: %q, %v", later, data, err)
			}
			if _, err := os.Stat(filepath.Join(dir, metadataDir, versionedName(1, metadata.ROOT))); err == nil {
				t.Error("Init published a new root version 1")
			}
		})
	}
}

// TestInitKeepsKeysAfterPublish: once metadata/ is renamed into place the
// repository exists and clients may pin its root, so a failure after that
// (syncing the directory) must leave the keys that sign it.
func TestInitKeepsKeysAfterPublish(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	errSync := errors.New("injected sync failure")
	orig := syncDir
	t.Cleanup(func() { syncDir = orig })
	syncDir = func(d string) error {
		// Only past the point of no return: dir is synced before too,
		// once the keys directory is created in it.
		if _, err := os.Lstat(filepath.Join(dir, metadataDir)); d == dir && err == nil {
			return errSync
		}
		return orig(d)
	}
	offline := t.TempDir()
	_, err := Init(dir, InitOptions{Database: mustDatabase(t, newVKey(t)), OfflineKeys: offline})
	if !errors.Is(err, errSync) {
		t.Fatalf("Init: %v, want the sync failure", err)
	}
	syncDir = orig
	for _, pattern := range []string{
		filepath.Join(offline, metadata.ROOT+"-*.key"), filepath.Join(offline, metadata.TARGETS+"-*.key"),
		filepath.Join(dir, DefaultOnlineKeys, metadata.SNAPSHOT+"-*.key"), filepath.Join(dir, DefaultOnlineKeys, metadata.TIMESTAMP+"-*.key"),
	} {
		if len(mustGlob(t, pattern)) != 1 {
			t.Errorf("after a sync failure past the point of no return, %s: %q", pattern, mustGlob(t, pattern))
		}
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.RotateRoot(RootChange{Expires: time.Now().Add(time.Hour)}, []string{offline}); err != nil {
		t.Errorf("the repository's root keys: %v", err)
	}
}
