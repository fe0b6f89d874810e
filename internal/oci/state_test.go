package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.oci-sync.json")
	s, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("Save of an unchanged state wrote the file: %v", err)
	}
	s.remember("r.example/gomod/example.com/m", "v1.0.0", "sha256:aa", "example.com/m@v1.0.0")
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	s, err = LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if mv, ok := s.recorded("r.example/gomod/example.com/m", "v1.0.0", "sha256:aa"); !ok || mv != "example.com/m@v1.0.0" {
		t.Errorf("recorded = %q, %v after reload", mv, ok)
	}
	if _, ok := s.recorded("r.example/gomod/example.com/m", "v1.0.0", "sha256:bb"); ok {
		t.Error("a tag moved to another digest counts as recorded")
	}
	s.forget("r.example/gomod/example.com/m", "v1.0.0")
	if _, ok := s.recorded("r.example/gomod/example.com/m", "v1.0.0", "sha256:aa"); ok || !s.dirty {
		t.Error("forget kept the entry")
	}
	leftovers, _ := filepath.Glob(path + ".tmp-*")
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestStateDamaged(t *testing.T) {
	for _, data := range []string{"{", `{"version":2,"repositories":{}}`} {
		path := filepath.Join(t.TempDir(), "state.json")
		writeTestFile(t, path, []byte(data))
		if _, err := LoadState(path); err == nil || !strings.Contains(err.Error(), "delete it") {
			t.Errorf("LoadState(%q) = %v, want an error saying the file may be deleted", data, err)
		}
	}
}
