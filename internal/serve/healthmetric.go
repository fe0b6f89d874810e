package serve

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// healthCollector exports the health /healthz reports as metrics, gathered
// again at each scrape, so that one alert rule covers every problem a part
// of the server reports (packaging/prometheus): the status's own words are
// on /healthz and the page, the metric says which part and since when.
type healthCollector struct {
	b               *board
	state, problems *prometheus.Desc
}

// healthStates are the values of sumd_health_state.
var healthStates = map[string]float64{Healthy: 0, Degraded: 1, Unavailable: 2}

func newHealthCollector(b *board) healthCollector {
	return healthCollector{
		b: b,
		state: prometheus.NewDesc("sumd_health_state",
			"The server's health as /healthz reports it: 0 ok, 1 degraded (the log serves, something beside it needs attention), 2 unavailable (the log cannot serve).",
			nil, nil),
		problems: prometheus.NewDesc("sumd_health_problems",
			"Problems each part of the server reports now, as /healthz lists them (only parts with a problem have a series).",
			[]string{"part"}, nil),
	}
}

func (c healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.problems
}

// Collect gathers the health as /healthz does: bounded work on what the
// log and the parts keep in memory.
func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s := c.b.health(ctx)
	ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, healthStates[s.Health.State])
	n := map[string]int{}
	for _, p := range s.Health.Problems {
		n[p.Part]++
	}
	for part, k := range n {
		ch <- prometheus.MustNewConstMetric(c.problems, prometheus.GaugeValue, float64(k), part)
	}
}
