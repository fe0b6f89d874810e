package upstream

import (
	"path/filepath"
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
