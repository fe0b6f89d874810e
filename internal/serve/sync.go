package serve

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sumd-project/sumd/internal/tlog"
)

// Sync configures the periodic OCI sync of a server.
type Sync struct {
	Interval   time.Duration // between the starts of two passes
	Registries []string      // the sources, for the logs
	// Syncer returns the syncer recording into l.
	Syncer func(l *tlog.Log) (Syncer, error)
}

// A Syncer runs sync passes (internal/oci's, adapted by cmd/sumd, so that
// this package does not pull in the registry and signature libraries).
type Syncer interface {
	// Sync runs one pass. Problems with single artifacts or registries are
	// in the report; the error is for what stopped the pass (the sync
	// state cannot be read or written, or ctx ended). Passes never overlap.
	Sync(ctx context.Context) (*SyncReport, error)
}

// A SyncReport is what one sync pass did.
type SyncReport struct {
	Outcomes  map[string]int // artifacts examined, by outcome (recorded, present, unsigned, ...)
	Unchanged int            // artifacts skipped as recorded by an earlier pass
	Conflicts []error        // versions refused because the log holds other hashes
	Failures  []error        // registries, repositories or artifacts that could not be read
}

// part builds the syncer on l and returns the part that runs a pass at
// once and then every Interval. A failed pass is logged and tried again at
// the next interval: registries come and go.
func (s *Sync) part(l *tlog.Log, logger *slog.Logger) (Part, error) {
	syncer, err := s.Syncer(l)
	if err != nil {
		return Part{}, err
	}
	logger.Info("OCI sync started", "registries", strings.Join(s.Registries, ","), "interval", s.Interval)
	return Part{
		Name: "OCI sync",
		Run: func(ctx context.Context) error {
			t := time.NewTicker(s.Interval)
			defer t.Stop()
			for {
				start := time.Now()
				r, err := syncer.Sync(ctx)
				if ctx.Err() != nil {
					return nil
				}
				logPass(ctx, logger, r, err, time.Since(start))
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
		},
	}, nil
}

func logPass(ctx context.Context, logger *slog.Logger, r *SyncReport, err error, d time.Duration) {
	if err != nil {
		logger.ErrorContext(ctx, "OCI sync pass failed", "err", err)
		return
	}
	attrs := []any{"seconds", d.Seconds(), "unchanged", r.Unchanged, "conflicts", len(r.Conflicts), "failures", len(r.Failures)}
	for _, o := range slices.Sorted(maps.Keys(r.Outcomes)) {
		if n := r.Outcomes[o]; n > 0 {
			attrs = append(attrs, o, n)
		}
	}
	logger.InfoContext(ctx, "OCI sync pass done", attrs...)
}
