package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/oci"
	"github.com/sumd-project/sumd/internal/scratch"
	"github.com/sumd-project/sumd/internal/serve"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/pgstore"
	"github.com/sumd-project/sumd/internal/upstream"
)

// runSync runs one OCI sync pass on the database file.
func runSync(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadFlags(config.LoadSync, args, stderr, onlyFlags("sync"))
	if err != nil {
		return err
	}
	sc, err := loadSyncConfig(cfg.OCI) // before the log: a mistake must not create it
	if err != nil {
		return err
	}
	sources, err := parseSyncCrosscheck(cfg)
	if err != nil {
		return err
	}
	logger := config.NewLogger(cfg.Log, stderr)
	l, err := openLog(cfg.Database, openOptions{cmd: "sync", create: cfg.Create, logger: logger, minFree: cfg.DiskFloor.Bytes()}, stderr)
	if err != nil {
		return err
	}
	defer l.Close()
	// The same directory as sumd serve's default: never both at once,
	// since both hold the database lock.
	tmpDir, removeTmp, err := scratchDir("", cfg.DB)
	if err != nil {
		return syncTmpDirError(err, cfg.DB, "")
	}
	defer removeTmp()
	if err := openTmpDir(tmpDir, logger); err != nil {
		return syncTmpDirError(err, cfg.DB, tmpDir)
	}
	rl, err := syncCrosscheck(cfg, sources, l, logger)
	if err != nil {
		return err
	}
	s, err := sc.syncer(rl, tmpDir, nil, logger)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	before := treeSize(l)
	r, err := s.Sync(ctx)
	if errors.Is(l.Err(), tlog.ErrFatal) {
		return logStopped(l, err)
	}
	if err != nil {
		return withHint(fmt.Errorf("sync stopped: %w", err), "what was recorded stays recorded; run sumd sync again to carry on")
	}
	fmt.Fprintln(stdout, summary(r, treeSize(l)-before))
	return syncProblems(r)
}

// parseSyncCrosscheck checks the cross-check options of sumd sync, as
// parseUpstream does sumd serve's, and returns the proxies that reach the
// upstream checksum database.
func parseSyncCrosscheck(cfg *config.Sync) ([]upstream.Source, error) {
	if !cfg.Crosscheck {
		return nil, nil
	}
	if err := upstream.CheckPatterns(cfg.Private); err != nil {
		return nil, usageError(fmt.Errorf("private: %w", err), "use GOPRIVATE syntax: comma-separated path globs such as corp.example/*")
	}
	if cfg.Upstream == "" {
		return nil, nil
	}
	return parseSources("upstream", cfg.Upstream, cfg.UpstreamAuth, "https://athens.corp.example")
}

// syncCrosscheck returns what sumd sync records into: with -crosscheck, l
// behind a recorder that cross-checks public modules as sumd serve's does;
// otherwise l.
func syncCrosscheck(cfg *config.Sync, sources []upstream.Source, l *tlog.Log, logger *slog.Logger) (oci.Recorder, error) {
	c, err := newChecker(cfg.CrosscheckOptions, sources, cfg.UpstreamTimeout, cfg.DB, logger, nil)
	switch {
	case err != nil:
		return nil, err
	case c == nil:
		return l, nil
	}
	rec, err := upstream.NewRecorder(l, upstream.RecorderOptions{Checker: c, Logger: logger})
	if err != nil {
		return nil, err
	}
	return checkedLog{Log: l, rec: rec}, nil
}

// A syncConfig is the parsed sources and loaded keys of the OCI options,
// and the download budget of a pass (-sync-pass-budget).
type syncConfig struct {
	sources      []*oci.Source
	keys         []*oci.PublicKey
	maxPassBytes int64
}

