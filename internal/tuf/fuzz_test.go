package tuf

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
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

// FuzzReadKeyFile: a role key file is refused, or gives an Ed25519 key
// that signs what its public key verifies.
func FuzzReadKeyFile(f *testing.F) {
	k, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	good := filepath.Join(dir, "good.key")
	if err := k.WriteFile(good); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n"))
	file := filepath.Join(dir, "fuzz.key") // a worker runs one input at a time
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := ReadKeyFile(file)
		if err != nil {
			return
		}
		if len(k.ID()) != 64 {
			t.Fatalf("ReadKeyFile(%q): key id %q", data, k.ID())
		}
	})
}

// FuzzTimestampFile writes whatever a writer of DIR/metadata without the
// keys might into timestamp.json: the server still re-signs, at a version
// between 1 and maxVersion that no file raised, and clients follow.
//
// The repository and its server are made once: Init, its keys and the
// server took 200-500 ms, and the target ran a few inputs a second. Each
// input starts from the metadata Init wrote, put back file by file (the
// handler holds metadata/ open); nothing else carries over, since Repo
// and Handler read the directory afresh each time and Fetch works in a
// new directory.
func FuzzTimestampFile(f *testing.F) {
	f.Add([]byte(nil))
	f.Add([]byte(`{"signed": {"_type": "timestamp", "version": 9223372036854775807}}`))
	f.Add([]byte(`{"signed": {"_type": "timestamp", "spec_version": "1.0.31", "version": -1, "expires": "2030-01-01T00:00:00Z",` +
		` "meta": {"snapshot.json": {"version": 999999999999999999}}}, "signatures": []}`))
	// Nothing here outlives the test: syncing each file written cost more
	// than the rest of an input.
	origFile, origDir := syncFile, syncDir
	f.Cleanup(func() { syncFile, syncDir = origFile, origDir })
	syncFile = func(*os.File) error { return nil }
	syncDir = func(string) error { return nil }
	fx := newFixture(f)
	initial := fx.metadataFiles()
	f.Fuzz(func(t *testing.T, data []byte) {
		fx.t = t // a worker runs one input at a time
		fx.restoreMetadata(initial)
		fx.writeFile(data, metadataDir, timestampFile)
		s, err := fx.repo.SignOnline([]string{fx.online}, fx.clock.Now())
		if err != nil {
			t.Fatalf("SignOnline after a timestamp.json of %q: %v", data, err)
		}
		if ts, snap := s.Status.Versions[metadata.TIMESTAMP], s.Status.Versions[metadata.SNAPSHOT]; ts < 1 || ts > fx.clock.Now().Unix() || snap < 1 || snap > fx.clock.Now().Unix() {
			t.Fatalf("after a timestamp.json of %q: timestamp version %d, snapshot %d", data, ts, snap)
		}
		fx.mustFetch("")
	})
}

// metadataFiles returns the contents of the files in metadata/ by name.
func (f *fixture) metadataFiles() map[string][]byte {
	f.t.Helper()
	entries, err := os.ReadDir(filepath.Join(f.dir, metadataDir))
	if err != nil {
		f.t.Fatal(err)
	}
	files := make(map[string][]byte, len(entries))
	for _, e := range entries {
		files[e.Name()] = f.readFile(metadataDir, e.Name())
	}
	return files
}

// restoreMetadata makes metadata/ hold exactly files again: files added
// since are removed and files changed are written back.
func (f *fixture) restoreMetadata(files map[string][]byte) {
	f.t.Helper()
	now := f.metadataFiles()
	for name := range now {
		if _, ok := files[name]; !ok {
			if err := os.Remove(filepath.Join(f.dir, metadataDir, name)); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	for name, data := range files {
		if got, ok := now[name]; !ok || !bytes.Equal(got, data) {
			f.writeFile(data, metadataDir, name)
		}
	}
}
