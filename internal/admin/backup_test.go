package admin

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

const testHash = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

// TestBackup downloads a backup through the API: it is a database that
// verifies in full and holds what the log held. A log whose store cannot
// copy itself, or a server without backups, answers 501; only GET and
// HEAD are allowed; a mirror-only server (no recorder) serves backups
// only.
func TestBackup(t *testing.T) {
	ctx := context.Background()
	s := newSetup(t, Options{})
	if _, err := s.log.Add(ctx, gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: testHash, GoMod: testHash}); err != nil {
		t.Fatal(err)
	}
	s.srv.Config.Handler = New(nil, Options{TokenFile: s.tokenFile, Logger: quiet, Snapshot: s.log.Snapshot})
	if _, err := s.client.Fetch(ctx, mv("example.com/m", "v1.0.0")); err == nil || !strings.Contains(err.Error(), "records nothing") {
		t.Errorf("fetch from a server without a recorder: %v, want 404", err)
	}
	var b bytes.Buffer
	n, err := s.client.Backup(ctx, &b)
	if err != nil || n != int64(b.Len()) || n == 0 {
		t.Fatalf("Backup = %d, %v", n, err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	bs, err := tlog.OpenBolt(path, tlog.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	want, _ := s.log.Tree(ctx)
	if _, tree, err := tlog.CheckStore(ctx, bs, nil); err != nil || tree != want {
		t.Errorf("the backup: tree %v, %v; want %v", tree, err, want)
	}

	skey, _, _ := tlog.GenerateKey("sumd.test")
	k, _ := tlog.ParseKey(skey)
	mem, err := tlog.OpenStore(tlog.NewMemStore(), tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for _, tc := range []struct {
		name   string
		h      http.Handler
		method string
		status int
		want   string
	}{
		{"no snapshots", New(nil, Options{TokenFile: s.tokenFile, Logger: quiet}), "GET", 501, "does not serve backups"},
		{"memory store", New(nil, Options{TokenFile: s.tokenFile, Logger: quiet, Snapshot: mem.Snapshot}), "GET", 501, "cannot write a snapshot of itself: back its database up with the database's own tools (PostgreSQL: pg_dump"},
		{"POST", New(nil, Options{TokenFile: s.tokenFile, Logger: quiet, Snapshot: s.log.Snapshot}), "POST", 405, "use GET"},
		{"HEAD", New(nil, Options{TokenFile: s.tokenFile, Logger: quiet, Snapshot: s.log.Snapshot}), "HEAD", 200, ""},
	} {
		req := httptest.NewRequest(tc.method, "/admin/backup", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		tc.h.ServeHTTP(rec, req)
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, rec.Code, rec.Body, tc.status, tc.want)
		}
	}
}

// TestBackupHeadSpoolsNothing: HEAD /admin/backup answers the headers
// without writing a snapshot (it spooled a whole one to disk and threw it
// away), and with no Content-Length, since no snapshot was measured.
func TestBackupHeadSpoolsNothing(t *testing.T) {
	s := newSetup(t, Options{})
	snapshots := 0
	h := New(nil, Options{TokenFile: s.tokenFile, Logger: quiet, Snapshot: func(ctx context.Context) (tlog.Snapshot, error) {
		snapshots++
		return s.log.Snapshot(ctx)
	}})
	req := httptest.NewRequest(http.MethodHead, "/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || snapshots != 0 || rec.Header().Get("Content-Length") != "" || rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Errorf("HEAD /admin/backup: %d, %d snapshots, Content-Length %q, Content-Type %q; want 200, none, no length, application/octet-stream",
			rec.Code, snapshots, rec.Header().Get("Content-Length"), rec.Header().Get("Content-Type"))
	}
}
