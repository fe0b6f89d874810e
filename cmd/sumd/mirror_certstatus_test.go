package main

import (
	"context"
	"crypto/x509/pkix"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/mirror"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/testcert"
)

// TestServeMirrorClientCertProblems: the client certificate a mirror of
// sumd serve -mirror presents to its origin expired, and the mirror only
// failed to follow it; its expiry is a problem of that mirror, in a
// client certificate's words, naming no file (anonymous clients read
// /healthz); its expiry is exported for an alert.
func TestServeMirrorClientCertProblems(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	mdb := filepath.Join(dir, "sgo.db")
	l, _, err := openMirror(mdb, "", nil, true, -1, "", logger)
	if err != nil {
		t.Fatal(err)
	}
	expired := testcert.New(t).Client(t, "replica", pkix.Name{CommonName: "replica.corp.example"}, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	mc := &mirror.Config{URL: sumdbclient.SumGolangOrgURL, VerifierKeys: l.VerifierKeys(), Auth: "none", ClientCert: expired.CertFile, ClientKey: expired.KeyFile}
	if err := mirror.WriteConfig(context.Background(), l, mc); err != nil {
		t.Fatal(err)
	}
	l.Close()
	cfg := &config.Serve{}
	cfg.Mirrors = mdb
	m := serveMirrors(cfg, nil, logger)[0]
	f, _, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Log().Close()
	var p []string
	if m.Problems != nil {
		p = m.Problems()
	}
	if len(p) != 1 || !strings.HasPrefix(p[0], "the client certificate expired at ") || strings.Contains(p[0], "clients refuse") ||
		strings.Contains(p[0], expired.CertFile) || strings.Contains(p[0], filepath.Base(expired.CertFile)) {
		t.Errorf("the mirror's problems %q, want its client certificate expired, naming no file", p)
	}
	if m.ClientCertExpiry == nil || !m.ClientCertExpiry().Equal(expired.Pair.Leaf.NotAfter) {
		t.Errorf("the mirror exports no expiry of its client certificate, or not %v", expired.Pair.Leaf.NotAfter)
	}
}
