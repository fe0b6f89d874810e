package serve

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/tlog"
)

// routes composes the HTTP surface: the checksum database protocol (with
// /healthz and /metrics), the status (/status, and the page at /) and, if
// configured, /admin/ and /tuf/. Every route of the server goes through
// here, so that one access layer can be put in front of them all.
func routes(l *tlog.Log, ops sumdb.ServerOps, adm http.Handler, t *tufPart, status *board, reg *prometheus.Registry, version string, logger *slog.Logger) http.Handler {
	pg := &page{log: l, status: status, logger: logger}
	var h http.Handler = server.New(l.Name(), ops, server.Options{
		Logger:   logger,
		Registry: reg,
		Ready:    func(ctx context.Context) error { _, err := l.Signed(ctx); return err },
		Degraded: status.degraded,
		Pages: map[string]http.Handler{
			"/":       http.HandlerFunc(pg.home),
			"/module": http.HandlerFunc(pg.module),
			"/record": http.HandlerFunc(pg.record),
			"/status": http.HandlerFunc(status.serveStatus),
		},
		Version: version,
	})
	if adm != nil {
		// The admin API takes request bodies (uploads), which the protocol
		// handler caps at 1 KiB: it must be routed before it.
		mux := http.NewServeMux()
		mux.Handle("/admin/", countAdmin(adm, reg))
		mux.Handle("/", h)
		h = mux
	}
	return t.mount(h)
}

// countAdmin counts the admin API's requests by route and status code in
// sumd_admin_requests_total, which the status shows.
func countAdmin(adm http.Handler, reg prometheus.Registerer) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sumd", Subsystem: "admin", Name: "requests_total",
		Help: "Requests to the /admin/ API, by route (fetch, upload, other) and status code.",
	}, []string{"route", "code"})
	reg.MustRegister(requests)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := "other"
		switch r.URL.Path {
		case "/admin/fetch":
			route = "fetch"
		case "/admin/upload":
			route = "upload"
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		adm.ServeHTTP(sw, r)
		requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	})
}

// statusWriter remembers the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (the admin API
// extends an upload's deadlines through it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
