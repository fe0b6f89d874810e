package main

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo is the sumd_build_info metric: always 1, labelled with the
// version /version and sumd version print, so that dashboards can tell
// which release each server runs.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sumd_build_info",
		Help: "Always 1; the labels say which sumd build runs.",
	}, []string{"version", "goversion"})
	g.WithLabelValues(version(), runtime.Version()).Set(1)
	return g
}
