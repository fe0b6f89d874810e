package tuf

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParsePath feeds request paths to ParsePath: whatever it accepts is
// the path itself, local, below metadata/ or targets/sumdb/, and never a
// hidden file (keys, the lock, temporary files).
func FuzzParsePath(f *testing.F) {
	for _, p := range []string{
		"metadata/timestamp.json", "metadata/1.root.json", "metadata/12.snapshot.json", "metadata/3.targets.json",
		"targets/sumdb/" + strings.Repeat("ab", 32) + ".sum.example.com.vkey", "metadata/0.root.json",
		"metadata/../keys/timestamp-1.key", "targets/sumdb/x/../../keys", "keys/root-1.key", ".lock", "metadata/.tmp-1",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		file, ok := ParsePath(p)
		if !ok {
			return
		}
		switch {
		case file.Path != p:
			t.Fatalf("ParsePath(%q) serves %q", p, file.Path)
		case !filepath.IsLocal(p) || filepath.Clean(p) != p:
			t.Fatalf("ParsePath accepted non-local %q", p)
		case !strings.HasPrefix(p, "metadata/") && !strings.HasPrefix(p, "targets/sumdb/"):
			t.Fatalf("ParsePath accepted %q outside metadata/ and targets/sumdb/", p)
		case strings.Contains(p, "/.") || strings.ContainsAny(p, "\\%\x00"):
			t.Fatalf("ParsePath accepted %q", p)
		case strings.Count(p, "/") != 1 && !strings.HasPrefix(p, "targets/sumdb/"):
			t.Fatalf("ParsePath accepted nested metadata %q", p)
		}
	})
}

// FuzzParseDatabase feeds target contents to ParseDatabase: an accepted
// database is fit to publish and publishes the same bytes back.
func FuzzParseDatabase(f *testing.F) {
	d := mustDatabase(f, newVKey(f), newVKey(f))
	files, err := d.targets()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(files[VKeyTarget(d.Name)], files[JSONTarget(d.Name)])
	f.Add([]byte("x\n"), []byte(`{"name":"x","verifier_keys":["x"],"tile_height":8}`))
	f.Add([]byte("\n"), []byte(`{}`))
	f.Fuzz(func(t *testing.T, vkeyFile, jsonFile []byte) {
		d, err := ParseDatabase(vkeyFile, jsonFile)
		if err != nil {
			return
		}
		if err := d.check(); err != nil {
			t.Fatalf("ParseDatabase accepted %+v: %v", d, err)
		}
		files, err := d.targets()
		if err != nil {
			t.Fatal(err)
		}
		if got := files[VKeyTarget(d.Name)]; string(got) != string(vkeyFile) {
			t.Fatalf("vkey file %q re-encodes as %q", vkeyFile, got)
		}
		if !slices.Equal(d.VerifierKeys, strings.Fields(string(vkeyFile))) {
			t.Fatalf("keys %q from %q", d.VerifierKeys, vkeyFile)
		}
	})
}
