package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupVerifyMissingFile: sumd backup verify of a file that does not
// exist (a typo) says to check its name, not to take another backup.
func TestBackupVerifyMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.db")
	_, errOut, err := sumdRun(t, "backup", "verify", missing)
	if err == nil || !strings.Contains(errOut, "hint: check the backup file's name: "+missing) || strings.Contains(errOut, "take another backup") {
		t.Errorf("sumd backup verify of a missing file: %v\n%s", err, errOut)
	}
}
