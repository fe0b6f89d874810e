package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbeddedDefault starts sumd serve with no options in an empty
// directory, as `make run` does: it generates keys/sumd.local.key, creates
// data/sumd.db and serves a signed empty tree. A second start reuses both:
// same verifier key, no new key.
func TestEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	s := startServerIn(t, dir)
	vkey, _, _ := strings.Cut(s.gosumdb, " ")
	if !strings.HasPrefix(vkey, "sumd.local+") {
		t.Fatalf("GOSUMDB = %q, want the sumd.local key", s.gosumdb)
	}
	fi, err := os.Stat(filepath.Join(dir, "keys", "sumd.local.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key: %v, mode %v; want mode 0600", err, fi.Mode())
	}
	if vk, _ := os.ReadFile(filepath.Join(dir, "keys", "sumd.local.vkey")); strings.TrimSpace(string(vk)) != vkey {
		t.Errorf("keys/sumd.local.vkey = %q, want %q", vk, vkey)
	}
	latest := get(t, s.url+"/latest")
	if !strings.HasPrefix(latest, "go.sum database tree\n0\n") || !strings.Contains(latest, "\n— sumd.local ") {
		t.Errorf("/latest of a new log = %q", latest)
	}
	s.stop()

	again := startServerIn(t, dir)
	if v, _, _ := strings.Cut(again.gosumdb, " "); v != vkey {
		t.Fatalf("second start serves key %q, want the first start's %q", v, vkey)
	}
	if strings.Contains(again.stderr.String(), "generated signing key") {
		t.Errorf("second start generated a key again:\n%s", again.stderr)
	}
	if got := get(t, again.url+"/latest"); got != latest {
		t.Errorf("second start serves head %q, want %q", got, latest)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
}
