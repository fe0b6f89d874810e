package serve

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sumd-project/sumd/internal/tlog"
)

// Sync configures the periodic OCI sync of a server.
type Sync struct {
	Interval   time.Duration // between the starts of two passes
	Registries []string      // the sources, for the logs
	// Syncer returns the syncer recording into l.
	Syncer func(l *tlog.Log) (Syncer, error)
}

// A Syncer runs sync passes (internal/oci's, adapted by cmd/sumd, so that
// this package does not pull in the registry and signature libraries).
type Syncer interface {
	// Sync runs one pass. Problems with single artifacts or registries are
	// in the report; the error is for what stopped the pass (the sync
	// state cannot be read or written, or ctx ended). Passes never overlap.
	Sync(ctx context.Context) (*SyncReport, error)
}

// A SyncReport is what one sync pass did.
type SyncReport struct {
	Outcomes  map[string]int // artifacts examined, by outcome (recorded, present, unsigned, ...)
	Unchanged int            // artifacts skipped as recorded by an earlier pass
	Conflicts []error        // versions refused because the log holds other hashes
	Refused   []error        // versions the cross-check refused: the upstream checksum database holds other hashes, or none
	Failures  []error        // registries, repositories or artifacts that could not be read
	// BudgetSpent is set if the pass ran out of its download budget and
	// stopped examining artifacts: the next pass starts where it stopped.
	// Not a failure: a first pass over a large registry does so.
	BudgetSpent bool
	// Places are where the Conflicts, Refused and Failures were found,
	// without the registry, for the status's problems: the errors' texts
	// name registries, which the status never shows.
	Places []SyncPlace
	// Resume is the artifact the next pass starts at when BudgetSpent
	// ("host/repository:tag"), for the pass's log line only: the status
	// names no registry.
	Resume string
}

// A SyncPlace is where a pass found what fails it (internal/oci's Place
// without its registry).
type SyncPlace struct {
	Outcome string // "error", "conflict", "retagged" or "refused"
	// Path is "repository:tag", "repository", or, for a catalog, the
	// prefix of the repositories listed ("" for none).
	Path    string
	Catalog bool // the list of a registry's repositories
	Unread  bool // found by an earlier pass, not read again by this one
	Others  int  // more repositories of its registry not read (it could not be reached)
}

// String is the place as a problem names it.
func (p SyncPlace) String() string {
	var s string
	switch {
	case p.Catalog && p.Path != "":
		s = "the catalog of the registry (repositories under " + p.Path + ")"
	case p.Catalog:
		s = "the catalog of the registry"
	case strings.Contains(p.Path, ":"):
		s = p.Path
	default:
		s = "the tags of " + p.Path
	}
	switch {
	case p.Others == 1:
		s += " and 1 more repository of its registry"
	case p.Others > 1:
		s += fmt.Sprintf(" and %d more repositories of its registry", p.Others)
	}
	if p.Unread {
		s += " (found by an earlier pass, not read again)"
	}
	return s
}

// SyncState is what the status shows of the OCI sync.
type SyncState struct {
	IntervalSeconds float64   `json:"interval_seconds"`
	Registries      int       `json:"registries"`
	LastPass        *SyncPass `json:"last_pass,omitempty"` // nil before the first pass ends
	// LastSuccess is the last pass that read everything it examined: no
	// failure, conflict or refusal. One that spent its download budget
	// counts (it left the rest to the next pass, see SyncPass.BudgetSpent).
	LastSuccess *time.Time `json:"last_success,omitempty"`
}

// A SyncPass is what the status shows of one pass.
type SyncPass struct {
	Started   time.Time      `json:"started"`
	Seconds   float64        `json:"seconds"`
	Outcomes  map[string]int `json:"outcomes,omitempty"` // artifacts examined, by outcome
	Unchanged int            `json:"unchanged"`
	Conflicts int            `json:"conflicts"`
	Refused   int            `json:"refused"` // versions the cross-check refused
	Failures  int            `json:"failures"`
	Stopped   bool           `json:"stopped,omitempty"` // the pass stopped early (state unreadable, ...)
	// BudgetSpent says the pass ran out of its download budget and left
	// the artifacts from the one it stopped at to the next pass, which
	// starts there: information, not a problem. Which artifact is in the
	// server log, as the status names no registry.
	BudgetSpent bool `json:"budget_spent,omitempty"`
}

// syncPart runs the sync passes and keeps the last one for the status.
type syncPart struct {
	cfg    *Sync
	syncer Syncer
	logger *slog.Logger

	mu     sync.Mutex
	state  SyncState   // guarded by mu
	places []SyncPlace // of the last pass; guarded by mu
}

// part builds the syncer on l and returns the part that runs a pass at
// once and then every Interval. A failed pass is logged, shown in the
// status and tried again at the next interval: registries come and go.
func (s *Sync) part(l *tlog.Log, logger *slog.Logger) (Part, error) {
	syncer, err := s.Syncer(l)
	if err != nil {
		return Part{}, err
	}
	logger.Info("OCI sync started", "registries", strings.Join(s.Registries, ","), "interval", s.Interval)
	p := &syncPart{cfg: s, syncer: syncer, logger: logger,
		state: SyncState{IntervalSeconds: s.Interval.Seconds(), Registries: len(s.Registries)}}
	return Part{Name: "OCI sync", Run: p.run, Report: p.report}, nil
}

