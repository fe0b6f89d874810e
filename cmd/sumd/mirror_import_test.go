package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportRefusedLeavesNoFile: sumd mirror import of another log's
// bundle into a new mirror without -origin-key is refused before the
// mirror's file is made (it used to leave a new, empty one behind), and a
// bundle that does not exist is named with a hint to check it.
func TestImportRefusedLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 20)
	p := startServer(t, "-db", db, "-key", key)
	outside := filepath.Join(dir, "outside.db")
	mirrorOf(t, outside, p.url, vkey)
	p.stop()
	bundle := filepath.Join(dir, "all.bundle")
	sumd(t, "mirror", "export", "-mirror", outside, "-o", bundle)

	inside := filepath.Join(dir, "inside.db")
	_, errOut, err := sumdRun(t, "mirror", "import", "-mirror", inside, bundle)
	if err == nil || !strings.Contains(errOut, "hint: give -origin-key VKEY") {
		t.Errorf("import of another log's bundle without -origin-key: %v\n%s", err, errOut)
	}
	if _, err := os.Stat(inside); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused import left %s: %v", inside, err)
	}
	missing := filepath.Join(dir, "nonexist.bundle")
	_, errOut, err = sumdRun(t, "mirror", "import", "-mirror", inside, "-origin-key", vkey, missing)
	if err == nil || !strings.Contains(errOut, "hint: check the bundle's name: "+missing) {
		t.Errorf("import of a bundle that does not exist: %v\n%s", err, errOut)
	}
	if _, err := os.Stat(inside); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the import of a missing bundle left %s: %v", inside, err)
	}
	if out := sumd(t, "mirror", "import", "-mirror", inside, "-origin-key", vkey, bundle); !strings.Contains(out, "tree 20 (was 0)") {
		t.Errorf("import with -origin-key printed %q", out)
	}
}
