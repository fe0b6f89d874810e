package serve

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/mirror"
	"github.com/sumd-project/sumd/internal/tlog"
)

// Status is a server's state as its operators see it: GET /status serves it
// as JSON, the page at / renders it, and `sumd status` prints it. Every part
// of the server adds its own section and problems (see [Part.Report]).
//
// It is shown to anonymous clients, so it holds no local paths, upstream or
// registry URLs, nor error texts that might: problems say what is wrong and
// point at the server log for the detail.
type Status struct {
	Name         string    `json:"name"`          // the checksum database name
	VerifierKeys []string  `json:"verifier_keys"` // the keys its heads are signed with now
	Version      string    `json:"version,omitempty"`
	Started      time.Time `json:"started"` // when this process started serving
	Time         time.Time `json:"time"`    // when this status was gathered
	Health       Health    `json:"health"`
	Log          LogStatus `json:"log"`
	// Counters are the upstream and admin API counters since the start.
	Counters []Counter  `json:"counters,omitempty"`
	Sync     *SyncState `json:"sync,omitempty"` // nil without OCI sync
	TUF      *TUFState  `json:"tuf,omitempty"`  // nil without TUF
	// Mirrors are the mirrored logs served beside this one: their heads
	// and how far behind their origins they are.
	Mirrors []mirror.Status `json:"mirrors,omitempty"`
}

// Health states.
const (
	Healthy     = "ok"          // everything works
	Degraded    = "degraded"    // the log serves, something beside it needs attention
	Unavailable = "unavailable" // the log cannot serve
)

// Health is the server's state in one word, and what is wrong.
type Health struct {
	State    string    `json:"state"` // Healthy, Degraded or Unavailable
	Problems []Problem `json:"problems,omitempty"`
}

// A Problem is one thing wrong with a part of the server.
type Problem struct {
	Part    string `json:"part"`    // "tuf", "sync", "log"
	Message string `json:"message"` // one line, safe for anonymous clients
}

func (p Problem) String() string { return p.Part + ": " + p.Message }

// LogStatus is the state of the log itself.
type LogStatus struct {
	TreeSize int64  `json:"tree_size"`
	RootHash string `json:"root_hash"` // base64, as in the signed tree head
	// LastCommit is when the tree last grew, as this server saw it (within
	// a second); nil if it has not grown since the history began.
	LastCommit *time.Time `json:"last_commit,omitempty"`
	// RecordsPerDay are the records added on each UTC day of the history,
	// oldest first, for days the history knows.
	RecordsPerDay []DayCount `json:"records_per_day,omitempty"`
	// Heads are signed tree heads of the history: the last of each day.
	Heads []Head `json:"heads,omitempty"`
}

// A DayCount is the number of records added on one UTC day.
type DayCount struct {
	Day     string `json:"day"` // YYYY-MM-DD
	Records int64  `json:"records"`
}

// A Head is a tree head the server signed, and when it saw it.
type Head struct {
	Time     time.Time `json:"time"`
	TreeSize int64     `json:"tree_size"`
	RootHash string    `json:"root_hash"`
}

// A Counter is one counter of the server's metrics.
type Counter struct {
	Name   string            `json:"name"` // the metric name: sumd_upstream_fetches_total
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
}

// counterPrefixes select the counters Status shows; the rest stay on
// /metrics.
var counterPrefixes = []string{"sumd_upstream_", "sumd_admin_"}

// A board gathers the status of a server from its log and parts.
type board struct {
	log     *tlog.Log
	parts   []Part
	reg     prometheus.Gatherer
	version string
	started time.Time
}

// status gathers the status now. The work is bounded: the log's head, the
// metrics registry, and what each part keeps in memory.
func (b *board) status(ctx context.Context) *Status {
	s := b.health(ctx)
	s.Counters = counters(b.reg)
	return s
}

