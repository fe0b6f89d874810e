package tuf

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestResignerReports checks what an operator sees: the expiry metrics,
// the warning before an offline role expires, a bad targets file logged
// once, and a failure counted.
func TestResignerReports(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	rs := &Resigner{Repo: f.repo, KeyDirs: []string{f.online}, Now: f.clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: NewMetrics(reg)}

	f.clock.advance(DefaultRootExpiry - ExpiryWarning + TimestampRenewAfter)
	f.writeFile([]byte("{}"), metadataDir, versionedName(2, metadata.TARGETS))
	for range 2 {
		if err := rs.Tick(); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	for _, want := range []string{"signed TUF metadata", "expires soon", "role=root", "role=targets"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "does not verify"); n != 1 {
		t.Errorf("the bad targets file was logged %d times, want once:\n%s", n, out)
	}
	exp := rs.Metrics.expires.WithLabelValues(metadata.TIMESTAMP)
	if got, want := testutil.ToFloat64(exp), float64(f.clock.Now().Add(TimestampExpiry).Unix()); got != want {
		t.Errorf("timestamp expiry metric %v, want %v", got, want)
	}

	rs.KeyDirs = []string{t.TempDir()}
	f.clock.advance(TimestampRenewAfter)
	if err := rs.Tick(); err == nil || testutil.ToFloat64(rs.Metrics.failures) != 1 {
		t.Errorf("Tick without the online keys: %v, failures %v; want an error counted", err, testutil.ToFloat64(rs.Metrics.failures))
	}
}

// TestResignerLogsIgnoredTimestamp: a timestamp.json that does not verify
// is replaced on the next tick and logged once as ignored.
func TestResignerLogsIgnoredTimestamp(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	rs := &Resigner{Repo: f.repo, KeyDirs: []string{f.online}, Now: f.clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	f.writeFile(breakSignature(t, f.readFile(metadataDir, timestampFile)), metadataDir, timestampFile)
	for range 2 {
		if err := rs.Tick(); err != nil {
			t.Fatal(err)
		}
	}
	out := logs.String()
	if n := strings.Count(out, "ignoring TUF metadata that does not verify"); n != 1 || !strings.Contains(out, "timestamp.json (the next timestamp and snapshot versions are the time of signing") {
		t.Errorf("the broken timestamp was logged %d times, want once:\n%s", n, out)
	}
	if st := f.status(); len(st.Problems) != 0 || st.Versions[metadata.TIMESTAMP] != f.clock.Now().Unix() {
		t.Errorf("after the tick: %+v; want no problem left and timestamp version %d", st, f.clock.Now().Unix())
	}
}
