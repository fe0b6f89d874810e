package tlog

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the log's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	treeSize      prometheus.Gauge
	commits       *prometheus.CounterVec
	commitSeconds prometheus.Histogram
	commitRecords prometheus.Histogram
	pushbacks     prometheus.Counter
	fatal         prometheus.Gauge
	corrupt       prometheus.Counter
	damaged       prometheus.Counter
}

// NewMetrics registers the log's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		treeSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sumd", Name: "log_tree_size",
			Help: "Records in the latest signed tree.",
		}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Name: "log_commits_total",
			Help: "Group commits by outcome (ok, error).",
		}, []string{"outcome"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "sumd", Name: "log_commit_duration_seconds",
			Help:    "Time to stage, sign and durably commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		commitRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "sumd", Name: "log_commit_records",
			Help:    "New records per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		pushbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sumd", Name: "log_pushbacks_total",
			Help: "Additions refused because the sequencer queue was full.",
		}),
		fatal: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sumd", Name: "log_stopped",
			Help: "1 once the log stopped after a storage failure of unknown outcome or a damaged database (the process must restart).",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sumd", Name: "log_corrupt_records_total",
			Help: "Records read from the database that did not hash to their leaf in the signed tree, or that the index named for another module version, hash tiles that did not hash to the signed tree, and reads that found the signed tree's hashes or index entries missing or malformed (damaged or tampered with); none was served.",
		}),
		// Not log_corrupt_records_total: that counts records the tree
		// refutes, this the file failing below the log's level.
		damaged: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sumd", Name: "log_damaged_reads_total",
			Help: "Reads of the database file that faulted or panicked on a truncated or damaged page (a *DamagedError), answered with an error; the server log has each one's stack.",
		}),
	}
	reg.MustRegister(m.treeSize, m.commits, m.commitSeconds, m.commitRecords, m.pushbacks, m.fatal, m.corrupt, m.damaged)
	return m
}

func (m *Metrics) setTreeSize(n int64) {
	if m != nil {
		m.treeSize.Set(float64(n))
	}
}

func (m *Metrics) observeCommit(added int64, d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.commits.WithLabelValues("error").Inc()
		return
	}
	m.commits.WithLabelValues("ok").Inc()
	m.commitSeconds.Observe(d.Seconds())
	m.commitRecords.Observe(float64(added))
}

func (m *Metrics) pushback() {
	if m != nil {
		m.pushbacks.Inc()
	}
}

func (m *Metrics) stopped() {
	if m != nil {
		m.fatal.Set(1)
	}
}

func (m *Metrics) damagedRead() {
	if m != nil {
		m.damaged.Inc()
	}
}

func (m *Metrics) corruptRecord() {
	if m != nil {
		m.corrupt.Inc()
	}
}
