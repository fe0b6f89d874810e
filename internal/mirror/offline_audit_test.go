package mirror

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/sumd-project/sumd/internal/audit"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestOfflineMirrorAudit audits a go.sum file against a mirror that cannot
// reach its origin, for a version only the origin holds: the mirror's
// offline 404 (sumdbclient.OfflineText) is an outage the audit cannot see
// past, not a finding. It was a gosum-missing problem (exit status 1).
func TestOfflineMirrorAudit(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, _ := newMirror(t, o)
	if _, err := newFollower(t, o, m, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	o.grow(300, 10) // the origin holds 300..309; the mirror does not yet
	off := newFollower(t, o, m, func(opts *Options) { opts.Client = nil })
	srv := httptest.NewServer(server.New(testName, off.Ops(), server.Options{Logger: quiet}))
	defer srv.Close()
	r := testRecord(305, 1)
	gosum := filepath.Join(t.TempDir(), "go.sum")
	if err := os.WriteFile(gosum, r.Text(), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Run(ctx, audit.Options{URL: srv.URL, VerifierKey: o.key.VerifierKey(), GoSum: []string{gosum}})
	if !errors.Is(err, sumdbclient.ErrOffline) || len(rep.Problems) != 0 {
		t.Errorf("audit through an offline mirror: %v, %d problems (%+v); want an outage (sumdbclient.ErrOffline) and no problem", err, len(rep.Problems), rep.Problems)
	}
}
