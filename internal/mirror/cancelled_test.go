package mirror

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestCancelledRoundNoProblem: a round cancelled while it waits on the
// origin (sumd serve shutting down) says nothing about the origin: the
// client's *FetchError, of no status, wraps context.Canceled, and the
// status read "the origin cannot be reached" because that case came first.
func TestCancelledRoundNoProblem(t *testing.T) {
	o := newOrigin(t, 10)
	m, _ := newMirror(t, o)
	f := newFollower(t, o, m, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel() // the shutdown, while the origin has not answered
		<-r.Context().Done()
	}))
	_, err := f.Sync(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("round cancelled while waiting on the origin: %v, want context.Canceled", err)
	}
	if got := f.Status().Problem; got != "" {
		t.Errorf("status after a cancelled round: %q, want no problem", got)
	}
}

// TestCancelledRoundKeepsProblem: a round cancelled (sumd serve shutting
// down) says nothing about the origin either way: it counted as an error
// in sumd_mirror_syncs_total and cleared the problem an earlier round
// found, so the status read as if the origin had recovered. It now counts
// no outcome and leaves the problem as it was.
func TestCancelledRoundKeepsProblem(t *testing.T) {
	o := newOrigin(t, 10)
	m, _ := newMirror(t, o)
	reg := prometheus.NewRegistry()
	f := newFollower(t, o, m, func(opts *Options) { opts.Metrics = NewMetrics(reg) })
	o.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	if _, err := f.Sync(context.Background()); err == nil {
		t.Fatal("a round against an origin answering 500 succeeded")
	}
	problem := f.Status().Problem
	if problem == "" {
		t.Fatal("no problem after a failed round")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel()
		<-r.Context().Done()
	}))
	if _, err := f.Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("round cancelled while waiting on the origin: %v, want context.Canceled", err)
	}
	if got := f.Status().Problem; got != problem {
		t.Errorf("status after a cancelled round: %q, want the earlier problem %q", got, problem)
	}
	if got := syncs(t, reg); got["error"] != 1 || got["ok"] != 0 {
		t.Errorf("sumd_mirror_syncs_total after a failed round and a cancelled one: %v, want error 1 and nothing else", got)
	}
}

// syncs gathers sumd_mirror_syncs_total of the origin testName by outcome.
func syncs(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sumd_mirror_syncs_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}
