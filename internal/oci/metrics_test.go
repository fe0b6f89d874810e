package oci

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// stateFailing is a log whose sync state cannot be read, or written.
type stateFailing struct {
	*fakeLog
	read, write error
}

func (f *stateFailing) Aux(ctx context.Context, key string) ([]byte, error) {
	if f.read != nil {
		return nil, f.read
	}
	return f.fakeLog.Aux(ctx, key)
}

func (f *stateFailing) SetAux(ctx context.Context, key string, value []byte) error {
	if f.write != nil {
		return f.write
	}
	return f.fakeLog.SetAux(ctx, key, value)
}

// TestSyncPassMetrics: every pass is counted, and one that stops (its
// state cannot be read or written) is counted failed and leaves the last
// success alone, as one that read all but one registry; one cut short by
// its context (sumd stopping) is not counted at all.
func TestSyncPassMetrics(t *testing.T) {
	broken := errors.New("disk on fire")
	for _, c := range []struct {
		name        string
		read, write error
		stopped, ok bool
	}{
		{name: "ok", ok: true},
		{name: "state unreadable", read: broken},
		{name: "state unwritable", write: broken},
		{name: "stopped", stopped: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newSyncEnv(t, true)
			e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
			m := NewMetrics(prometheus.NewRegistry(), time.Minute)
			s, err := NewSyncer(Options{
				Sources: []*Source{e.src}, Keys: []*PublicKey{e.key.public(t)},
				Log:    &stateFailing{fakeLog: e.log, read: c.read, write: c.write},
				Remote: testRemote, Metrics: m, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if c.stopped {
				cancel()
			}
			defer cancel()
			_, err = s.Sync(ctx)
			if (err == nil) != c.ok {
				t.Fatalf("Sync: %v", err)
			}
			ok, failed := testutil.ToFloat64(m.passes.WithLabelValues("ok")), testutil.ToFloat64(m.passes.WithLabelValues("failed"))
			last := testutil.ToFloat64(m.lastOK)
			wantFailed := 1.0
			if c.stopped {
				wantFailed = 0
			}
			if c.ok && (ok != 1 || failed != 0 || last == 0) || !c.ok && (ok != 0 || failed != wantFailed || last != 0) {
				t.Errorf("passes ok %v, failed %v, last success %v after a pass that returned %v", ok, failed, last, err)
			}
		})
	}
}

// TestSyncIntervalMetric: the interval between passes is exported, so
// that an alert on the last success can wait for a few passes of a long
// interval (the alerts' SumdOCISyncStale) rather than a fixed time.
func TestSyncIntervalMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg, 12*time.Hour)
	want := `
# HELP sumd_oci_sync_interval_seconds The time between the starts of two OCI sync passes (-sync-interval).
# TYPE sumd_oci_sync_interval_seconds gauge
sumd_oci_sync_interval_seconds 43200
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sumd_oci_sync_interval_seconds"); err != nil {
		t.Error(err)
	}
}

// TestSyncStoppedMidRequest: sumd stopping while a pass waits on the
// registry — a tag's HEAD, a repository's tag list, the catalog — is no
// failure of the registry or the artifact: nothing is counted in
// sumd_oci_artifacts_total and nothing is logged as an error, as for a
// pass stopped anywhere else.
func TestSyncStoppedMidRequest(t *testing.T) {
	for name, waits := range map[string]func(r *http.Request) bool{
		"head":     func(r *http.Request) bool { return r.Method == http.MethodHead },
		"tag list": func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/tags/list") },
		"catalog":  func(r *http.Request) bool { return r.URL.Path == "/v2/_catalog" },
	} {
		t.Run(name, func(t *testing.T) {
			e := newSyncEnv(t, true)
			e.push(t, simpleModule(t, "v1.0.0"), e.key.sv)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
				if !waits(r) {
					return false
				}
				cancel() // sumd stops while the request is in flight
				<-r.Context().Done()
				return true
			})
			m := NewMetrics(prometheus.NewRegistry(), time.Minute)
			s, err := NewSyncer(Options{
				Sources: []*Source{e.src}, Keys: []*PublicKey{e.key.public(t)}, Log: e.log,
				Remote: testRemote, Metrics: m, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Sync(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Sync: %v, want it stopped", err)
			}
			if n := testutil.ToFloat64(m.artifacts.WithLabelValues(string(Failed))); n != 0 {
				t.Errorf("%v artifacts counted as errors", n)
			}
			if strings.Contains(e.logs.String(), "level=ERROR") {
				t.Errorf("a stopped pass logged errors:\n%s", e.logs)
			}
		})
	}
}

// TestRefusedArtifactsGauge: sumd_oci_refused_artifacts follows the
// artifact, not the passes. An alert on the increase of
// sumd_oci_artifacts_total fired for the hour after each pass that read
// a badly signed artifact and then resolved, with passes 12 hours apart,
// while the artifact stayed in the registry; the gauge holds it from one
// round to the next, through a round that could not read the registry,
// and drops it once a round no longer finds it (the tag deleted).
func TestRefusedArtifactsGauge(t *testing.T) {
	e := newSyncEnv(t, true)
	p := e.push(t, simpleModule(t, "v1.0.0"), e.other.sv)
	reg := prometheus.NewRegistry()
	e.metrics = NewMetrics(reg, 12*time.Hour)
	want := func(n float64) {
		t.Helper()
		if got := gaugeValue(t, reg, "sumd_oci_refused_artifacts", "outcome", string(BadSignature)); got != n {
			t.Errorf("sumd_oci_refused_artifacts{outcome=bad_signature} %v, want %v\n%s", got, n, e.logs)
		}
	}
	e.sync(t)
	want(1)
	e.sync(t)
	want(1)
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	if r := e.sync(t); len(r.Failures) == 0 {
		t.Fatalf("a pass over a registry that is down failed nothing: %+v", r)
	}
	want(1)
	e.reg.turnHostile(func(w http.ResponseWriter, r *http.Request) bool { return false })
	if err := remote.Delete(p.Tag, remote.WithAuthFromKeychain(testRemote.keychain())); err != nil {
		t.Fatal(err)
	}
	e.sync(t)
	want(0)
}

// gaugeValue is the value of the metric name with label=value in reg, or
// -1 if reg has none.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// TestRefusedArtifactsRound: the sync state keeps, for
// sumd_oci_refused_artifacts, what a pass found at each place read until a
// pass reads it otherwise, so that a round spread over several passes
// (each spending its download budget) keeps what it has not read yet; a
// failed read keeps it, a read of anything else drops it, and so does a
// complete listing of the repository without the tag.
func TestRefusedArtifactsRound(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, time.Minute)
	s := &State{}
	s.reset()
	want := func(o Outcome, n float64) {
		t.Helper()
		m.refusedArtifacts(s)
		if got := gaugeValue(t, reg, "sumd_oci_refused_artifacts", "outcome", string(o)); got != n {
			t.Errorf("sumd_oci_refused_artifacts{outcome=%s} %v, want %v", o, got, n)
		}
	}
	s.read("r/a", "v1", Tampered)
	s.read("r/a", "v2", Retagged)
	s.read("r/a", "v3", Recorded)
	want(Tampered, 1)
	want(Retagged, 1)
	s.read("r/a", "v1", Failed) // nothing known of it this time
	want(Tampered, 1)
	s.read("r/a", "v1", Present) // re-signed and recorded since
	want(Tampered, 0)
	want(Retagged, 1)
	s.retain("r/a", []string{"v1", "v3"}) // v2 deleted
	want(Retagged, 0)
	s.read("r/a", "v3", BadSignature)
	s.prune(nil, nil) // no source covers r/a any more
	want(BadSignature, 0)
}

// TestRefusedArtifactsRestored: sumd_oci_refused_artifacts lived in memory
// only, so a restart set it to 0 and resolved SumdOCISignatureRefused
// while the badly signed artifact stayed in the registry, until a pass
// read it again (with budget-limited passes, the pass of the next round
// that reached it). The gauge is now kept in the sync state and a new
// Syncer on it exports it before its first pass.
func TestRefusedArtifactsRestored(t *testing.T) {
	e := newSyncEnv(t, true)
	e.push(t, simpleModule(t, "v1.0.0"), e.other.sv)
	e.metrics = NewMetrics(prometheus.NewRegistry(), time.Minute)
	e.sync(t)

	reg := prometheus.NewRegistry() // sumd restarted on the same database
	if _, err := NewSyncer(Options{
		Sources: []*Source{e.src}, Keys: []*PublicKey{e.key.public(t)}, Log: e.log,
		Remote: testRemote, Metrics: NewMetrics(reg, time.Minute), Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	}); err != nil {
		t.Fatal(err)
	}
	if got := gaugeValue(t, reg, "sumd_oci_refused_artifacts", "outcome", string(BadSignature)); got != 1 {
		t.Errorf("after a restart, before any pass, sumd_oci_refused_artifacts{outcome=bad_signature} %v, want 1\n%s", got, e.logs)
	}
}
