package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreOverDamagedDatabase: sumd restore over a database it cannot
// open (damaged: the case restore is for) failed with the open's error
// alone, whose own advice is to restore it from a mirror: the operator was
// sent round in a circle. It is refused, the file left as it was, with a
// hint to move it aside; restore then rebuilds the database.
func TestRestoreOverDamagedDatabase(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 20)
	p := startServer(t, "-db", db, "-key", key)
	m := filepath.Join(dir, "mirror.db")
	mirrorOf(t, m, p.url, vkey)
	p.stop()
	for _, damage := range []struct {
		name string
		data func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:8192] }},
		{"overwritten", func(b []byte) []byte { return bytes.Repeat([]byte("x"), len(b)) }},
	} {
		data, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		damaged := writeFile(t, filepath.Join(dir, damage.name+".db"), damage.data(data))
		before, _ := os.ReadFile(damaged)
		_, errOut, err := sumdRun(t, "restore", "-db", damaged, "-key", key, "-from", m)
		if err == nil || !strings.Contains(errOut, "hint: ") || !strings.Contains(errOut, "move it aside") {
			t.Errorf("restore over a %s database: %v\n%s\nwant a refusal with a hint to move it aside", damage.name, err, errOut)
		}
		if after, _ := os.ReadFile(damaged); !bytes.Equal(after, before) {
			t.Errorf("the refused restore over a %s database changed it", damage.name)
		}
		if err := os.Rename(damaged, damaged+".damaged"); err != nil {
			t.Fatal(err)
		}
		if out := sumd(t, "restore", "-db", damaged, "-key", key, "-from", m); !strings.Contains(out, "tree 20 (was 0)") {
			t.Errorf("restore once the %s database was moved aside printed %q", damage.name, out)
		}
	}
}
