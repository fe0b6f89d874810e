package main

import (
	"path/filepath"
	"strings"
	"testing"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestCopyReadsSourceOnly: sumd copy opened a bbolt source for writing,
// though it only reads it: a backup it could read but not write (another
// user's, or on read-only media) was refused, and so was a source another
// reader held (sumd backup verify, a second copy of the same backup), its
// exclusive lock waiting on their shared one. It opens the source
// read-only, under a shared lock.
func TestCopyReadsSourceOnly(t *testing.T) {
	dir := t.TempDir()
	_, _, db := syntheticLog(t, dir, "backup.db", 20)
	reader, err := itlog.OpenBolt(db, itlog.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	out, errOut, err := sumdRun(t, "copy", "-from", db, "-to", filepath.Join(dir, "copy.db"))
	if err != nil || !strings.Contains(out, "copied "+e2eName+": 20 records") {
		t.Errorf("sumd copy from a source another reader holds: %v\n%s%s", err, out, errOut)
	}
}
