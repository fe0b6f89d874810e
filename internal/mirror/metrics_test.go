package mirror

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSecurityEventsExported: a follower exports every kind of security
// event for its origin at 0 from the start, so that the first event is a
// rise from 0 that increase() in SumdMirrorSecurityEvent sees, not a new
// series that appears at 1.
func TestSecurityEventsExported(t *testing.T) {
	o := newOrigin(t, 10)
	m, _ := newMirror(t, o)
	reg := prometheus.NewRegistry()
	met := NewMetrics(reg)
	f := newFollower(t, o, m, func(opts *Options) { opts.Metrics = met })
	want := []string{KindFork, KindRollback, KindSignature, KindTampered}
	if got := securityEvents(t, reg); len(got) != len(want) {
		t.Fatalf("after New: security events exported %v, want every kind at 0", got)
	}
	for _, kind := range want {
		if v, ok := securityEvents(t, reg)[kind]; !ok || v != 0 {
			t.Errorf("after New: %s = %v (exported %v), want 0", kind, v, ok)
		}
	}
	o.serve(o.tamper(isTile("0"), func(b []byte) []byte { b[len(b)-1] ^= 1; return b }))
	if _, err := f.Sync(context.Background()); err == nil {
		t.Fatal("Sync over a tampered tile succeeded")
	}
	if got := securityEvents(t, reg); got[KindTampered] != 1 || got[KindFork] != 0 {
		t.Errorf("after a tampered tile: %v, want unverified 1 and the others 0", got)
	}
}

// securityEvents gathers sumd_mirror_security_events_total of the origin
// testName by kind.
func securityEvents(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sumd_mirror_security_events_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["origin"] != testName {
				t.Errorf("security events of origin %q, want %q", labels["origin"], testName)
			}
			got[labels["kind"]] = m.GetCounter().GetValue()
		}
	}
	return got
}

// TestLastSyncExported: a follower with an origin to follow exports
// sumd_mirror_last_sync_timestamp_seconds from New, at when its head was
// last known to be the origin's latest (0 if never), so that a mirror
// whose rounds never succeed after a start (an origin unreachable, a
// round that hangs) has a series that SumdMirrorBehind can find old: it
// appeared only at the first success, and the alert never fired for it.
// One fed by bundles alone (no origin client) exports none: it never
// syncs, and the alert would fire forever.
func TestLastSyncExported(t *testing.T) {
	o := newOrigin(t, 10)
	m, _ := newMirror(t, o)
	reg := prometheus.NewRegistry()
	met := NewMetrics(reg)
	newFollower(t, o, m, func(opts *Options) { opts.Metrics = met })
	if v, ok := lastSync(t, reg); !ok || v != 0 {
		t.Errorf("after New, never synced: last sync %v (exported %v), want 0", v, ok)
	}

	// Restarted after a round that confirmed the head: the time persists.
	when := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := setChecked(context.Background(), m, when); err != nil {
		t.Fatal(err)
	}
	reg = prometheus.NewRegistry()
	met = NewMetrics(reg)
	newFollower(t, o, m, func(opts *Options) { opts.Metrics = met })
	if v, ok := lastSync(t, reg); !ok || v != float64(when.Unix()) {
		t.Errorf("after New, checked at %v: last sync %v (exported %v), want %d", when, v, ok, when.Unix())
	}

	reg = prometheus.NewRegistry()
	met = NewMetrics(reg)
	newFollower(t, o, m, func(opts *Options) { opts.Metrics = met; opts.Client = nil })
	if v, ok := lastSync(t, reg); ok {
		t.Errorf("a follower without an origin exports last sync %v, want none", v)
	}
}

// lastSync gathers sumd_mirror_last_sync_timestamp_seconds of the origin
// testName.
func lastSync(t *testing.T, reg *prometheus.Registry) (float64, bool) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "sumd_mirror_last_sync_timestamp_seconds" {
			for _, m := range f.GetMetric() {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}
