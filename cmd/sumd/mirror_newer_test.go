package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestMirrorNewerConfig: a mirror database whose configuration holds a
// field a newer sumd wrote is refused, naming the field and saying to run
// the newer sumd, rather than read without it (it may be what keeps the
// mirror private) or taken for the database of a log sumd signs.
func TestMirrorNewerConfig(t *testing.T) {
	db := filepath.Join(t.TempDir(), "m.db")
	s, err := itlog.OpenBolt(db, itlog.BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	conf := `{"url":"http://127.0.0.1:1","verifier_keys":["sum.example.com+00000000+AQ"],"serve_with":"-auth netrc"}`
	if err := s.SetAux(context.Background(), itlog.AuxMirrorConfig, []byte(conf)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, errOut, err := sumdRun(t, "mirror", "-mirror", db)
	if err == nil || !strings.Contains(errOut, `"serve_with"`) || !strings.Contains(errOut, "upgrade sumd") ||
		!strings.Contains(errOut, "hint: a newer sumd") {
		t.Fatalf("sumd mirror of a newer sumd's mirror: %v\n%s", err, errOut)
	}
}