// loadSyncConfig parses the sources and reads every key file, so that a
// mistake stops sumd before it starts.
func loadSyncConfig(o config.OCI) (*syncConfig, error) {
	sources, err := oci.ParseSources(o.Registry, o.Repository)
	if err != nil {
		return nil, usageError(err, "fix -registry or -repository; see docs/oci.md")
	}
	sc := &syncConfig{sources: sources, maxPassBytes: o.MaxPassBytes()}
	for _, f := range o.CosignKey {
		k, err := oci.ParseKey(f)
		if err != nil {
			return nil, withHint(err, "pass -cosign-key the cosign.pub of the key that signs the artifacts, as FILE or, bound to the repositories it signs, HOST[:PORT][/PATH]=FILE (docs/oci.md, Keys)")
		}
		sc.keys = append(sc.keys, k)
	}
	if err := oci.CheckKeyScopes(sources, sc.keys); err != nil {
		return nil, usageError(err, "bind each -cosign-key to a path some -registry reads; see docs/oci.md, Keys")
	}
	return sc, nil
}

// syncer returns a Syncer recording in l, which also keeps its state, and
// hashing zips in tmpDir.
func (sc *syncConfig) syncer(l oci.Recorder, tmpDir string, m *oci.Metrics, logger *slog.Logger) (*oci.Syncer, error) {
	return oci.NewSyncer(sc.options(l, tmpDir, m, logger))
}

// options are the oci.Options of syncer.
func (sc *syncConfig) options(l oci.Recorder, tmpDir string, m *oci.Metrics, logger *slog.Logger) oci.Options {
	return oci.Options{
		Sources: sc.sources, Keys: sc.keys, Log: l, TempDir: tmpDir,
		Remote: ociRemote(), Logger: logger, Metrics: m, MaxPassBytes: sc.maxPassBytes,
	}
}

// summary is the one line sumd sync prints: what each artifact came to,
// and where the next pass starts if this one spent its download budget.
func summary(r *oci.Report, added int64) string {
	var parts []string
	for _, o := range []oci.Outcome{oci.Recorded, oci.Present, oci.Unsigned, oci.BadSignature, oci.Tampered, oci.Malformed, oci.Invalid, oci.Conflict, oci.Retagged, oci.Refused, oci.Failed, oci.Ignored} {
		if n := r.Counts[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, o))
		}
	}
	parts = append(parts, fmt.Sprintf("%d unchanged since the last sync", r.Skipped))
	line := fmt.Sprintf("sync: %s; %d records added", strings.Join(parts, ", "), added)
	if r.Resume != "" {
		// Not a failure (status 0), but the registries were not all read.
		line += "; the download budget of the pass was spent at " + r.Resume + ": run sumd sync again to carry on from there"
	}
	return line
}

// syncProblems turns the conflicts and failures of a pass into exit status 1,
// naming each.
func syncProblems(r *oci.Report) error {
	switch {
	case len(r.Conflicts) > 0:
		return withHint(errors.Join(slices.Concat(r.Conflicts, r.Refused, r.Failures)...),
			"a recorded version never changes: publish the new content as a new version, and find out why this one was re-published")
	case len(r.Refused) > 0:
		return withHint(errors.Join(slices.Concat(r.Refused, r.Failures)...),
			"the upstream checksum database holds other hashes for these public versions, or none: find out who signed them and which content is right; publish your own modules under a -private path")
	case slices.ContainsFunc(r.Failures, oci.IsDenied):
		return withHint(errors.Join(r.Failures...), oci.DeniedHint+"; then run sumd sync again (what was recorded stays recorded)")
	case len(r.Failures) > 0:
		return withHint(errors.Join(r.Failures...),
			"some registries or artifacts could not be read; run sumd sync again once they can (what was recorded stays recorded)")
	}
	return nil
}

// prepareSync checks serve's sync options (registries, cosign keys) before
// the log is opened, so that a mistake never creates a database first. It
// returns nil when sync is off.
func prepareSync(cfg config.ServeSync) (*syncConfig, error) {
	if len(cfg.Registry) == 0 || cfg.SyncInterval == 0 {
		return nil, nil
	}
	return loadSyncConfig(cfg.OCI)
}

