//go:build unix

package tlscert

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sumd-project/sumd/internal/secret"
	"github.com/sumd-project/sumd/internal/testcert"
	"log/slog"
)

// TestKeyFileMode checks that a TLS private key other users may read is
// refused, as sumd's other secrets are.
func TestKeyFileMode(t *testing.T) {
	ca := testcert.New(t)
	srv := ca.Server(t)
	key := filepath.Join(t.TempDir(), "tls.key")
	data, err := os.ReadFile(srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(key, data, 0o600)
	os.Chmod(key, 0o644)
	var me *secret.ModeError
	if _, err := New(srv.CertFile, key, slog.New(slog.DiscardHandler)); !errors.As(err, &me) {
		t.Errorf("New with a 0644 key: %v; want a *secret.ModeError", err)
	}
}
