package serve

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/tlog"
)

// routes composes the HTTP surface: the checksum database protocol (with
// /healthz and /metrics) and, if configured, /admin/ and /tuf/. Every
// route of the server goes through here, so that one access layer can be
// put in front of them all.
func routes(l *tlog.Log, ops sumdb.ServerOps, adm http.Handler, t *tufPart, reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	var h http.Handler = server.New(l.Name(), ops, server.Options{
		Logger:   logger,
		Registry: reg,
		Ready:    func(ctx context.Context) error { _, err := l.Signed(ctx); return err },
	})
	if adm != nil {
		// The admin API takes request bodies (uploads), which the protocol
		// handler caps at 1 KiB: it must be routed before it.
		mux := http.NewServeMux()
		mux.Handle("/admin/", adm)
		mux.Handle("/", h)
		h = mux
	}
	return t.mount(h)
}
