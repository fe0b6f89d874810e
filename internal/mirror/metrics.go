package mirror

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the mirrors' Prometheus metrics, labelled by origin name (a
// configured, bounded set). A nil *Metrics records nothing.
type Metrics struct {
	held      *prometheus.GaugeVec
	origin    *prometheus.GaugeVec
	records   *prometheus.CounterVec
	rounds    *prometheus.CounterVec
	securityN *prometheus.CounterVec
	forwarded *prometheus.CounterVec
	lastSync  *prometheus.GaugeVec
}

// NewMetrics registers the mirrors' metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "sumd", Subsystem: "mirror", Name: "tree_size",
			Help: "Records in the origin's signed tree the mirror holds and serves.",
		}, []string{"origin"}),
		origin: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "sumd", Subsystem: "mirror", Name: "origin_tree_size",
			Help: "Records in the origin's latest signed tree, as last fetched.",
		}, []string{"origin"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "mirror", Name: "records_total",
			Help: "Records stored by the mirror since the start, by its rounds and by lookups forwarded to the origin.",
		}, []string{"origin"}),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "mirror", Name: "syncs_total",
			Help: "Rounds of following the origin, by outcome (ok, error, security); a round cancelled at shutdown counts none.",
		}, []string{"origin", "outcome"}),
		securityN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "mirror", Name: "security_events_total",
			Help: "Data refused because it is not provably part of the origin's one signed history, by kind (fork, rollback, signature, unverified).",
		}, []string{"origin", "kind"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "mirror", Name: "forwarded_lookups_total",
			Help: "Lookups of versions the mirror lacked, forwarded to the origin, by result (stored, not_found, offline, damaged: the origin reports its data damaged, refused, busy: also a disk under min-free-disk).",
		}, []string{"origin", "result"}),
		lastSync: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "sumd", Subsystem: "mirror", Name: "last_sync_timestamp_seconds",
			Help: "When the mirror last knew its head to be the origin's latest (Unix time).",
		}, []string{"origin"}),
	}
	reg.MustRegister(m.held, m.origin, m.records, m.rounds, m.securityN, m.forwarded, m.lastSync)
	return m
}

// follow exports every kind of security event of origin at 0 from the
// start: a series that first appears at 1 is no increase() to the alert
// rules (SumdMirrorSecurityEvent), so a one-off event would raise nothing.
// A follower that follows (online) also exports when its head was last
// known to be the origin's latest, checked (0 if never): a series set only
// by a successful round would not exist for a mirror whose rounds never
// succeed after a start, and SumdMirrorBehind would never find it old. One
// fed by bundles alone never syncs: it exports none.
func (m *Metrics) follow(origin string, online bool, checked time.Time) {
	if m == nil {
		return
	}
	for _, kind := range kinds {
		m.securityN.WithLabelValues(origin, kind)
	}
	if online {
		var unix float64
		if !checked.IsZero() {
			unix = float64(checked.UnixNano()) / 1e9
		}
		m.lastSync.WithLabelValues(origin).Set(unix)
	}
}

func (m *Metrics) observeHeld(origin string, n int64) {
	if m != nil {
		m.held.WithLabelValues(origin).Set(float64(n))
	}
}

func (m *Metrics) observeOrigin(origin string, n int64) {
	if m != nil {
		m.origin.WithLabelValues(origin).Set(float64(n))
	}
}

func (m *Metrics) addRecords(origin string, n int) {
	if m != nil {
		m.records.WithLabelValues(origin).Add(float64(n))
	}
}

func (m *Metrics) round(origin, outcome string) {
	if m != nil {
		m.rounds.WithLabelValues(origin, outcome).Inc()
	}
}

func (m *Metrics) securityEvent(origin, kind string) {
	if m != nil {
		m.securityN.WithLabelValues(origin, kind).Inc()
	}
}

func (m *Metrics) forward(origin, result string) {
	if m != nil {
		m.forwarded.WithLabelValues(origin, result).Inc()
	}
}

func (m *Metrics) synced(origin string, unix float64) {
	if m != nil {
		m.lastSync.WithLabelValues(origin).Set(unix)
	}
}
