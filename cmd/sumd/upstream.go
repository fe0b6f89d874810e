package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/oci"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/upstream"
)

// upstreamSetup is the parsed upstream configuration, checked before the
// database is opened so that a typo never starts a half-configured server.
type upstreamSetup struct {
	sources    []upstream.Source
	crosscheck bool
	// checker is the cross-check (nil: none), built by runServe before
	// the log is opened, so that a bad key or state file changes nothing.
	checker *upstream.Checker
	// recorder is the recorder serverOps built (nil: none), which OCI
	// sync records through.
	recorder *upstream.Recorder
}

// parseUpstream checks the upstream options of cfg.
func parseUpstream(cfg *config.Serve) (*upstreamSetup, error) {
	u := &upstreamSetup{crosscheck: cfg.Crosscheck}
	if err := upstream.CheckPatterns(cfg.Record); err != nil {
		return nil, usageError(fmt.Errorf("record: %w", err), "use GOPRIVATE syntax: comma-separated path globs such as corp.example/*")
	}
	if err := upstream.CheckPatterns(cfg.Private); err != nil {
		return nil, usageError(fmt.Errorf("private: %w", err), "use GOPRIVATE syntax: comma-separated path globs such as corp.example/*")
	}
	if cfg.AdminTokenFile != "" {
		if _, err := admin.ReadTokenFile(cfg.AdminTokenFile); err != nil {
			return nil, withHint(namedFile("admin-token-file", err), secretHint(err, fmt.Sprintf("write a random token of %d bytes or more to the file, e.g. (umask 077; head -c 32 /dev/urandom | base64 > FILE)", admin.MinTokenLength)))
		}
	}
	if cfg.Upstream.Upstream == "" {
		// Without -upstream, the cross-check reaches the checksum database
		// at -crosscheck-url, as sumd sync's does (config.Sync.Validate).
		if cfg.Crosscheck && cfg.CrosscheckURL == "" {
			return nil, usageError(errors.New("crosscheck needs -upstream or -crosscheck-url"),
				"set -crosscheck-url to the upstream checksum database, or -upstream to the module proxies that reach it, e.g. -upstream https://athens.corp.example")
		}
		if cfg.UpstreamAuth != "" {
			return nil, usageError(errors.New("upstream-auth needs -upstream"), "set -upstream to your module proxy, e.g. -upstream https://athens.corp.example, or remove -upstream-auth")
		}
		return u, nil
	}
	var err error
	if u.sources, err = parseSources("upstream", cfg.Upstream.Upstream, cfg.UpstreamAuth, "https://athens.corp.example,file:///srv/mirror"); err != nil {
		return nil, err
	}
	// NewFetcher reads each credential file once: done here, a missing or
	// unreadable one refuses the start before a first start has created
	// the key and the database (serverOps builds the Fetcher in use).
	check := upstream.FetcherOptions{Sources: u.sources, Logger: slog.New(slog.DiscardHandler)}
	if _, err := upstream.NewFetcher(check); err != nil {
		return nil, withHint(err, secretHint(err, "check -upstream and -upstream-auth"))
	}
	if err := upstream.CheckTrees(u.sources); err != nil {
		return nil, withHint(err, "check the file:// path in -upstream (file:///absolute/path of a GOPROXY file tree); one on a network file system must be mounted before sumd starts (systemd: RequiresMountsFor=)")
	}
	return u, nil
}

// parseSources parses list, the module proxies (GOPROXY syntax) of the
// option called option, and gives them the credentials auth, the value of
// option-auth; example is the list its hint shows. sumd serve, add and
// sync parse -upstream with it, sumd verify -recheck.
func parseSources(option, list, auth, example string) ([]upstream.Source, error) {
	sources, err := upstream.ParseList(list)
	if err != nil {
		return nil, usageError(fmt.Errorf("%s: %w", option, err), "give module proxy URLs as in GOPROXY, e.g. -"+option+" "+example)
	}
	if err := upstream.ApplyAuth(sources, auth); err != nil {
		return nil, authError(option+"-auth", err)
	}
	return sources, nil
}

