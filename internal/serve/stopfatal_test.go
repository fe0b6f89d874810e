package serve

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/mirror"
	"github.com/sumd-project/sumd/internal/sumdbclient"
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

// lateAux is lateWriter for a log that takes no records (a mirror's): once
// the pass's context ends it stores an auxiliary value in l, whose store
// then fails in doubt.
type lateAux struct {
	l     func() *tlog.Log
	store *tlog.MemStore
}

func (w *lateAux) Sync(ctx context.Context) (*SyncReport, error) {
	<-ctx.Done()
	w.store.SetHooks(tlog.MemHooks{BeforeCommit: func(*tlog.Batch) error { return errors.New("disk said nothing") }})
	w.l().SetAux(context.Background(), "late", []byte("x"))
	return nil, ctx.Err()
}

// storeMirror is offlineMirror on store, and sets *l to its log when
// opened.
func storeMirror(t *testing.T, name string, store *tlog.MemStore, l **tlog.Log) Mirror {
	_, vkey, err := tlog.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	return Mirror{Interval: time.Hour, Open: func() (*mirror.Follower, string, error) {
		ml, err := tlog.OpenStore(store, tlog.Options{VerifierKeys: []string{vkey}, Create: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, "", err
		}
		*l = ml
		vs, _ := sumdbclient.ParseVerifiers(vkey)
		f, err := mirror.New(mirror.Options{Log: ml, Verifiers: vs})
		return f, "", err
	}}
}

// TestStopFatalReportedMirror is TestStopFatalReported for a mirror's log,
// beside the server's own and as a mirror-only server's main log: its
// write that failed in doubt after the parts stopped (the mirror part and,
// mirror-only, the sequencer's health part) went unreported, and sumd
// serve exited 0.
func TestStopFatalReportedMirror(t *testing.T) {
	for _, mirrorOnly := range []bool{false, true} {
		t.Run(map[bool]string{false: "beside", true: "mirror-only"}[mirrorOnly], func(t *testing.T) {
			cfg, urls, _ := testConfig(t)
			store := tlog.NewMemStore()
			var ml *tlog.Log
			cfg.Mirrors = []Mirror{storeMirror(t, "late.example", store, &ml)}
			if mirrorOnly {
				cfg.OpenLog, cfg.DBFile = nil, ""
				cfg.Surface = func(*tlog.Log) (sumdb.ServerOps, http.Handler, error) { return nil, nil, nil }
			}
			cfg.Sync = &Sync{Interval: time.Hour, Syncer: func(*tlog.Log) (Syncer, error) {
				return &lateAux{l: func() *tlog.Log { return ml }, store: store}, nil
			}}
			ctx, stop := context.WithCancel(context.Background())
			_, done := start(t, ctx, cfg, urls)
			stop()
			err := wait(t, done)
			if !errors.Is(err, tlog.ErrFatal) {
				t.Fatalf("Run after a stop whose last write to a mirror failed in doubt = %v, want an error wrapping ErrFatal", err)
			}
			if !strings.Contains(err.Error(), "late.example") {
				t.Errorf("Run's error %q does not name the mirror", err)
			}
		})
	}
}
