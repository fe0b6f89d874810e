package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestMirrorBackupTmpDir: a mirror-only server spools backups in its
// -tmp-dir, prepared as any server's (created 0700, locked), not in the
// system's shared temporary directory: with -tmp-dir made unusable after
// start, a backup fails rather than going elsewhere.
func TestMirrorBackupTmpDir(t *testing.T) {
	dir := t.TempDir()
	skey, _, err := itlog.GenerateKey(e2eName)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := itlog.ParseKey(skey)
	l, err := itlog.Open(filepath.Join(dir, "mirror.db"), itlog.Options{Keys: []*itlog.Key{key}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := &config.Serve{TmpDir: filepath.Join(dir, "tmp")}
	cfg.AdminTokenFile = filepath.Join(dir, "admin.token")
	_, h, err := mirrorSurface(cfg, l, slog.New(slog.DiscardHandler))
	if err != nil || h == nil {
		t.Fatalf("mirrorSurface: %v, %v", h, err)
	}
	if fi, err := os.Stat(cfg.TmpDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("-tmp-dir after start: %v, %v; want a directory of mode 0700", fi, err)
	}
	backup := func() int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/admin/backup", nil))
		return w.Code
	}
	if code := backup(); code != http.StatusOK {
		t.Fatalf("backup: %d", code)
	}
	os.RemoveAll(cfg.TmpDir)
	os.WriteFile(cfg.TmpDir, nil, 0o600) // not a directory: nothing can be spooled there
	if code := backup(); code != http.StatusInternalServerError {
		t.Errorf("backup with -tmp-dir unusable: %d, want 500 (spooled elsewhere?)", code)
	}
}
