package oci

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

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
