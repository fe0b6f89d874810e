package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/tuf"
)

// startTUF opens the TUF repository of sumd serve -tuf, brings its online
// metadata up to date — refusing to start if it cannot, since every client
// would fail within a day — and starts re-signing it every minute. It
// returns the handler to mount under /tuf/ (nil without -tuf) and the
// function that stops the re-signer.
func startTUF(cfg config.TUFServe, reg prometheus.Registerer, logger *slog.Logger) (http.Handler, func(), error) {
	if cfg.TUF == "" {
		return nil, func() {}, nil
	}
	repo, err := openRepo(cfg.TUF)
	if err != nil {
		return nil, nil, err
	}
	keys := onlineKeys(config.TUFRepo{Dir: cfg.TUF, OnlineKeys: cfg.TUFOnlineKeys})
	if err := repo.CheckOnlineKeys([]string{keys}); err != nil {
		return nil, nil, withHint(err, "sumd serve -tuf re-signs the snapshot and timestamp with the online keys in "+keys+" (-tuf-online-keys); see docs/keys.md")
	}
	if _, err := repo.SignOnline([]string{keys}, time.Now()); err != nil {
		return nil, nil, withHint(err, "the TUF repository does not verify; see docs/keys.md")
	}
	h, err := tuf.NewHandler(cfg.TUF, logger)
	if err != nil {
		return nil, nil, err
	}
	rs := &tuf.Resigner{Repo: repo, KeyDirs: []string{keys}, Logger: logger, Metrics: tuf.NewMetrics(reg)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rs.Run(ctx); close(done) }()
	logger.Info("serving TUF repository", "dir", cfg.TUF, "path", tuf.Prefix, "online_keys", keys)
	return h, func() { cancel(); <-done; h.Close() }, nil
}

// mountTUF routes /tuf/ to tufH, if any, and everything else to h.
func mountTUF(h, tufH http.Handler) http.Handler {
	if tufH == nil {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle(tuf.Prefix, http.MaxBytesHandler(tufH, 1<<10))
	mux.Handle("/", h)
	return mux
}