// health gathers the status but the counters, which cost a walk of the
// metrics registry that /healthz, asked every few seconds, does not need.
func (b *board) health(ctx context.Context) *Status {
	s := &Status{
		Name: b.log.Name(), VerifierKeys: b.log.VerifierKeys(), Version: b.version,
		Started: b.started.UTC(), Time: time.Now().UTC(),
	}
	if tree, err := b.log.Tree(ctx); err == nil {
		s.Log.TreeSize = tree.N
		s.Log.RootHash = base64.StdEncoding.EncodeToString(tree.Hash[:])
	}
	// The same test as /healthz's: a head that cannot be served (a shared
	// database unconfirmed for longer than -max-head-age, a mirror with no
	// head yet) is an unavailable log, whatever tree was published last.
	if _, err := b.log.Signed(ctx); err != nil {
		// An unavailable store's own text is the one clients get ("try
		// again shortly"); its cause is the log's own words, with no
		// address or path in them (a head unconfirmed for too long).
		if ue := (*tlog.UnavailableError)(nil); errors.As(err, &ue) && ue.Err != nil {
			err = ue.Err
		}
		s.problem("log", "the signed tree head cannot be served: %v", err)
	}
	for _, p := range b.parts {
		if p.Report != nil {
			p.Report(s)
		}
	}
	s.Health.State = Healthy
	for _, p := range s.Health.Problems {
		s.Health.State = Degraded
		if p.Part == "log" {
			s.Health.State = Unavailable
			break
		}
	}
	return s
}

// problem adds a problem of part to s.
func (s *Status) problem(part, format string, args ...any) {
	s.Health.Problems = append(s.Health.Problems, Problem{Part: part, Message: fmt.Sprintf(format, args...)})
}

// degraded lists the problems for /healthz, which reports an unavailable
// log itself. /healthz answers everyone: a client that may not read the
// status (behind credentials, one without an auditor's) gets only the
// kinds of part with a problem, since the problems, safe as they are of
// paths and URLs, name mirrored databases and tell how the server is
// configured.
func (b *board) degraded(ctx context.Context) []string {
	detail := mayReadStatus(ctx)
	var out []string
	for _, p := range b.health(ctx).Health.Problems {
		switch {
		case p.Part == "log":
		case detail:
			out = append(out, p.String())
		default:
			kind, _, _ := strings.Cut(p.Part, " ") // "mirror <origin>"
			if !slices.Contains(out, kind) {
				out = append(out, kind)
			}
		}
	}
	if !detail && len(out) > 0 {
		out = []string{strings.Join(out, ", ") + " (what is wrong: /status, with an auditor's credential, or the server log)"}
	}
	return out
}

// mayReadStatus reports whether the client of a request, whose context
// ctx is, may read /status: an auditor, or anyone on a server without
// credentials (the access layer's anonymous principal).
func mayReadStatus(ctx context.Context) bool {
	p, ok := access.FromContext(ctx)
	return ok && p.Role >= access.Auditor
}

// counters returns the counters of reg whose names start with one of
// counterPrefixes, sorted by name and labels.
func counters(reg prometheus.Gatherer) []Counter {
	families, err := reg.Gather()
	if err != nil {
		return nil // a collector failed; the status is not worth failing for it
	}
	var out []Counter
	for _, f := range families {
		if f.GetType() != dto.MetricType_COUNTER || !slices.ContainsFunc(counterPrefixes, func(p string) bool { return strings.HasPrefix(f.GetName(), p) }) {
			continue
		}
		for _, m := range f.GetMetric() {
			c := Counter{Name: f.GetName(), Value: m.GetCounter().GetValue()}
			for _, l := range m.GetLabel() {
				if c.Labels == nil {
					c.Labels = map[string]string{}
				}
				c.Labels[l.GetName()] = l.GetValue()
			}
			out = append(out, c)
		}
	}
	return out // Gather sorts families by name and metrics by labels
}

// serveStatus serves the status as JSON.
func (b *board) serveStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, b.status(r.Context()))
}

// Until formats the time left from now until t, rounded for people ("in
// 365 days", "expired 3h ago"): the status page's form, which sumd status
// prints too.
func Until(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d < 0:
		return "expired " + roundDuration(-d) + " ago"
	default:
		return "in " + roundDuration(d)
	}
}

// roundDuration rounds d to what a person needs: minutes under two hours,
// hours under two days, days beyond.
func roundDuration(d time.Duration) string {
	switch {
	case d < 2*time.Hour:
		return d.Round(time.Minute).String()
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Round(time.Hour).Hours()))
	default:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
}

// writeJSON sends v as indented JSON, not to be cached.
func writeJSON(w http.ResponseWriter, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(append(data, '\n'))
}
