package pgstore

import (
	"github.com/prometheus/client_golang/prometheus"
)

// A collector reports the store's connection to PostgreSQL.
type collector struct {
	s                                                *Store
	up, conns, acquires, waits, refused, lost, cache *prometheus.Desc
}

// register registers the store's metrics with reg, if any:
// sumd_postgres_up, connections by state, acquisitions and waits for a
// connection, reads refused for want of one, lost commit answers by
// outcome, and cache sizes.
func (s *Store) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sumd_postgres_"+name, help, labels, nil)
	}
	return reg.Register(&collector{
		s:        s,
		up:       d("up", "1 if the last statement reached the database, 0 if it could not (requests then get 503)."),
		conns:    d("connections", "Connections in the pool, by state (acquired, idle).", "state"),
		acquires: d("acquires_total", "Connections taken from the pool."),
		waits:    d("acquire_waits_total", "Times a read waited for a free connection (raise pool_max_conns in the URL if this grows)."),
		refused:  d("reads_refused_total", "Reads answered 503 at once because too many were waiting for a connection (a flood of lookups; raise pool_max_conns in the URL if the database keeps up)."),
		lost:     d("lost_commits_total", "COMMITs whose answer was lost, by what re-reading the head showed (stored, not_stored, unknown).", "outcome"),
		cache:    d("cached", "Entries in the in-memory caches, by cache (tiles, records, index).", "cache"),
	})
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.conns, c.acquires, c.waits, c.refused, c.lost, c.cache} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	up := 1.0
	if s.down.Load() {
		up = 0
	}
	st, ctl := s.pool.Stat(), s.ctl.Stat() // reads, the log's own statements
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.up, up)
	gauge(c.conns, float64(st.AcquiredConns()+ctl.AcquiredConns()), "acquired")
	gauge(c.conns, float64(st.IdleConns()+ctl.IdleConns()), "idle")
	counter(c.acquires, float64(st.AcquireCount()+ctl.AcquireCount()))
	counter(c.waits, float64(st.EmptyAcquireCount()))
	counter(c.refused, float64(s.refused.Load()))
	for _, o := range []string{"stored", "not_stored", "unknown"} {
		counter(c.lost, float64(s.lost[o].Load()), o)
	}
	gauge(c.cache, float64(s.tiles.Len()), "tiles")
	gauge(c.cache, float64(s.cache.records.Len()), "records")
	gauge(c.cache, float64(s.cache.index.Len()), "index")
}