// serverOps returns what the HTTP server serves: the log itself, or the
// log behind a recorder that fetches unknown versions from upstream; and
// the admin API handler, if configured.
//
// ctx is the server's: the check of -upstream's http(s) proxies
// (Fetcher.Probe) runs in the background until it ends, warning of a URL
// that answers as no GOPROXY does, without delaying the start.
func (u *upstreamSetup) serverOps(ctx context.Context, cfg *config.Serve, l *tlog.Log, m *upstream.Metrics, logger *slog.Logger) (sumdb.ServerOps, http.Handler, error) {
	if len(u.sources) == 0 && !cfg.AdminAPI() && u.checker == nil {
		return l, nil, nil
	}
	opts := upstream.RecorderOptions{Record: cfg.Record, NegativeTTL: cfg.NegativeTTL, MaxFetches: cfg.UpstreamParallel,
		MaxClientFetches: cfg.UpstreamPerClient, Client: fetchClient, Logger: logger, Metrics: m}
	if len(u.sources) > 0 {
		f, err := upstream.NewFetcher(upstream.FetcherOptions{Sources: u.sources, Timeout: cfg.UpstreamTimeout, TempDir: cfg.TmpDir, MinFree: cfg.DiskFloor.Bytes(), Logger: logger, Metrics: m})
		if err != nil {
			return nil, nil, withHint(err, "check -upstream and -upstream-auth")
		}
		opts.Fetcher = f
		logger.Info("recording unknown versions from upstream", "upstream", upstream.FormatList(u.sources), "record", cmp.Or(cfg.Record, "all paths"))
		go f.Probe(ctx)
	}
	opts.Checker = u.checker
	rec, err := upstream.NewRecorder(l, opts)
	if err != nil {
		return nil, nil, err
	}
	u.recorder = rec
	var adm http.Handler
	if cfg.AdminAPI() {
		// The access layer in front authenticates every admin request;
		// parseUpstream has read the admin token file.
		adm = admin.New(rec, admin.Options{Authenticated: true, TempDir: cfg.TmpDir, MinFree: cfg.DiskFloor.Bytes(), Logger: logger, Snapshot: l.Snapshot})
	}
	return rec, adm, nil
}

// fetchClient is the recorder's client of a request (-upstream-per-client):
// the connection's peer, which the access layer (or the read listener)
// put in the context, and whether the credential is an admin's.
func fetchClient(ctx context.Context) (addr string, admin bool) {
	p, ok := access.FromContext(ctx)
	return access.Remote(ctx), ok && p.Role >= access.Admin
}

// newChecker returns the cross-check o configures for the database db,
// reaching the upstream checksum database at -crosscheck-url or through
// sources; nil if -crosscheck is off. sumd serve and sumd sync share it.
func newChecker(o config.CrosscheckOptions, sources []upstream.Source, timeout time.Duration, db string, logger *slog.Logger, m *upstream.Metrics) (*upstream.Checker, error) {
	if !o.Crosscheck {
		return nil, nil
	}
	c, err := upstream.NewChecker(upstream.CheckerOptions{
		Key: cmp.Or(o.CrosscheckKey, upstream.SumGolangOrgKey), URL: o.CrosscheckURL,
		Sources: sources, Private: o.Private, FailOpen: o.CrosscheckOpen, Timeout: timeout,
		StateFile: cmp.Or(o.CrosscheckState, crosscheckState(db)),
		Logger:    logger, Metrics: m,
	})
	if err != nil {
		return nil, withHint(err, "check -crosscheck-key, -crosscheck-url and -crosscheck-state (a file this process may create and write)")
	}
	return c, nil
}

// syncLog returns what OCI sync records into: l behind the recorder
// serverOps built, so that the cross-check applies to synced versions, or l
// itself if there is none (and so no cross-check). serve.Run builds the
// surface before the syncer; a cross-check without its recorder is an
// error, never a sync that silently records unchecked.
func (u *upstreamSetup) syncLog(l *tlog.Log) (oci.Recorder, error) {
	switch {
	case u.recorder != nil:
		return checkedLog{Log: l, rec: u.recorder}, nil
	case u.crosscheck:
		return nil, errors.New("OCI sync: -crosscheck is set, but the recorder that cross-checks was not built before the syncer")
	}
	return l, nil
}

// writeTimeout leaves a first lookup the recorder's deadline for its
// fetch and cross-check (upstream.FetchDeadline: three upstream requests'
// worth and half a minute), and half a minute more to record the version
// and answer, so that a fetch cut at the deadline still reaches the go
// command as a 504 with its reason rather than as a connection cut.
func writeTimeout(cfg *config.Serve) time.Duration {
	if cfg.Upstream.Upstream == "" {
		return time.Minute
	}
	return upstream.FetchDeadline(cfg.UpstreamTimeout) + 30*time.Second
}
