package main

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/mirror"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// storedMirrorConfig reads the configuration a mirror's database remembers.
func storedMirrorConfig(t *testing.T, db string) *mirror.Config {
	t.Helper()
	s, err := itlog.OpenBolt(db, itlog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := mirror.ReadConfig(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMirrorFailedRunSavesNothing: a sumd mirror run that fails keeps the
// options the database remembers. A mistyped -modules, -auth or -origin
// used to be saved before it was checked or used, so every later run (and
// sumd serve -mirror) failed with it, and a full mirror became partial for
// good. A run that succeeds saves its options.
func TestMirrorFailedRunSavesNothing(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 300)
	p := startServer(t, "-db", db, "-key", key)
	mdb := filepath.Join(dir, "m.db")
	if out := mirrorOf(t, mdb, p.url, vkey); !strings.Contains(out, "tree 300 (was 0)") {
		t.Fatalf("the first run printed %q", out)
	}
	want := storedMirrorConfig(t, mdb)
	for _, tc := range []struct {
		args []string
		hint string
	}{
		{[]string{"-modules", filepath.Join(dir, "typo.sum")}, "hint: check the go.sum files -modules names"},
		{[]string{"-modules", filepath.Join(dir, "typo.sum"), "-origin", "http://127.0.0.1:1"}, "hint: check the go.sum files -modules names"},
		{[]string{"-auth", "bearer:s3cretTOKENvalue"}, "hint: "},
		{[]string{"-origin", "http://127.0.0.1:1"}, "hint: check -origin"},
	} {
		_, errOut, err := sumdRun(t, append([]string{"mirror", "-mirror", mdb}, tc.args...)...)
		if err == nil || !strings.Contains(errOut, tc.hint) {
			t.Errorf("sumd mirror %q: %v\n%s\nwant it refused with %q", tc.args, err, errOut, tc.hint)
		}
		if got := storedMirrorConfig(t, mdb); !reflect.DeepEqual(got, want) {
			t.Errorf("after the failed sumd mirror %q the database remembers %+v, want %+v", tc.args, got, want)
		}
	}
	if out := sumd(t, "mirror", "-mirror", mdb); !strings.Contains(out, "tree 300 (was 300)") {
		t.Errorf("a later run with -mirror only printed %q", out)
	}
	sumd(t, "mirror", "-mirror", mdb, "-auth", "none")
	if got := storedMirrorConfig(t, mdb); got.Auth != "none" {
		t.Errorf("after a run with -auth none that succeeded, the database remembers auth %q", got.Auth)
	}
}
