package upstream

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCheckerStateSyncsDir: the tree head saved is durable once saved, its
// directory synced after the rename; until then a crash may bring back the
// previous head, and with it the trust in a history the database has
// since rewritten.
func TestCheckerStateSyncsDir(t *testing.T) {
	state := filepath.Join(t.TempDir(), "data", "latest")
	var synced []string
	defer func(orig func(string) error) { syncDir = orig }(syncDir)
	syncDir = func(dir string) error {
		synced = append(synced, dir)
		return nil
	}
	s := newCheckedSetup(t, CheckerOptions{StateFile: state})
	s.db.add(t, otherRecord(0), s.right)
	s.lookup(t, 200, "0\n")
	if len(synced) == 0 || synced[len(synced)-1] != filepath.Dir(state) {
		t.Errorf("directories synced: %q, want the state file's, %s, last", synced, filepath.Dir(state))
	}
}

// TestCheckerStateSyncsNewDirs: the directories made at first start for
// the state file are durable before it is saved in them: each one's parent
// is synced, or a crash right after the first save could lose a directory,
// and with it the saved tree head.
func TestCheckerStateSyncsNewDirs(t *testing.T) {
	root := t.TempDir()
	state := filepath.Join(root, "data", "sub", "latest")
	var synced []string
	defer func(orig func(string) error) { syncDir = orig }(syncDir)
	syncDir = func(dir string) error {
		synced = append(synced, dir)
		return nil
	}
	newCheckedSetup(t, CheckerOptions{StateFile: state})
	for _, dir := range []string{root, filepath.Join(root, "data")} {
		if !slices.Contains(synced, dir) {
			t.Errorf("directories synced at start: %q, want %s among them", synced, dir)
		}
	}
}

// TestCheckerStateUnsaved: a tree head verified but not saved (the state
// file's directory gone, read-only, a full disk) is sumd's own failure: a
// 503 naming no path, counted in the server's health as that, not a 502
// blaming the database, nor a failure of the temporary directory.
func TestCheckerStateUnsaved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	state := filepath.Join(dir, "latest")
	s := newCheckedSetup(t, CheckerOptions{StateFile: state, FailOpen: true})
	s.db.add(t, otherRecord(0), s.right)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s.lookup(t, 503, "server error: example.com/m@v1.0.0: sumd cannot save")
	if _, body := lookupHTTP(t, s.rec, s.m); strings.Contains(body, dir) {
		t.Errorf("the answer names the state file's directory: %q", body)
	}
	p := s.rec.Problems()
	if len(p) != 1 || !strings.Contains(p[0], "cross-check") || strings.Contains(p[0], dir) || strings.Contains(p[0], "-tmp-dir") {
		t.Errorf("Problems = %q, want the state not saved, naming no path", p)
	}
	if !strings.Contains(s.logs.String(), dir) {
		t.Errorf("the log does not name the state file's directory:\n%s", s.logs)
	}
}
