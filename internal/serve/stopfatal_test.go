package serve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

// lateWriter is a syncer whose pass is under way when the server stops: it
// writes once its context ends, as a pass's last add may, and returns.
type lateWriter struct {
	l     *tlog.Log
	store *tlog.MemStore
}

func (w *lateWriter) Sync(ctx context.Context) (*SyncReport, error) {
	<-ctx.Done()
	w.store.SetHooks(tlog.MemHooks{BeforeCommit: func(*tlog.Batch) error { return errors.New("disk said nothing") }})
	h := "h1:" + strings.Repeat("A", 43) + "="
	// The pass's context has ended: Add may return at once, the record
	// still queued, committed (or not) by the time the log is closed.
	w.l.Add(ctx, gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: h, GoMod: h})
	return nil, ctx.Err()
}

// TestStopFatalReported: a write of the stop itself (a sync pass's last
// add, committed once the parts stopped or as the log closes) that fails
// in doubt stops the log, ErrFatal; Run returned nil all the same, as after
// a clean stop, since the sequencer's health part had stopped watching, and
// sumd serve exited 0 on a log that had logged "restart sumd, which
// re-verifies the database" (or, rolled back under it, "do not restart").
// Run reports it now, so that the exit status is the documented one.
func TestStopFatalReported(t *testing.T) {
	cfg, urls, _ := testConfig(t)
	skey, _, err := tlog.GenerateKey("stopfatal.example")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlog.ParseKey(skey)
	store := tlog.NewMemStore()
	cfg.DBFile = ""
	cfg.OpenLog = func() (*tlog.Log, error) {
		return tlog.OpenStore(store, tlog.Options{Keys: []*tlog.Key{key}, Create: true, Logger: cfg.Logger})
	}
	cfg.Sync = &Sync{Interval: time.Hour, Syncer: func(l *tlog.Log) (Syncer, error) { return &lateWriter{l: l, store: store}, nil }}
	ctx, stop := context.WithCancel(context.Background())
	_, done := start(t, ctx, cfg, urls)
	stop()
	if err := wait(t, done); !errors.Is(err, tlog.ErrFatal) {
		t.Fatalf("Run after a stop whose last write failed in doubt = %v, want an error wrapping ErrFatal", err)
	}
}
