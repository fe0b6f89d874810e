package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sumd-project/sumd/internal/tlog"
)

// TestCopyHints: the hint sumd copy gives for each kind of failure. A copy
// into a destination holding another copy's data that its head does not
// explain (one that did not verify) was told to run sumd copy again,
// which meets the same data: a loop; it is told to copy into an empty
// database. An outage met while the copy verified was told to audit the
// source (an ErrCorrupt, see TestVerifyReadFailure); it is told to run it
// again.
func TestCopyHints(t *testing.T) {
	for _, tt := range []struct {
		err       error
		want, not string
	}{
		{fmt.Errorf("failed to store records 0 to 599: %w", tlog.ErrUnexplainedData), "copy into an empty database", "run sumd copy again"},
		{fmt.Errorf("the copy does not verify: %w", &tlog.UnavailableError{Err: errors.New("dial tcp: refused")}), "run sumd copy again", "audit"},
		{fmt.Errorf("the copy does not verify: %w: record 5 does not match", tlog.ErrCorrupt), "audit the source", "run sumd copy again"},
		{fmt.Errorf("failed to store records 0 to 599: %w", tlog.ErrNotPersisted), "run sumd copy again", "empty"},
		{fmt.Errorf("failed to read records 0 to 299: %w", &tlog.DamagedError{Path: "from.db", What: "a page"}), "the source database is damaged", "destination"},
		{fmt.Errorf("failed to store records 0 to 299: %w", &tlog.DamagedError{Path: "to.db", What: "a page"}), "the destination database is damaged", "source"},
		// Run again, a copy stopped by -min-free-disk or a full disk
		// meets the same floor.
		{fmt.Errorf("failed to store records 0 to 299: %w", &tlog.LowDiskError{Path: "to.db", Free: 10 << 20, Floor: 64 << 20}), "lower -min-free-disk", "source"},
		{fmt.Errorf("failed to store records 0 to 299: %w", &fs.PathError{Op: "write", Path: "to.db", Err: syscall.ENOSPC}), "is full: free space", "source"},
	} {
		var ce *cliError
		if err := copyError(tt.err, "from.db", "to.db"); !errors.As(err, &ce) || !strings.Contains(ce.hint, tt.want) || strings.Contains(ce.hint, tt.not) {
			t.Errorf("copyError(%v): hint %q, want %q and not %q", tt.err, ce.hint, tt.want, tt.not)
		}
	}
}

// TestCopyLowDiskLeavesNoFile: a sumd copy into a new bbolt file refused
// by -min-free-disk before it stored anything removes the file it made,
// as sumd mirror import does (TestImportLowDisk) and sumd restore's: it
// left an empty -to file behind, harmless (the next copy took it up) but
// a file that is no copy, in a directory of backups.
func TestCopyLowDiskLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	_, _, db := syntheticLog(t, dir, "sumd.db", 20)
	to := filepath.Join(dir, "to.db")
	_, errOut, err := sumdRun(t, "copy", "-from", db, "-to", to, "-min-free-disk", "100000000")
	if err == nil || !strings.Contains(errOut, "lower -min-free-disk") {
		t.Errorf("copy under -min-free-disk: %v\n%s\nwant a hint to free space or lower -min-free-disk", err, errOut)
	}
	if _, err := os.Stat(to); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the copy refused by -min-free-disk left %s: %v", to, err)
	}
	if out := sumd(t, "copy", "-from", db, "-to", to); !strings.Contains(out, "20 records") {
		t.Errorf("the same copy with the room printed %q", out)
	}
}
