//go:build unix

package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTUFCacheWaits: a run on a TUF cache another run holds (a second
// shell setting GOSUMDB at the same time, say) says that it waits, and
// once the other run releases the cache goes on, instead of failing and
// leaving that shell's GOSUMDB empty.
func TestTUFCacheWaits(t *testing.T) {
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
	cmd := sumdCommand(t, "tuf", "gosumdb", "-tuf-root", root, "-tuf-url", "http://127.0.0.1:1/tuf", "-cache", cache)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		out.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "another sumd run holds the TUF cache: waiting") {
			f.Close() // the other run ends
			break
		}
	}
	for lines.Scan() {
		out.WriteString(lines.Text() + "\n")
	}
	cmd.Wait()
	if !strings.Contains(out.String(), "waiting") || !strings.Contains(out.String(), cache) || strings.Contains(out.String(), "hint: another run") {
		t.Errorf("sumd tuf gosumdb on a cache another run held, then released: stderr:\n%s\nwant it to say it waits, naming %s, then go on", out.String(), cache)
	}
}
