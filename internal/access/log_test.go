package access

import (
	"context"
	"log/slog"
	"net"
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

// TestAnonymousAt: a read listener's context makes log lines name the
// anonymous credential and the client's address, as the layer's does,
// and keeps the values of the context it wraps.
func TestAnonymousAt(t *testing.T) {
	var buf testlog.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil)))
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "kept")
	ctx := AnonymousAt(parent, &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 4711})
	log.InfoContext(ctx, "upstream: recorded", "id", 42)
	if want := `msg="upstream: recorded" id=42 credential=anonymous remote=10.0.0.7:4711`; !strings.HasSuffix(strings.TrimSpace(buf.String()), want) {
		t.Errorf("log line %q, want ending %q", buf.String(), want)
	}
	if p, ok := FromContext(ctx); !ok || p != anonymous {
		t.Errorf("FromContext = %v, %v; want the anonymous principal", p, ok)
	}
	if ctx.Value(key{}) != "kept" {
		t.Error("AnonymousAt lost its parent's values")
	}
	if got := Remote(ctx); got != "10.0.0.7:4711" {
		t.Errorf("Remote = %q, want 10.0.0.7:4711", got)
	}
	if got := Remote(parent); got != "" {
		t.Errorf("Remote of no request's context = %q, want \"\"", got)
	}
}
