package oci

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSyncZipRemovedWhileHashing: a file-system failure while the zip
// layer is hashed (here the scratch file removed under sumd, as by a
// cleaner of the temporary directory; EIO alike) is sumd's failure, which
// says nothing of the module: a failure of the pass, not an invalid module.
func TestSyncZipRemovedWhileHashing(t *testing.T) {
	e := newSyncEnv(t, true)
	p := e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
	zip := "/blobs/" + manifestOf(t, p).Zip.Digest.String()
	tmp := t.TempDir()
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, zip) && r.Method == http.MethodGet {
			// The scratch file exists once its download starts: remove
			// it, and the download goes on into the unlinked file.
			names, _ := filepath.Glob(filepath.Join(tmp, "*"))
			if len(names) != 1 {
				t.Errorf("temporary directory holds %q, want the zip's scratch file", names)
			}
			for _, n := range names {
				os.Remove(n)
			}
		}
		return false
	})
	s, err := NewSyncer(Options{
		Sources: []*Source{e.src}, Keys: []*PublicKey{e.key.public(t)}, Log: e.log,
		Remote: testRemote, TempDir: tmp, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.wantOutcome(t, r, Failed)
	if len(r.Failures) != 1 || r.OK() || strings.Contains(e.logs.String(), "invalid module") {
		t.Errorf("report %+v, want the pass failed, not the module invalid:\n%s", r, e.logs)
	}
}
