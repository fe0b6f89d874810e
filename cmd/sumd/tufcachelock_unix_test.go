//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTUFCacheInUseHint: a run on a TUF cache another run holds (a cron
// job's, say) fails at once, exit status 2, naming the directory and
// saying to wait, instead of writing over what the other run keeps.
func TestTUFCacheInUseHint(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "1.root.json")
	if err := os.WriteFile(root, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := sumdCode(t, nil, "tuf", "gosumdb", "-tuf-root", root, "-tuf-url", "http://127.0.0.1:1/tuf", "-cache", cache)
	if code != 2 || !strings.Contains(stderr, "another sumd run holds the TUF cache") || !strings.Contains(stderr, cache) ||
		!strings.Contains(stderr, "hint: another run") {
		t.Errorf("sumd tuf gosumdb on a cache another run holds: exit status %d, stderr:\n%s\nwant 2, naming %s, with a hint to wait", code, stderr, cache)
	}
}
