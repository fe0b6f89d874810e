package oci

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// An Outcome is what a sync pass did with one artifact: the label of
// sumd_oci_artifacts_total and of its log line. The set is fixed; module
// paths and error texts never become labels.
type Outcome string

// Outcomes. Only Recorded and Present leave the version in the log; every
// other outcome leaves the log unchanged and is tried again next pass.
const (
	Recorded     Outcome = "recorded"      // verified, hashed and added
	Present      Outcome = "present"       // verified, hashed, already recorded with the same hashes
	Unsigned     Outcome = "unsigned"      // no signature of either format
	BadSignature Outcome = "bad_signature" // signatures, none verifying with a configured key
	Tampered     Outcome = "tampered"      // a blob differs from the digest its manifest gives
	Malformed    Outcome = "malformed"     // not a valid module artifact, or at the wrong repository or tag
	Invalid      Outcome = "invalid"       // the module itself fails the go command's checks or size limits
	Conflict     Outcome = "conflict"      // the log holds other hashes for the version: refused
	Retagged     Outcome = "retagged"      // the log holds the version with other hashes, and its tag holds content no configured key signed
	Refused      Outcome = "refused"       // the recorder's policy (the cross-check) refused the hashes: not recorded
	Failed       Outcome = "error"         // the registry failed; nothing is known about the artifact
	Ignored      Outcome = "ignored"       // a version tag holding something else than a module artifact
)

var outcomes = []Outcome{Recorded, Present, Unsigned, BadSignature, Tampered, Malformed, Invalid, Conflict, Retagged, Refused, Failed, Ignored}

// refusedOutcomes are the outcomes of artifacts that someone published
// and sumd refused as untrustworthy: the outcomes of
// sumd_oci_refused_artifacts (the alert SumdOCISignatureRefused).
var refusedOutcomes = []Outcome{BadSignature, Tampered, Conflict, Retagged}

// Metrics are the OCI sync metrics. A nil *Metrics records nothing.
type Metrics struct {
	artifacts *prometheus.CounterVec // sumd_oci_artifacts_total{outcome}
	passes    *prometheus.CounterVec // sumd_oci_sync_passes_total{result}
	lastOK    prometheus.Gauge       // sumd_oci_sync_last_success_timestamp_seconds
	// budgetSpent is sumd_oci_sync_budget_exhausted_total.
	budgetSpent prometheus.Counter
	// refused is sumd_oci_refused_artifacts{outcome}: the refused
	// artifacts the sync state keeps (State.RefusedArtifacts), set after
	// each pass and by NewSyncer from the stored state, so that a restart
	// does not clear it. A counter alone made an alert on its increase
	// fire for the window after each pass: with passes 12 hours apart,
	// one hour in twelve while the artifact stayed in the registry.
	refused *prometheus.GaugeVec
}

// NewMetrics registers the OCI sync metrics of passes run every interval
// on reg; a nil reg means none. The interval is exported so that an alert
// on the last success waits for a few passes, however far apart.
func NewMetrics(reg prometheus.Registerer, interval time.Duration) *Metrics {
	if reg == nil {
		return nil
	}
	m := &Metrics{
		budgetSpent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "oci", Name: "sync_budget_exhausted_total",
			Help: "OCI sync passes that stopped examining artifacts because they had downloaded their budget of blob bytes; the next pass starts where they stopped. Not a failure: a first pass over a large registry does so (but problems earlier passes found where the pass did not reach fail it).",
		}),
		artifacts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "oci", Name: "artifacts_total",
			Help: "Module artifacts examined by OCI sync, by outcome (recorded, present, unsigned, bad_signature, tampered, malformed, invalid, conflict, retagged, refused, error, ignored). Artifacts already recorded by an earlier pass are not counted again.",
		}, []string{"outcome"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sumd", Subsystem: "oci", Name: "sync_passes_total",
			Help: "OCI sync passes, by result: ok, or failed (a registry could not be read, a conflict, a re-tagged version or a version the cross-check refused was found, or the pass stopped: its state could not be read or saved; or it did not read again a place where an earlier pass found one of these, having spent its download budget before it; a pass cut short by sumd stopping is not counted).",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "sumd", Subsystem: "oci", Name: "sync_last_success_timestamp_seconds",
			Help: "When the last OCI sync pass without a failure ended (Unix time).",
		}),
	}
	for _, o := range outcomes {
		m.artifacts.WithLabelValues(string(o)) // export every outcome from the start
	}
	m.refused = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "sumd", Subsystem: "oci", Name: "refused_artifacts",
		Help: "Artifacts in the registries with an outcome of refused content, by outcome (bad_signature, tampered, conflict, retagged): the tags where the last OCI sync pass that read them found one, until a pass reads something else there or their repository no longer lists them (a pass that failed to read them, or spent its download budget before them, keeps them). Kept in the sync state: a restart exports it before its first pass.",
	}, []string{"outcome"})
	for _, o := range refusedOutcomes {
		m.refused.WithLabelValues(string(o))
	}
	m.passes.WithLabelValues("ok")
	m.passes.WithLabelValues("failed")
	reg.MustRegister(m.artifacts, m.passes, m.lastOK, m.budgetSpent, m.refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "sumd", Subsystem: "oci", Name: "sync_interval_seconds",
		Help: "The time between the starts of two OCI sync passes (-sync-interval).",
	}, interval.Seconds))
	return m
}

// artifact counts an artifact a pass examined, of outcome o.
func (m *Metrics) artifact(o Outcome) {
	if m != nil {
		m.artifacts.WithLabelValues(string(o)).Inc()
	}
}

func (m *Metrics) budgetExhausted() {
	if m != nil {
		m.budgetSpent.Inc()
	}
}

// pass counts a pass that returned r and err: failed if it stopped (err)
// or did not read everything (r.OK).
func (m *Metrics) pass(r *Report, err error) {
	if m == nil {
		return
	}
	if err != nil || !r.OK() {
		m.passes.WithLabelValues("failed").Inc()
		return
	}
	m.passes.WithLabelValues("ok").Inc()
	m.lastOK.SetToCurrentTime()
}

// refusedArtifacts sets sumd_oci_refused_artifacts to the refused
// artifacts state keeps.
func (m *Metrics) refusedArtifacts(state *State) {
	if m == nil {
		return
	}
	n := state.refusedCounts()
	for _, o := range refusedOutcomes {
		m.refused.WithLabelValues(string(o)).Set(float64(n[o]))
	}
}
