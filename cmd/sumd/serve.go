package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/upstream"
)

func runServe(args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := config.LoadServe(args, os.Environ(), stderr)
	if err != nil {
		return configError(err)
	}
	if len(rest) > 0 {
		return usageError(fmt.Errorf("unexpected argument %q", rest[0]), "sumd serve takes only flags; see sumd serve -h")
	}
	up, err := parseUpstream(cfg)
	if err != nil {
		return err
	}
	sc, err := prepareSync(cfg.ServeSync)
	if err != nil {
		return err
	}
	tlsConf, err := loadTLS(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return err
	}
	logger := config.NewLogger(cfg.Log, stderr)
	reg := newRegistry()
	tufH, stopTUF, err := startTUF(cfg.TUFServe, reg, logger)
	if err != nil {
		return err
	}
	defer stopTUF()
	l, err := openLog(cfg.Database, openOptions{
		create: cfg.Create, firstStart: true, verify: verifyMode(cfg.Verify),
		maxBatch: cfg.MaxBatch, logger: logger, metrics: tlog.NewMetrics(reg),
	}, stderr)
	if err != nil {
		return err
	}
	defer l.Close()
	ops, adm, err := up.serverOps(cfg, l, upstream.NewMetrics(reg), logger)
	if err != nil {
		return err
	}
	stopSync, err := startSync(sc, cfg.ServeSync, cfg.DB, l, reg, logger)
	if err != nil {
		return err
	}
	defer stopSync()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return withHint(fmt.Errorf("failed to listen: %w", err), "pick a free address with -listen HOST:PORT")
	}
	url := "http://" + ln.Addr().String()
	if tlsConf != nil {
		url = "https://" + ln.Addr().String()
	}
	logger.Info("serving checksum database", "name", l.Name(), "url", url, "tree_size", treeSize(l), "admin", adm != nil)
	fmt.Fprintf(stdout, "GOSUMDB=\"%s %s\"\n", l.VerifierKey(), url)

	h := routes(l, ops, adm, tufH, reg, logger)
	return serveUntilSignal(ln, h, tlsConf, writeTimeout(cfg), cfg.ShutdownTimeout, logger)
}

// routes composes the HTTP surface: the checksum database protocol (with
// /healthz and /metrics), and, if configured, /admin/ and /tuf/.
func routes(l *tlog.Log, ops sumdb.ServerOps, adm, tufH http.Handler, reg *prometheus.Registry, logger *slog.Logger) http.Handler {
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
	return mountTUF(h, tufH)
}

// serveUntilSignal serves until SIGINT or SIGTERM, then lets requests in
// flight finish for up to timeout.
func serveUntilSignal(ln net.Listener, h http.Handler, tlsConf *tls.Config, requestTimeout, timeout time.Duration, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       requestTimeout,
		WriteTimeout:      requestTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			errc <- srv.ServeTLS(ln, "", "") // the certificate is in tlsConf
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "timeout", timeout)
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("failed to shut down gracefully: %w", err)
	}
	return nil
}

// loadTLS reads the certificate and key for HTTPS; none means plain HTTP.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, withHint(fmt.Errorf("failed to load TLS certificate: %w", err), "-tls-cert and -tls-key must be the PEM certificate chain and its private key")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// newRegistry returns a private Prometheus registry with the process, Go
// runtime and build info collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg
}

func treeSize(l *tlog.Log) int64 {
	t, _ := l.Tree(context.Background())
	return t.N
}

func verifyMode(s string) tlog.VerifyMode {
	if s == config.VerifyFull {
		return tlog.VerifyFull
	}
	return tlog.VerifyTail
}

// configError adds a hint to a configuration error.
func configError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError(err, "fix the option named above; see -h for every option, its default and its SUMD_* variable")
}

// openOptions say how openLog opens the database.
type openOptions struct {
	create     bool // -create: starting a new log is intended
	firstStart bool // generate a key and create the log if neither exists
	verify     tlog.VerifyMode
	maxBatch   int
	logger     *slog.Logger
	metrics    *tlog.Metrics
}

// openLog reads the signing key and opens the database, generating both on
// a first start (neither the key nor the database exists) when allowed.
func openLog(db config.Database, o openOptions, stderr io.Writer) (*tlog.Log, error) {
	create := o.create
	firstStart := o.firstStart && db.Name != "" && db.Key == config.DefaultKeyFile(db.Name)
	if firstStart && !exists(db.Key) && !exists(db.DB) {
		if _, err := writeKey(db.Name, db.Key, db.Key[:len(db.Key)-len(".key")]+".vkey"); err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "sumd: first start: generated signing key %s for %s\n", db.Key, db.Name)
		create = true
	}
	keys, err := readKeys(db, o.logger)
	if err != nil {
		return nil, err
	}
	l, err := tlog.Open(db.DB, tlog.Options{
		Keys: keys, Create: create, Verify: o.verify, MaxBatch: o.maxBatch,
		Logger: o.logger, Metrics: o.metrics,
	})
	switch {
	case errors.Is(err, tlog.ErrLocked):
		return nil, withHint(err, "a running sumd serve holds the database; stop it first")
	case errors.Is(err, tlog.ErrCorrupt):
		return nil, withHint(err, "do not serve this database: restore it from a backup and audit it (docs/design)")
	case errors.Is(err, fs.ErrNotExist) && !exists(db.DB):
		return nil, withHint(err, "check -db; to start a new, empty log on purpose, add -create")
	}
	return l, err
}

// readKeys reads the signing key files of db.Key, a comma-separated list:
// one key, or the old and the new one during a key rotation.
func readKeys(db config.Database, logger *slog.Logger) ([]*tlog.Key, error) {
	var keys []*tlog.Key
	for file := range strings.SplitSeq(db.Key, ",") {
		if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
			logger.Warn("signing key file is readable by other users; chmod 600 it", "key", file, "mode", fi.Mode().Perm().String())
		}
		key, err := tlog.ReadKeyFile(file)
		if err != nil {
			return nil, withHint(err, "pass -key FILE (or -name NAME) of your log; to start a new log, first run sumd keygen -name "+cmp.Or(db.Name, "NAME"))
		}
		if db.Name != "" && key.Name() != db.Name {
			return nil, withHint(fmt.Errorf("key %s signs for %q, but the name is %q", file, key.Name(), db.Name),
				"drop -name (the key names the log) or use that log's key")
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