func (p *syncPart) run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		start := time.Now()
		r, err := p.syncer.Sync(ctx)
		if ctx.Err() != nil {
			return nil
		}
		logPass(ctx, p.logger, r, err, time.Since(start))
		p.record(r, err, start)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// record keeps the pass that started at start for the status.
func (p *syncPart) record(r *SyncReport, err error, start time.Time) {
	pass := &SyncPass{Started: start.UTC(), Seconds: time.Since(start).Seconds(), Stopped: err != nil}
	var places []SyncPlace
	if r != nil {
		places = r.Places
		pass.Outcomes, pass.Unchanged = r.Outcomes, r.Unchanged
		pass.Conflicts, pass.Refused, pass.Failures = len(r.Conflicts), len(r.Refused), len(r.Failures)
		pass.BudgetSpent = r.BudgetSpent
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state.LastPass = pass
	p.places = places
	if err == nil && pass.Failures == 0 && pass.Conflicts == 0 && pass.Refused == 0 {
		t := pass.Started
		p.state.LastSuccess = &t
	}
}

// report adds the sync section and its problems, each naming where (the
// repository and tag, never the registry), what is wrong and what to do.
func (p *syncPart) report(s *Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state
	s.Sync = &st
	pass := st.LastPass
	if pass == nil {
		return
	}
	if pass.Stopped {
		s.problem("sync", "the last pass stopped early: it could not read or save its progress in the database; check the database (the server log has the error)")
	}
	// An error of Conflicts may stand for many places (an earlier pass's
	// re-tags or conflicts not read again are one error): with places,
	// the conflicts are their count, not the errors less the re-tags.
	conflicts := pass.Conflicts
	if c, r := p.count("conflict"), p.count("retagged"); c > 0 || r > 0 {
		conflicts = c
	}
	for _, k := range []struct {
		outcome string
		n       int
		format  string
	}{
		{"error", pass.Failures, "the last pass could not read %s: %s; check that the registry answers and lets sumd's credentials read there (the server log has each error)"},
		{"conflict", conflicts, "the last pass refused %s re-published with other content than the log records for their version: %s; move each tag back to the recorded release or delete it, and publish changes as new versions (the server log has both hashes)"},
		{"retagged", p.count("retagged"), "the last pass refused %s of recorded versions moved to content no configured key signed: %s; move each tag back to the recorded release or delete it (the server log says why no signature verified)"},
		{"refused", pass.Refused, "the last pass refused %s whose hashes the cross-check contradicts (the upstream checksum database holds others, or none): %s; publish your own modules under a -private path (the server log has both hashes)"},
	} {
		if k.n > 0 {
			s.problem("sync", k.format, p.counted(k.outcome, k.n), p.named(k.outcome))
		}
	}
}

// count is the number of places of the last pass with outcome o.
func (p *syncPart) count(o string) int {
	n := 0
	for _, pl := range p.places {
		if pl.Outcome == o {
			n++
		}
	}
	return n
}

// counted says how many places of outcome o a problem is about: those
// named, or, without places (a syncer that gives none), n errors.
func (p *syncPart) counted(o string, n int) string {
	if c := p.count(o); c > 0 {
		n = c
	}
	what := "place"
	if o != "error" {
		what = "tag"
	}
	if n != 1 {
		what += "s"
	}
	return fmt.Sprintf("%d %s", n, what)
}

// named lists the first maxNamedPlaces places of outcome o.
func (p *syncPart) named(o string) string {
	var names []string
	for _, pl := range p.places {
		if pl.Outcome == o {
			names = append(names, pl.String())
		}
	}
	if len(names) == 0 {
		return "the server log names them"
	}
	if n := len(names) - maxNamedPlaces; n > 0 {
		names = append(names[:maxNamedPlaces], fmt.Sprintf("%d more (the server log names them)", n))
	}
	return strings.Join(names, ", ")
}

// maxNamedPlaces bounds the places one problem names, so that it stays a
// line.
const maxNamedPlaces = 3

func logPass(ctx context.Context, logger *slog.Logger, r *SyncReport, err error, d time.Duration) {
	if err != nil {
		logger.ErrorContext(ctx, "OCI sync pass failed", "err", err)
		return
	}
	attrs := []any{"seconds", d.Seconds(), "unchanged", r.Unchanged, "conflicts", len(r.Conflicts), "refused", len(r.Refused), "failures", len(r.Failures)}
	for _, o := range slices.Sorted(maps.Keys(r.Outcomes)) {
		if n := r.Outcomes[o]; n > 0 {
			attrs = append(attrs, o, n)
		}
	}
	if r.BudgetSpent {
		// The line an operator reads for a pass: it says that the pass
		// stopped short and where the next one starts, as oci's warning does.
		attrs = append(attrs, "budget_spent", true, "resume", r.Resume)
	}
	logger.InfoContext(ctx, "OCI sync pass done", attrs...)
}
