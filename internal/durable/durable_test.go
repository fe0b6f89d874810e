package durable

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/sumd-project/sumd/internal/testenv"
)

// TestSyncDir: a directory syncs; a missing one is an error naming it.
func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Fatalf("SyncDir(%s) = %v", dir, err)
	}
	missing := filepath.Join(dir, "missing")
	if err := SyncDir(missing); err == nil {
		t.Fatalf("SyncDir of a missing directory = nil")
	}
}

// TestSyncDirSyncs proves that SyncDir reaches the disk, which nothing
// else can see: a SyncDir that skipped the sync passes TestSyncDir and
// every test of its callers. A child (this test binary) calls SyncDir once
// under strace, and its trace must show an fsync or fdatasync of a
// descriptor of the directory itself (-y names each descriptor's file).
func TestSyncDirSyncs(t *testing.T) {
	strace := testenv.LookPath(t, "strace")
	dir := t.TempDir()
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-y", "-o", trace, "-e", "trace=openat,fsync,fdatasync",
		os.Args[0], "-test.run=^TestSyncDirChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SUMD_SYNCDIR_CHILD="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	data, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	synced := regexp.MustCompile(`(?m)\bf(?:data)?sync\(\d+<` + regexp.QuoteMeta(dir) + `>\)\s+= 0$`)
	if !synced.Match(data) {
		t.Errorf("SyncDir(%s) made no fsync or fdatasync of the directory; the child's calls:\n%s", dir, data)
	}
}

// TestSyncDirChild is TestSyncDirSyncs's child: it syncs the directory
// its parent names, and does nothing when run on its own.
func TestSyncDirChild(t *testing.T) {
	dir := os.Getenv("SUMD_SYNCDIR_CHILD")
	if dir == "" {
		return
	}
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}
