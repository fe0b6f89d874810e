package serve

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/mirror"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/tlog"
)

// A surface is what each listener serves. Every handler is behind the one
// access layer, so no route is reached without its role.
type surface struct {
	main    http.Handler // the protocol, the status, /tuf/, and /admin/ and /metrics unless elsewhere
	admin   http.Handler // /admin/ alone, for -admin-listen; nil if on main
	metrics http.Handler // /metrics alone, for -metrics-listen; nil if on main
	read    *readSurface // the protocol alone, for -read-listen; nil without it
}

// routes composes the HTTP surface: the checksum database protocol (with
// /healthz and /metrics), the status (/status, and the page at /), each
// mirror at /sumdb/<origin name>/ and, if configured, /admin/ and /tuf/. The admin API and the metrics move to
// listeners of their own when cfg names them.
func routes(cfg *Config, l *tlog.Log, ops sumdb.ServerOps, adm http.Handler, t *tufPart, status *board, mirrors []*mirror.Follower, layer *access.Layer) surface {
	pg := &page{log: l, status: status, logger: cfg.Logger, publicURL: cfg.PublicURL}
	cache := cfg.CacheBytes
	if cache == 0 {
		cache = -1 // server.Options: 0 is the default size, negative none
	}
	root := server.New(l.Name(), ops, server.Options{
		Logger:           cfg.Logger,
		Registry:         cfg.Registry,
		MetricsElsewhere: cfg.MetricsListen != "",
		CacheBytes:       cache,
		Private:          layer.Required(),
		Ready:            logReady(l),
		Degraded:         status.degraded,
		Pages: map[string]http.Handler{
			"/":       http.HandlerFunc(pg.home),
			"/module": http.HandlerFunc(pg.module),
			"/record": http.HandlerFunc(pg.record),
			"/status": http.HandlerFunc(status.serveStatus),
		},
		Mounts:  t.mounts(layer.Required()),
		Version: cfg.Version,
	})
	mirrorOpts := server.Options{Logger: cfg.Logger, Registry: cfg.Registry, CacheBytes: cache, Private: layer.Required()}
	ms := map[string]*server.Server{}
	for _, f := range mirrors {
		ms[f.Name()] = server.New(f.Name(), f.Ops(), mirrorOpts)
	}
	dbs := newDatabases(root, l.Name(), ms)
	var h http.Handler = dbs
	var s surface
	if cfg.ReadListen != "" {
		// The read listener shares the servers, and so their caches.
		s.read = &readSurface{layer: layer, dbs: dbs}
	}
	mainLayer := layer
	switch {
	case adm != nil && cfg.AdminListen != "":
		s.admin = layer.Wrap(only("/admin/", adm))
		mainLayer = layer.WithoutAdmin()
		// A ServeMux in front all the same: it answers a path not in
		// clean form with a 307 to the clean one, on every configuration
		// and as the read listener does (read.go).
		mux := http.NewServeMux()
		mux.Handle("/", h)
		h = mux
	default:
		// The admin API takes request bodies (uploads), which the protocol
		// handler caps at 1 KiB: it must be routed before it. Without the
		// API, the protocol handler would answer an admin request as a
		// malformed protocol one (405 to a POST): say it is off instead.
		if adm == nil {
			adm = admin.NotEnabled
		}
		mux := http.NewServeMux()
		mux.Handle("/admin/", adm)
		mux.Handle("/", h)
		h = mux
	}
	if cfg.MetricsListen != "" {
		s.metrics = layer.WithoutAdmin().Wrap(only("/metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	}
	s.main = mainLayer.Wrap(h)
	return s
}

// only serves h at pattern and a 404 everywhere else: a listener of its
// own for one API. The 404 is no-store, as the main listener's errors are:
// a cache must not keep it past a configuration that serves the path.
func only(pattern string, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(pattern, h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("not found: this listener serves " + pattern + " only\n"))
	})
	return mux
}

// newAccess builds the access layer of cfg for the databases served (the
// root one first, then the mirrors'); its problems go into the status as
// the part "access".
func newAccess(cfg *Config, databases []string, adminAPI bool) (*access.Layer, Part, error) {
	ac := cfg.Access
	ac.Databases = databases
	ac.AdminAPI = adminAPI
	ac.Logger, ac.Registry = cfg.Logger, registerer(cfg.Registry)
	layer, err := access.New(ac)
	if err != nil {
		return nil, Part{}, accessError(err)
	}
	cfg.Logger.Info("access", "authentication", layer.Describe(), "admin_api", layer.DescribeAdmin())
	return layer, Part{
		Name: "access",
		Run: func(ctx context.Context) error {
			t := time.NewTicker(accessRefresh)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					layer.Refresh()
				}
			}
		},
		Report: func(s *Status) {
			for _, p := range layer.Problems() {
				s.problem("access", "%s", p)
			}
		},
	}, nil
}

// accessError adds to err, a credential file that cannot be used, what to
// do, unless it says so already.
func accessError(err error) error {
	var hinted interface{ Hint() string }
	if !errors.As(err, &hinted) {
		err = withHint(err, "fix the credential files named above (formats: docs/access.md), or start without -read-auth, -tls-client-roles and -admin-token-file")
	}
	return err
}

// accessRefresh is how often the credential files are checked for changes
// when no request has: the status then shows a broken file within it.
var accessRefresh = 5 * time.Second

// registerer avoids a typed nil: a nil *Registry is not a nil Registerer.
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

// errLogStopped is /healthz's reason once the log's sequencer has stopped
// (its own error, which may name files, is in the server log).
var errLogStopped = errors.New("the log's sequencer stopped (see the server log); the server is stopping")

// logReady is /healthz's readiness check of l: it has a signed head, and
// its sequencer has not stopped. A stopped sequencer still answers Signed,
// and status.degraded leaves the "log" part to this check, so without the
// second half /healthz said "ok" while /status said unavailable.
func logReady(l *tlog.Log) func(context.Context) error {
	return func(ctx context.Context) error {
		if l.Err() != nil {
			return errLogStopped
		}
		_, err := l.Signed(ctx)
		if errors.Is(err, fs.ErrNotExist) && !mayReadStatus(ctx) {
			// A mirror with no head yet: its error names the mirrored
			// database, which degraded hides from such a client too.
			return errNoHead
		}
		return err
	}
}

// errNoHead is /healthz's reason, to a client that may not read the
// status, for a mirror that holds no signed head yet (tlog's own error,
// given to auditors, names the mirrored database).
var errNoHead = errors.New("the mirror holds no signed head yet: it has not followed its origin, or imported a bundle, since it was created")