// serveSync is what sumd serve runs of the OCI sync prepared by
// prepareSync, hashing zips in tmpDir: nothing if sc is nil. It records
// through up's recorder, so that the cross-check applies to it as to the
// admin API.
func (sc *syncConfig) serveSync(cfg config.ServeSync, tmpDir string, up *upstreamSetup, reg prometheus.Registerer, logger *slog.Logger) *serve.Sync {
	if sc == nil {
		return nil
	}
	return &serve.Sync{
		Interval: cfg.SyncInterval, Registries: cfg.Registry,
		Syncer: func(l *tlog.Log) (serve.Syncer, error) {
			rl, err := up.syncLog(l)
			if err != nil {
				return nil, err
			}
			s, err := sc.syncer(rl, tmpDir, oci.NewMetrics(reg, cfg.SyncInterval), logger)
			return serveSyncer{s}, err
		},
	}
}

// checkedLog is the log as OCI sync records into it under sumd serve with
// a recorder: Add goes through the recorder's AddRecords, which
// cross-checks public modules as it does for the admin API's records,
// while lookups and the sync state are the log's own (a recorder's Lookup
// would fetch a missing version from upstream).
type checkedLog struct {
	*tlog.Log
	rec *upstream.Recorder
}

// Add records recs unless the cross-check refuses them: a version the
// upstream checksum database holds with other hashes, or not at all while
// its path is not private, is an error wrapping oci.ErrRefused. A version
// the log holds with other hashes is the log's *tlog.ConflictError, as
// from the log itself.
func (c checkedLog) Add(ctx context.Context, recs ...gosum.Record) ([]int64, error) {
	ids, _, err := c.rec.AddRecords(ctx, recs)
	var e *upstream.Error
	var conflict *tlog.ConflictError
	switch {
	case errors.As(err, &e) && e.Gone():
		return nil, fmt.Errorf("%w by the cross-check: %w", oci.ErrRefused, err)
	case errors.As(err, &conflict):
		return nil, conflict
	}
	return ids, err
}

// serveSyncer adapts an oci.Syncer to the serve lifecycle.
type serveSyncer struct{ s *oci.Syncer }

func (s serveSyncer) Sync(ctx context.Context) (*serve.SyncReport, error) {
	r, err := s.s.Sync(ctx)
	if r == nil {
		return nil, err
	}
	return serveReport(r), err
}

// serveReport is r as the status keeps it.
func serveReport(r *oci.Report) *serve.SyncReport {
	// Where the pass stopped names a registry, which the status does not
	// show: the server log has it (oci's warning, and the pass's line).
	sr := &serve.SyncReport{Outcomes: map[string]int{}, Unchanged: r.Skipped, Conflicts: r.Conflicts, Refused: r.Refused, Failures: r.Failures,
		BudgetSpent: r.Resume != "", Resume: r.Resume}
	for o, n := range r.Counts {
		sr.Outcomes[string(o)] = n
	}
	for _, p := range r.Places {
		sr.Places = append(sr.Places, serve.SyncPlace{Outcome: string(p.Outcome), Path: p.Path(), Catalog: p.Catalog, Unread: p.Unread, Others: p.Others})
	}
	return sr
}

// syncTmpDirError replaces the hint of err, the failure to make or open
// the temporary directory dir of sumd sync on the database db, which
// says to set -tmp-dir, an option sumd sync does not have: its directory
// is always the database file's name plus .tmp, or with PostgreSQL a new
// one under $TMPDIR.
func syncTmpDirError(err error, db, dir string) error {
	var ce *cliError
	if errors.As(err, &ce) {
		err = ce.err
	}
	if pgstore.IsURL(db) {
		return withHint(err, "sumd sync makes its temporary directory under $TMPDIR with PostgreSQL: set TMPDIR to a directory this user may write")
	}
	if dir == "" {
		dir = dbFile(db) + ".tmp"
	}
	if errors.Is(err, scratch.ErrInUse) {
		return withHint(err, "another sumd uses "+dir+", the temporary directory beside the database: stop it first")
	}
	return withHint(err, "sumd sync keeps its temporary files in "+dir+", beside the database (no option moves it): make it a directory only sumd writes to, moving away what is in its place")
}
