package serve

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/sumd-project/sumd/internal/tuf"
)

// TUF configures the TUF repository a server publishes its keys through.
type TUF struct {
	Dir        string // the repository (sumd serve -tuf)
	OnlineKeys string // directory of the snapshot and timestamp keys
}

// tufPart is the served TUF repository, its re-signer and what the status
// shows of it.
type tufPart struct {
	handler  *tuf.Handler
	resigner *tuf.Resigner
	repo     *tuf.Repo
	online   string // the online keys' directory
	now      func() time.Time
	logger   *slog.Logger
	// name and vkeys are the served log's, which the repository must
	// publish; set by expect before serving, empty without a log.
	name  string
	vkeys []string

	mu        sync.Mutex
	status    *tuf.Status // the repository as last read; guarded by mu
	published string      // what it publishes unlike the log, "" if nothing; guarded by mu
	pubErr    error       // why the database it publishes cannot be read; guarded by mu
	readAt    time.Time   // when status was read; guarded by mu
	readErr   error       // why it could not be; guarded by mu
	signErr   error       // the last re-signing's failure; guarded by mu
	signedAt  time.Time   // the last successful re-signing; guarded by mu
	failingAt time.Time   // the first failure since signedAt, if signErr; guarded by mu
	offline   []string    // root and targets key files in online, as last listed; guarded by mu
}

// TUF health thresholds. The timestamp lives a day and is renewed every six
// hours; two hours before its expiry something has been wrong for 16 hours.
// The offline roles need a ceremony, announced as the re-signer does.
const (
	tufOnlineWarning  = 2 * time.Hour
	tufOfflineWarning = tuf.ExpiryWarning
)

// tufStatusMaxAge bounds how stale the shown repository state may be, and
// so how often a stream of status requests reads it.
var tufStatusMaxAge = 5 * time.Second

// openTUF opens the repository of cfg (nil: none) and brings its online
// metadata up to date, refusing to start if it cannot, since every client
// would fail within a day.
func openTUF(cfg *TUF, reg prometheus.Registerer, logger *slog.Logger) (*tufPart, error) {
	if cfg == nil {
		return nil, nil
	}
	repo, err := tuf.Open(cfg.Dir)
	if err != nil {
		return nil, withHint(err, "pass -tuf the repository sumd tuf init created")
	}
	keys := []string{cfg.OnlineKeys}
	if err := repo.CheckOnlineKeys(keys); err != nil {
		return nil, withHint(err, "sumd serve -tuf re-signs the snapshot and timestamp with the online keys in "+cfg.OnlineKeys+" (-tuf-online-keys); see docs/keys.md")
	}
	// A tick, not SignOnline alone: it logs the files it replaced because
	// they do not verify, which the next tick no longer finds.
	resigner := &tuf.Resigner{Repo: repo, KeyDirs: keys, Logger: logger, Metrics: tuf.NewMetrics(reg)}
	if err := resigner.Tick(); err != nil {
		return nil, withHint(err, "the TUF repository does not verify; see docs/keys.md")
	}
	h, err := tuf.NewHandler(cfg.Dir, logger)
	if err != nil {
		return nil, err
	}
	logger.Info("serving TUF repository", "dir", cfg.Dir, "path", tuf.Prefix, "online_keys", cfg.OnlineKeys)
	t := &tufPart{
		handler:  h,
		resigner: resigner,
		repo:     repo,
		online:   cfg.OnlineKeys,
		now:      time.Now,
		logger:   logger,
		signedAt: time.Now(),
	}
	t.offline = t.offlineKeys(nil)
	return t, nil
}

// offlineKeys lists the root and targets key files in the online keys'
// directory, warning in the server log when they differ from was (those
// last listed): never read there, they are still keys a thief of this
// host could publish keys of their own with, so they belong offline.
func (t *tufPart) offlineKeys(was []string) []string {
	files, err := tuf.OfflineKeyFiles(t.online)
	if err != nil {
		t.logger.Warn("tuf: cannot check the online keys' directory for offline keys", "err", err)
		return was
	}
	if len(files) > 0 && !slices.Equal(files, was) {
		t.logger.Warn("tuf: root or targets keys are in the online keys' directory, where the server signs; sumd serve does not use them: move them offline (see docs/keys.md)",
			"dir", t.online, "files", files)
	}
	return files
}

// part re-signs the online metadata every minute. A failed re-signing is
// logged, shown in the status and retried: the timestamp outlives many
// attempts, and the log serves on without TUF.
func (t *tufPart) part() Part {
	return Part{
		Name:   "TUF re-signer",
		Report: t.report,
		Run: func(ctx context.Context) error {
			tick := time.NewTicker(cmp.Or(t.resigner.Interval, tuf.ResignInterval))
			defer tick.Stop()
			for {
				t.signed(t.resigner.Tick())
				select {
				case <-ctx.Done():
					return nil
				case <-tick.C:
				}
			}
		},
	}
}

// signed keeps the outcome of a re-signing for the status.
func (t *tufPart) signed(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case err == nil:
		t.signedAt = t.now()
	case t.signErr == nil:
		t.failingAt = t.now()
	}
	t.signErr = err
}

