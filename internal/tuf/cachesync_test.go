package tuf

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCacheWrittenDurably: every file of a client's cache reaches the
// disk before its name does, and the names are synced into their
// directories, so a power cut leaves the cache as it was or as the run
// verified it, never a truncated root.json or timestamp.json. go-tuf
// writes its cache through a rename without syncing anything.
func TestCacheWrittenDurably(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	var synced [][]byte // the content of each file synced
	var events []string // "file <content>" or "dir <path>", in order
	origFile, origDir := syncFile, syncDir
	t.Cleanup(func() { syncFile, syncDir = origFile, origDir })
	syncFile = func(file *os.File) error {
		data, err := os.ReadFile(file.Name())
		if err != nil {
			t.Errorf("reading a synced file back: %v", err)
		}
		synced = append(synced, data)
		events = append(events, "file "+filepath.Dir(file.Name()))
		return origFile(file)
	}
	syncDir = func(d string) error {
		events = append(events, "dir "+d)
		return origDir(d)
	}
	f.mustFetch(cache)

	pin := filepath.Join(cache, pinDir(f.root(1), f.url))
	meta := filepath.Join(pin, metadataDir)
	entries, err := os.ReadDir(meta)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		data, err := os.ReadFile(filepath.Join(meta, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(synced, func(s []byte) bool { return string(s) == string(data) }) {
			t.Errorf("cached %s was never synced", e.Name())
		}
	}
	for _, want := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		if !slices.Contains(names, want) {
			t.Errorf("the cache holds %q, no %s", names, want)
		}
	}
	// The directory of the files is synced after the last of them, and
	// each new directory's name into its parent.
	last := -1
	for i, e := range events {
		if e == "file "+meta {
			last = i
		}
	}
	if last < 0 || !slices.Contains(events[last+1:], "dir "+meta) {
		t.Errorf("%s not synced after its files were written; syncs: %q", meta, events)
	}
	for _, d := range []string{pin, cache} {
		if !slices.Contains(events, "dir "+d) {
			t.Errorf("%s, which a new directory was created in, never synced; syncs: %q", d, events)
		}
	}
}
