package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the HTTP metrics of a Server. Labels come from fixed sets:
// route is one of allRoutes or a mount's (Options.Mounts), and code one of
// the statuses the handler writes.
type metrics struct {
	requests *prometheus.CounterVec   // sumd_http_requests_total{route,code}
	duration *prometheus.HistogramVec // sumd_http_request_duration_seconds{route}
	handler  http.Handler             // serves /metrics
	reg      *prometheus.Registry

	// The series of every route's successes and durations, resolved once:
	// looking a series up by its labels costs more than a tile from cache.
	ok   map[string]prometheus.Counter  // by route, code 200
	took map[string]prometheus.Observer // by route

	hits, misses map[string]prometheus.Counter // of the cache, by cached route
}

// newMetrics registers the HTTP metrics on reg, or returns nil if reg is nil.
func newMetrics(reg *prometheus.Registry) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests served, by route and status code.",
		}, []string{"route", "code"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "sumd", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to serve HTTP requests, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"})),
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		reg:     reg,
		ok:      map[string]prometheus.Counter{},
		took:    map[string]prometheus.Observer{},
	}
	for _, route := range allRoutes {
		m.took[route] = m.duration.WithLabelValues(route) // exported from the start
		m.ok[route] = m.requests.WithLabelValues(route, "200")
	}
	hits := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sumd", Subsystem: "http", Name: "cache_hits_total",
		Help: "Requests answered from memory: full tiles, and the records of lookups (the signed tree head is read each time).",
	}, []string{"route"}))
	misses := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sumd", Subsystem: "http", Name: "cache_misses_total",
		Help: "Requests of the cached routes read from the log: partial tiles, versions not seen or evicted, versions not found.",
	}, []string{"route"}))
	m.hits, m.misses = map[string]prometheus.Counter{}, map[string]prometheus.Counter{}
	for _, route := range []string{routeTile, routeDataTile, routeLookup} {
		m.hits[route], m.misses[route] = hits.WithLabelValues(route), misses.WithLabelValues(route)
	}
	return m
}

// addRoute adds a route to those of allRoutes (a mount's), if there are
// metrics.
func (m *metrics) addRoute(route string) {
	if m != nil {
		m.took[route] = m.duration.WithLabelValues(route)
		m.ok[route] = m.requests.WithLabelValues(route, "200")
	}
}

// count counts one request of route answered with status, taking d.
func (m *metrics) count(route string, status int, d time.Duration) {
	if c := m.ok[route]; c != nil && status == http.StatusOK {
		c.Inc()
	} else {
		m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	}
	m.took[route].Observe(d.Seconds())
}

// watchCache exports the size of the response cache of the database name
// serves, if there are metrics and a cache: each Server on one registry (a
// log and its mirrors) has a cache of its own, and a series of its own. A
// second Server of the same name on the registry (serve makes none: its
// root Server answers /sumdb/<name>/ too) would not be exported.
func (m *metrics) watchCache(c *cache, files *bodyFiles, name string) {
	if m == nil || c == nil {
		return
	}
	gs := []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "sumd", Subsystem: "http", Name: "cache_bytes",
		Help:        "Bytes of answers that never change (full tiles, found records) held in memory, each database's bounded by -cache-size.",
		ConstLabels: prometheus.Labels{"database": name},
	}, func() float64 { b, _ := c.stats(); return float64(b) })}
	if files != nil {
		gs = append(gs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "sumd", Subsystem: "http", Name: "sendfile_bytes",
			Help:        "Bytes of full data tiles copied into memory files for a read listener to send with sendfile (Linux, plain TCP; 0 without a read listener), each database's at most twice -cache-size: the current file and the one it replaced while answers still send from it.",
			ConstLabels: prometheus.Labels{"database": name},
		}, func() float64 { return float64(files.bytes()) }))
	}
	for _, g := range gs {
		var are prometheus.AlreadyRegisteredError
		if err := m.reg.Register(g); err != nil && !errors.As(err, &are) {
			panic(fmt.Sprintf("server: failed to register metrics: %v", err))
		}
	}
}

// cacheHit and cacheMiss count the requests of a cached route (tile,
// data_tile, lookup) answered from the cache, and the others.
func (m *metrics) cacheHit(route string) {
	if m != nil {
		m.hits[route].Inc()
	}
}

func (m *metrics) cacheMiss(route string) {
	if m != nil {
		m.misses[route].Inc()
	}
}

// register registers c on reg, or returns the identical collector already
// there, so that several Servers can share one registry. Any other failure
// is a programming error, as with MustRegister.
func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(fmt.Sprintf("server: failed to register metrics: %v", err))
}

// A recorder is the ResponseWriter handlers see: it remembers the status,
// the body size and, for 500s, the internal error to log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    error
}

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe counts the request and logs it.
func (s *Server) observe(r *http.Request, w *recorder, route string, d time.Duration) {
	if w.status == 0 {
		w.status = http.StatusOK // the handler wrote nothing
	}
	if s.metrics != nil {
		s.metrics.count(route, w.status, d)
	}
	s.logRequest(r, w, route, d)
}

// logRequest writes the one log record of a request.
func (s *Server) logRequest(r *http.Request, w *recorder, route string, d time.Duration) {
	s.logLine(r.Context(), route, w.status, w.bytes, w.err, d, func() (string, string, string) {
		return r.Method, r.URL.Path, r.RemoteAddr
	})
}

// logLine writes the one log record of a request to route that was
// answered with status, bytes of body and, for a 500, the internal err.
// req gives the request's method, path and client address, read only if
// the record is logged.
func (s *Server) logLine(ctx context.Context, route string, status int, bytes int64, err error, d time.Duration, req func() (method, path, remote string)) {
	level := logLevel(route, status)
	if !s.log.Enabled(ctx, level) {
		return
	}
	method, path, remote := req()
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("path", oneLine(path)),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Duration("duration", d),
		slog.String("remote", remote),
	}
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
	}
	s.log.LogAttrs(ctx, level, "http request", attrs...)
}

// logLevel keeps the log useful: server errors at Error (but a /healthz 503
// is the health check doing its job); client errors, lookups and GOPROXY
// probes at Info; the high-volume successes (tiles,
// /latest polling, health checks and scrapes) at Debug.
func logLevel(route string, status int) slog.Level {
	switch {
	case status >= 500 && route != routeHealthz:
		return slog.LevelError
	case status >= 400, route == routeLookup, route == routeSupported:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
