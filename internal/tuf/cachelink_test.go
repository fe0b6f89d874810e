package tuf

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLinkedCachedRootWarns: a cached root.json that is a symbolic link is
// never followed (readers take regular files only); the client starts from
// its pin instead, and says so at Warn rather than silently.
func TestLinkedCachedRootWarns(t *testing.T) {
	f := newFixture(t, newVKey(t))
	cache := t.TempDir()
	meta := filepath.Join(cache, pinDir(f.root(1), f.url), metadataDir)
	os.MkdirAll(meta, 0o755)
	os.WriteFile(filepath.Join(meta, "real.json"), f.root(1), 0o644)
	if err := os.Symlink("real.json", filepath.Join(meta, "root.json")); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	_, err := Fetch(ClientOptions{Root: f.root(1), URL: f.url, CacheDir: cache, Now: f.clock.Now,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatalf("Fetch with a linked cached root: %v", err)
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "root.json") {
		t.Errorf("a linked cached root was ignored without a warning; log: %q", log.String())
	}
}

// TestDamagedCachedRootWarns: a cached root.json that is not root metadata
// (go-tuf writes it without syncing, so a crash can leave it empty) is
// ignored as a linked one is, the client starting from its pin and losing
// the protection the cached root gave against an old chain replayed: it
// says so at Warn rather than silently.
func TestDamagedCachedRootWarns(t *testing.T) {
	f := newFixture(t, newVKey(t))
	cache := t.TempDir()
	meta := filepath.Join(cache, pinDir(f.root(1), f.url), metadataDir)
	os.MkdirAll(meta, 0o755)
	os.WriteFile(filepath.Join(meta, "root.json"), nil, 0o644)
	var log bytes.Buffer
	_, err := Fetch(ClientOptions{Root: f.root(1), URL: f.url, CacheDir: cache, Now: f.clock.Now,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatalf("Fetch with a damaged cached root: %v", err)
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "root.json") {
		t.Errorf("a damaged cached root was ignored without a warning; log: %q", log.String())
	}
}

// TestDamagedCachedMetadataRecovers: a cached timestamp, snapshot or
// targets file that is not metadata of its role (left empty or cut short
// by a crash while an older sumd let go-tuf write it unsynced) made every
// later run fail with go-tuf's "unexpected end of JSON input", naming no
// file. It is ignored with a warning naming it, as a damaged root is, and
// replaced by the metadata the run verifies against the trusted root.
func TestDamagedCachedMetadataRecovers(t *testing.T) {
	f := newFixture(t, newVKey(t))
	fresh := t.TempDir()
	f.mustFetch(fresh)
	for _, name := range []string{"timestamp.json", "snapshot.json", "targets.json"} {
		want, err := os.ReadFile(filepath.Join(fresh, pinDir(f.root(1), f.url), metadataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, data := range []string{"", `{"signed":{"_type":"`} {
			cache := t.TempDir()
			f.mustFetch(cache)
			path := filepath.Join(cache, pinDir(f.root(1), f.url), metadataDir, name)
			os.WriteFile(path, []byte(data), 0o644)
			var log bytes.Buffer
			_, err := Fetch(ClientOptions{Root: f.root(1), URL: f.url, CacheDir: cache, Now: f.clock.Now,
				Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Errorf("Fetch with %s holding %q: %v", name, data, err)
				continue
			}
			if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), name) {
				t.Errorf("a damaged cached %s was ignored without a warning naming it; log: %q", name, log.String())
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
				t.Errorf("cached %s after the run = %q, want the verified one", name, got)
			}
		}
	}
}
