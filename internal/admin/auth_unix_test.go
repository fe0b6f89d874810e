//go:build unix

package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/testlog"
)

// TestTokenFileMode: a token file other users may access disables the API
// until it is chmod 600 again; the change of mode alone is noticed.
func TestTokenFileMode(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	c := newFakeSetup(t, &fakeRecorder{err: errors.New("recorder reached")})
	tokenFile := c.tokenFile
	if err := os.Chmod(tokenFile, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := c.Fetch(context.Background(), m)
	wantStatus(t, err, http.StatusNotFound, "the admin API is not enabled on this server")
	os.Chmod(tokenFile, 0o600)
	_, err = c.Fetch(context.Background(), m)
	wantStatus(t, err, http.StatusInternalServerError, "internal error") // past authentication
	os.Chmod(tokenFile, 0o640)
	_, err = c.Fetch(context.Background(), m)
	wantStatus(t, err, http.StatusNotFound, "the admin API is not enabled on this server")

	if _, err := ReadTokenFile(tokenFile); err == nil || !strings.Contains(err.Error(), "accessible by other users (mode -rw-r-----)") {
		t.Errorf("ReadTokenFile of a 0640 file: %v", err)
	}
	var logs testlog.Buffer
	New(&fakeRecorder{}, Options{TokenFile: tokenFile, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "admin API disabled") || !strings.Contains(logs.String(), "accessible by other users") {
		t.Errorf("New with a 0640 token file logged:\n%s", logs.String())
	}
}