// report adds the repository's versions and expiries, and its problems.
func (t *tufPart) report(s *Status) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if now.Sub(t.readAt) >= tufStatusMaxAge {
		was := t.readErr
		t.status, t.readErr = t.repo.Status()
		t.readAt = now
		t.offline = t.offlineKeys(t.offline)
		wrong, wasPub := t.published, t.pubErr
		if t.readErr == nil {
			t.published, t.pubErr = t.mismatch()
		}
		switch {
		case t.pubErr != nil && (wasPub == nil || wasPub.Error() != t.pubErr.Error()):
			t.logger.Error("tuf: the published database cannot be read; clients that learn it fail", "err", t.pubErr)
		case t.pubErr == nil && t.published != "" && t.published != wrong:
			t.logger.Error("tuf: the repository does not publish the log served; clients that learn it fail", "problem", t.published)
		case t.readErr == nil && t.pubErr == nil && wasPub != nil:
			t.logger.Info("tuf: the published database can be read again")
		}
		// The status points at the server log: it must hold the reason
		// when the problem shows, not at the next re-signing.
		switch {
		case t.readErr != nil && (was == nil || was.Error() != t.readErr.Error()):
			t.logger.Error("tuf: the repository cannot be read", "err", t.readErr)
		case t.readErr == nil && was != nil:
			t.logger.Info("tuf: the repository can be read again")
		}
	}
	s.TUF = &TUFState{LastSigned: t.signedAt.UTC()}
	if t.signErr != nil {
		s.problem("tuf", "re-signing the online metadata has failed since %s, last succeeded at %s (see the server log)",
			t.failingAt.UTC().Format(time.RFC3339), t.signedAt.UTC().Format(time.RFC3339))
	}
	if len(t.offline) > 0 {
		names := make([]string, len(t.offline))
		for i, f := range t.offline {
			names[i] = filepath.Base(f)
		}
		s.problem("tuf", "root or targets keys are in the online keys' directory (%s): move them offline", strings.Join(names, ", "))
	}
	if t.readErr != nil {
		s.problem("tuf", "the repository cannot be read (see the server log)")
		return
	}
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		v, ok := t.status.Versions[role]
		if !ok {
			continue
		}
		exp := t.status.Expires[role]
		s.TUF.Roles = append(s.TUF.Roles, TUFRole{Role: role, Version: v, Expires: exp.UTC()})
		warn, fix := tufOnlineWarning, "sumd serve re-signs it: see the server log"
		switch role {
		case metadata.ROOT:
			warn, fix = tufOfflineWarning, "renew it with sumd tuf rotate-root"
		case metadata.TARGETS:
			warn, fix = tufOfflineWarning, "renew it with sumd tuf publish"
		}
		if exp.Sub(now) < warn {
			when := Until(exp, now) // "in 3 days", "expired 2h ago"
			if now.Before(exp) {
				when = "expires " + when
			}
			s.problem("tuf", "the %s metadata %s: %s", role, when, fix)
		}
	}
	if t.published != "" {
		s.problem("tuf", "%s", t.published)
	}
	if n := len(t.status.Problems); n > 0 {
		s.problem("tuf", "metadata files that do not verify are ignored: %d (see the server log)", n)
	}
}

// expect makes the repository's status compare what it publishes with the
// log of name signing with vkeys (oldest first).
func (t *tufPart) expect(name string, vkeys []string) {
	t.name, t.vkeys = name, vkeys
}

// mismatch says how the database the repository publishes differs from
// the log served, "" if it does not: clients would take the wrong name, or
// a key whose signatures never come for their GOSUMDB (the oldest, sumd
// tuf gosumdb). Only key names and hashes are shown: the status is
// anonymous, so a failure to read the database (whose error names local
// files) is a fixed text, and the error is returned for the server log.
func (t *tufPart) mismatch() (string, error) {
	if t.name == "" {
		return "", nil
	}
	pub, err := t.repo.Published()
	switch {
	case err != nil:
		return "the published database cannot be read (see the server log)", err
	case pub.Name != t.name:
		return fmt.Sprintf("the repository publishes database %s, not %s: pass -tuf the repository of this log", pub.Name, t.name), nil
	}
	var msgs []string
	if extra := keysNotIn(pub.VerifierKeys, t.vkeys); len(extra) > 0 {
		msgs = append(msgs, "it publishes keys the log does not sign with ("+strings.Join(extra, ", ")+")")
	}
	if missing := keysNotIn(t.vkeys, pub.VerifierKeys); len(missing) > 0 {
		msgs = append(msgs, "it does not publish keys the log signs with ("+strings.Join(missing, ", ")+")")
	}
	if len(msgs) == 0 {
		return "", nil
	}
	return "the repository does not publish the log's keys: " + strings.Join(msgs, "; ") + ": publish them with sumd tuf publish", nil
}

// keysNotIn lists the keys of a missing from b, by name and key hash.
func keysNotIn(a, b []string) []string {
	var out []string
	for _, k := range a {
		if !slices.Contains(b, k) {
			name, rest, _ := strings.Cut(k, "+")
			hash, _, _ := strings.Cut(rest, "+")
			out = append(out, name+"+"+hash)
		}
	}
	return out
}

// TUFState is what the status shows of the TUF repository.
type TUFState struct {
	Roles      []TUFRole `json:"roles"`       // root, targets, snapshot, timestamp
	LastSigned time.Time `json:"last_signed"` // the last successful re-signing check
}

// A TUFRole is the version and expiry of one role's metadata.
type TUFRole struct {
	Role    string    `json:"role"`
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
}

// mounts returns the repository's handler at /tuf/, if there is one, for
// the root server.Server to serve: with its request log, its metrics and
// its cap on request bodies, as every route.
func (t *tufPart) mounts(private bool) map[string]http.Handler {
	if t == nil {
		return nil
	}
	t.handler.Private = private
	return map[string]http.Handler{tuf.Prefix: t.handler}
}
