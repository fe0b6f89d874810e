package access

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/testlog"
)

// TestLogHandler: every record logged with a request's context names its
// credential and remote address once; other records are untouched.
func TestLogHandler(t *testing.T) {
	var buf testlog.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil))).With("component", "admin")
	ctx := withPrincipal(context.Background(), &Principal{Name: "ci", Role: Admin}, "10.0.0.7:4711")
	log.InfoContext(ctx, "admin: recorded", "id", 42)
	log.InfoContext(ctx, "http request", "remote", "10.0.0.7:4711")
	log.Info("no request")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for i, want := range []string{
		`msg="admin: recorded" component=admin id=42 credential=ci remote=10.0.0.7:4711`,
		`msg="http request" component=admin remote=10.0.0.7:4711 credential=ci`,
		`msg="no request" component=admin`,
	} {
		if i >= len(lines) || !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d: want ending %q, got:\n%s", i, want, buf.String())
		}
	}
}
