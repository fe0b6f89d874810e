package config

import (
	"strings"
	"testing"
)

// TestMirrorOptions checks the mirror, backup and restore commands' and
// sumd serve's mirror options: defaults, and the problems Validate names.
func TestMirrorOptions(t *testing.T) {
	c, _, err := LoadMirror([]string{"-mirror", "m.db", "-modules", "go.sum, golang.org/x/*"}, nil, nil)
	if err != nil || c.Step != 1<<14 || c.Parallel != 8 || strings.Join(c.ModuleList(), "|") != "go.sum|golang.org/x/*" {
		t.Errorf("LoadMirror = %+v, %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		load func([]string) error
		want string
	}{
		{[]string{}, loadMirror, "mirror is empty"},
		{[]string{"-mirror", "m.db", "-step", "10"}, loadMirror, "invalid step 10"},
		{[]string{"-mirror", "m.db", "-origin", "ftp://x"}, loadMirror, "want http:// or https://"},
		{[]string{"-mirror", "m.db"}, loadExport, "o is empty"},
		{[]string{"-o", "x"}, loadBackup, "nothing to copy"},
		{[]string{"-o", "x", "-db", "a", "-server", "http://x"}, loadBackup, "give one"},
		{[]string{"-key", "k"}, loadRestore, "from is empty"},
		{[]string{"-mirror-only"}, loadServe, "mirror-only needs -mirror"},
		{[]string{"-mirror", "m.db", "-mirror-interval", "10ms"}, loadServe, "invalid mirror-interval"},
	} {
		if err := tc.load(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	// A mirror-only server needs no database or key.
	s, _, err := LoadServe([]string{"-mirror-only", "-mirror", "m.db", "-key", ""}, nil, nil)
	if err != nil || !s.MirrorOnly || s.MirrorList()[0] != "m.db" {
		t.Errorf("LoadServe -mirror-only = %+v, %v", s, err)
	}
}

func loadMirror(args []string) error  { _, _, err := LoadMirror(args, nil, nil); return err }
func loadExport(args []string) error  { _, _, err := LoadMirrorExport(args, nil, nil); return err }
func loadBackup(args []string) error  { _, _, err := LoadBackup(args, nil, nil); return err }
func loadRestore(args []string) error { _, _, err := LoadRestore(args, nil, nil); return err }
func loadServe(args []string) error   { _, _, err := LoadServe(args, nil, nil); return err }

// TestRestoreHelpSaysFile: sumd restore writes a bbolt file and refuses a
// PostgreSQL URL, so its -h offers -db FILE, not the shared FILE|URL and
// its PostgreSQL wording, and a -min-free-disk that stops the restore, not
// a server's writes; the other commands keep those.
func TestRestoreHelpSaysFile(t *testing.T) {
	var out strings.Builder
	LoadRestore([]string{"-h"}, nil, &out)
	if s := out.String(); !strings.Contains(s, "  -db FILE (env SUMD_DB") || strings.Contains(s, "FILE|URL") ||
		strings.Contains(s, "postgres://") || !strings.Contains(s, "bbolt") || strings.Contains(s, "PostgreSQL it") ||
		strings.Contains(s, "503") || !strings.Contains(s, "stops the restore") {
		t.Errorf("restore -h:\n%s\nwant -db FILE, a bbolt file, and no PostgreSQL URL", s)
	}
	out.Reset()
	LoadServe([]string{"-h"}, nil, &out)
	if s := out.String(); !strings.Contains(s, "  -db FILE|URL (env SUMD_DB") {
		t.Errorf("serve -h:\n%s\nwant -db FILE|URL", s)
	}
}
