package tuf

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// ResignInterval is how often a Resigner checks the online metadata: the
// check reads a few small files, and a publication waiting for its
// snapshot (written where the online keys are not at hand) waits at most
// this long.
const ResignInterval = time.Minute

// ExpiryWarning is how long before the offline roles (root, targets)
// expire that a Resigner starts warning: renewing them needs the offline
// keys, a ceremony to schedule.
const ExpiryWarning = 30 * 24 * time.Hour

// A Resigner keeps a repository's online metadata fresh, in a server that
// serves the repository: it runs SignOnline every Interval. It picks up
// what the offline commands wrote (new targets, new roots, new online
// keys in KeyDirs) on its next tick, without a restart.
type Resigner struct {
	Repo     *Repo
	KeyDirs  []string         // where the snapshot and timestamp keys are
	Now      func() time.Time // the clock; nil means time.Now (tests pass a fake one)
	Interval time.Duration    // 0 means ResignInterval
	Logger   *slog.Logger
	Metrics  *Metrics // nil records nothing

	problems string // the problems last logged; owned by the Run goroutine
}

// Tick runs SignOnline once and logs what it did and anything wrong.
func (s *Resigner) Tick() error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	sg, err := s.Repo.SignOnline(s.KeyDirs, now())
	if err != nil {
		s.Metrics.observe(nil)
		s.Logger.Error("failed to re-sign the TUF metadata; clients fail once the timestamp, or the snapshot it names, expires", "dir", s.Repo.Dir(), "err", err)
		return err
	}
	s.Metrics.observe(sg.Status)
	if sg.Snapshot || sg.Timestamp {
		s.Logger.Info("signed TUF metadata", statusAttrs(sg.Status)...)
		s.warnExpiring(sg.Status, now())
	}
	s.logProblems(sg.Status.Problems)
	return nil
}

// Run calls Tick at once and then every Interval until ctx is done.
// Failures are logged and retried on the next tick.
func (s *Resigner) Run(ctx context.Context) {
	every := s.Interval
	if every <= 0 {
		every = ResignInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	s.Tick()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Tick()
		}
	}
}

// warnExpiring warns about offline roles close to expiry; it runs when the
// timestamp is renewed, every six hours.
func (s *Resigner) warnExpiring(st *Status, now time.Time) {
	for _, role := range []string{metadata.ROOT, metadata.TARGETS} {
		if left := st.Expires[role].Sub(now); left < ExpiryWarning {
			s.Logger.Warn("TUF metadata signed with offline keys expires soon; renew it (sumd tuf publish, sumd tuf rotate-root)",
				"role", role, "version", st.Versions[role], "expires", st.Expires[role], "left", left.Round(time.Hour))
		}
	}
}

// logProblems logs the files ignored because they do not verify (newer
// targets versions, online metadata not signed by the root's keys), once
// each time they change.
func (s *Resigner) logProblems(problems []error) {
	var msgs []string
	for _, p := range problems {
		msgs = append(msgs, p.Error())
	}
	text := strings.Join(msgs, "\n")
	if text != s.problems && text != "" {
		s.Logger.Warn("ignoring TUF metadata that does not verify", "problems", text)
	}
	s.problems = text
}

func statusAttrs(st *Status) []any {
	var attrs []any
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		attrs = append(attrs, role, fmt.Sprintf("v%d until %s", st.Versions[role], st.Expires[role].Format(time.RFC3339)))
	}
	return attrs
}

// Metrics are the Prometheus metrics of a Resigner. A nil *Metrics records
// nothing.
type Metrics struct {
	expires  *prometheus.GaugeVec
	version  *prometheus.GaugeVec
	failures prometheus.Counter
}

// NewMetrics registers the TUF metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		expires: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "sumd", Name: "tuf_expires_timestamp_seconds",
			Help: "Expiry (Unix time) of the TUF metadata served, by role: alert well before root and targets expire.",
		}, []string{"role"}),
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "sumd", Name: "tuf_version",
			Help: "Version of the TUF metadata served, by role.",
		}, []string{"role"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sumd", Name: "tuf_resign_failures_total",
			Help: "Checks of the online TUF metadata that failed.",
		}),
	}
	reg.MustRegister(m.expires, m.version, m.failures)
	return m
}

// observe records a status, or a failure if st is nil.
func (m *Metrics) observe(st *Status) {
	switch {
	case m == nil:
	case st == nil:
		m.failures.Inc()
	default:
		for role, v := range st.Versions {
			m.version.WithLabelValues(role).Set(float64(v))
			m.expires.WithLabelValues(role).Set(float64(st.Expires[role].Unix()))
		}
	}
}
