package serve

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumd-project/sumd/internal/tuf"
)

// TUF configures the TUF repository a server publishes its keys through.
type TUF struct {
	Dir        string // the repository (sumd serve -tuf)
	OnlineKeys string // directory of the snapshot and timestamp keys
}

// tufPart is the served TUF repository and its re-signer.
type tufPart struct {
	handler  *tuf.Handler
	resigner *tuf.Resigner
}

// openTUF opens the repository of cfg (nil: none) and brings its online
// metadata up to date, refusing to start if it cannot, since every client
// would fail within a day.
func openTUF(cfg *TUF, reg prometheus.Registerer, logger *slog.Logger) (*tufPart, error) {
	if cfg == nil {
		return nil, nil
	}
	repo, err := tuf.Open(cfg.Dir)
	if err != nil {
		return nil, withHint(err, "pass -tuf the repository sumd tuf init created")
	}
	keys := []string{cfg.OnlineKeys}
	if err := repo.CheckOnlineKeys(keys); err != nil {
		return nil, withHint(err, "sumd serve -tuf re-signs the snapshot and timestamp with the online keys in "+cfg.OnlineKeys+" (-tuf-online-keys); see docs/keys.md")
	}
	if _, err := repo.SignOnline(keys, time.Now()); err != nil {
		return nil, withHint(err, "the TUF repository does not verify; see docs/keys.md")
	}
	h, err := tuf.NewHandler(cfg.Dir, logger)
	if err != nil {
		return nil, err
	}
	logger.Info("serving TUF repository", "dir", cfg.Dir, "path", tuf.Prefix, "online_keys", cfg.OnlineKeys)
	return &tufPart{
		handler:  h,
		resigner: &tuf.Resigner{Repo: repo, KeyDirs: keys, Logger: logger, Metrics: tuf.NewMetrics(reg)},
	}, nil
}

// part re-signs the online metadata every minute. A failed re-signing is
// logged and retried: the timestamp outlives many attempts.
func (t *tufPart) part() Part {
	return Part{
		Name: "TUF re-signer",
		Run: func(ctx context.Context) error {
			t.resigner.Run(ctx)
			return nil
		},
	}
}

// mount routes /tuf/ to the repository, if any, and the rest to h.
func (t *tufPart) mount(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle(tuf.Prefix, http.MaxBytesHandler(t.handler, 1<<10))
	mux.Handle("/", h)
	return mux
}
