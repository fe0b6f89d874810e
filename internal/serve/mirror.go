package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumd-project/sumd/internal/mirror"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// A Mirror is a mirrored log the server serves at /sumdb/<origin name>/
// beside its own, and follows in the background (internal/mirror).
type Mirror struct {
	// Open opens the mirror's log and its follower, and names the
	// credentials the follower sends to its origin as -auth does
	// (bearer:FILE, basic:USER:FILE, netrc:FILE; "": none), never the
	// secret itself. Run calls it before opening the server's own log,
	// and closes the mirror's log before its own.
	Open func() (f *mirror.Follower, creds string, err error)
	// Interval is the wait after a round of following the origin ends
	// before the next one starts: a long catch-up is not followed at
	// once by another round.
	Interval time.Duration
	// Problems, if set, reports the mirror's own problems for the status
	// and /healthz (degraded), as ProblemReporter does: the client
	// certificate it presents to its origin expiring. Called after Open.
	Problems func() []string
	// ClientCertExpiry, if set, is when the client certificate the
	// follower presents to its origin expires (zero: none), exported as
	// sumd_mirror_client_certificate_expiry_timestamp_seconds. Called
	// after Open.
	ClientCertExpiry func() time.Time
}

// openMirrors opens the mirrors, and returns them with their parts. It
// runs before the server's own log is opened, or created on a first
// start, so that a mirror the server may not serve refuses the start
// before it makes anything.
func (b *builder) openMirrors(cfg Config) ([]*mirror.Follower, []Part, error) {
	var fs []*mirror.Follower
	var parts []Part
	for _, m := range cfg.Mirrors {
		f, creds, err := m.Open()
		if err != nil {
			return nil, nil, err
		}
		b.onClose(f.Log().Close)
		b.watch(f.Log(), "the sequencer of the mirror of "+f.Name(), mirrorHint)
		if err := servedPrivately(cfg, f.Name(), creds); err != nil {
			return nil, nil, err
		}
		if slices.ContainsFunc(fs, func(o *mirror.Follower) bool { return o.Name() == f.Name() }) {
			return nil, nil, withHint(fmt.Errorf("two mirrors of %s are configured", f.Name()), "serve one mirror of each origin")
		}
		if err := exportClientCert(cfg.Registry, f.Name(), m.ClientCertExpiry); err != nil {
			return nil, nil, err
		}
		fs = append(fs, f)
		parts = append(parts, mirrorPart(f, m, cfg.Logger))
	}
	return fs, parts, nil
}

// exportClientCert exports expiry, that of the client certificate the
// mirror of origin presents, if it presents one: the origin refuses an
// expired one, which an alert should foresee as it does the server's own
// (sumd_tls_certificate_expiry_timestamp_seconds).
func exportClientCert(reg *prometheus.Registry, origin string, expiry func() time.Time) error {
	if reg == nil || expiry == nil || expiry().IsZero() {
		return nil
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "sumd", Subsystem: "mirror", Name: "client_certificate_expiry_timestamp_seconds",
		Help:        "When the client certificate the mirror presents to its origin expires (Unix time); its files are read again when they change.",
		ConstLabels: prometheus.Labels{"origin": origin},
	}, func() float64 { return float64(expiry().Unix()) })
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("failed to export the client certificate's expiry of the mirror of %s: %w", origin, err)
	}
	return nil
}

// servedPrivately refuses the mirror of name, which reads its origin with
// creds, unless every client must authenticate to this server: the origin
// asks for them because its data is private, and the mirror would hand its
// copy to anyone, and send anyone's lookups of versions it lacks to the
// origin with those credentials. The read listener serves without the
// access layer, so it counts as anonymous whatever the layer asks.
func servedPrivately(cfg Config, name, creds string) error {
	if creds == "" || cfg.Access.Required() && cfg.ReadListen == "" {
		return nil
	}
	return withHint(fmt.Errorf("the mirror of %s reads its origin with credentials (%s), but this server serves it to clients without any: "+
		"it would give them the origin's private data, and send their lookups to the origin with those credentials", name, creds),
		"ask every client for credentials, as the origin asks this mirror: -read-auth basic or bearer with -read-auth-file, or -tls-client-roles; "+
			"and no -read-listen, which serves without them")
}

// ownMirror refuses a mirror among fs of the server's own log, own.
func ownMirror(fs []*mirror.Follower, own string) error {
	for _, f := range fs {
		if f.Name() == own {
			return withHint(fmt.Errorf("a mirror of %s is configured, but that is this server's own log", own),
				"a server serves its own log and mirrors of others: drop the mirror, or serve it with -mirror-only")
		}
	}
	return nil
}

// mirrorHint is the hint for a mirror whose log stopped for good.
const mirrorHint = "start sumd serve again: opening the mirror's database re-verifies it and carries on from what is durable"

// mirrorPart follows the origin of f every m.Interval. A round that fails
// (origin unreachable, data refused) is logged and shown in the status,
// with m's own problems, and the mirror keeps serving what it holds: the
// server stops only if the mirror's log does (a storage failure).
func mirrorPart(f *mirror.Follower, m Mirror, logger *slog.Logger) Part {
	l := f.Log()
	return Part{
		Name: "mirror of " + f.Name(),
		Hint: mirrorHint,
		Report: func(s *Status) {
			st := f.Status()
			s.Mirrors = append(s.Mirrors, st)
			if st.Problem != "" {
				s.problem("mirror "+st.Name, "%s", st.Problem)
			}
			if m.Problems != nil {
				for _, p := range m.Problems() {
					s.problem("mirror "+st.Name, "%s", p)
				}
			}
			select {
			case <-l.Done():
				s.problem("mirror "+st.Name, "its database stopped after a storage failure; the server is stopping")
			default:
			}
		},
		Run: func(ctx context.Context) error {
			for {
				if f.Online() {
					syncOnce(ctx, f, logger)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-l.Done():
					return l.Err()
				case <-time.After(m.Interval):
				}
			}
		},
	}
}

// syncOnce runs one round and logs it: SECURITY refusals are logged by the
// follower itself.
func syncOnce(ctx context.Context, f *mirror.Follower, logger *slog.Logger) {
	res, err := f.Sync(ctx)
	switch {
	case ctx.Err() != nil || mirror.IsSecurity(err):
	case mirror.IsSelection(err):
		// The round followed the origin: only the lookups of the go.sum
		// files' versions were skipped, which the operator must fix.
		logger.Error("a mirror followed its origin but could not read its go.sum files (-modules): it looked up none of their versions",
			"origin", f.Name(), "tree_size", res.To.N, "was", res.From.N, "records", res.Records, "err", err)
	case err != nil:
		level := slog.LevelError
		if sumdbclient.IsFetchError(err) || mirror.IsBehind(err) {
			level = slog.LevelWarn
		}
		logger.Log(ctx, level, "a mirror could not follow its origin; it serves what it holds", "origin", f.Name(), "err", err)
	case res.To.N != res.From.N:
		logger.Info("a mirror followed its origin", "origin", f.Name(), "tree_size", res.To.N, "was", res.From.N,
			"records", res.Records, "duration", res.Duration.Round(time.Millisecond))
	}
}

// databases routes a request to the server of the database its path
// names: each mirror under /sumdb/<origin name>/, the rest to root, which
// serves the database called name (the server's own, or a mirror-only
// server's first mirror). The longest name wins, since names may contain
// slashes and nest (corp.example, corp.example/sumdb): the access layer
// judges a path by the same rule. Both listeners route with it.
type databases struct {
	root  *server.Server
	under []prefixed // every database's /sumdb/<name>/ root, the longest first
}

// prefixed is a database's server and its /sumdb/<name>/ root.
type prefixed struct {
	prefix string
	srv    *server.Server
}

// newDatabases routes to root, the database called name, and the mirrors'
// servers ms, by origin name.
func newDatabases(root *server.Server, name string, ms map[string]*server.Server) *databases {
	d := &databases{root: root, under: []prefixed{{"/sumdb/" + name + "/", root}}}
	for name, srv := range ms {
		d.under = append(d.under, prefixed{"/sumdb/" + name + "/", srv})
	}
	slices.SortFunc(d.under, func(a, b prefixed) int { return cmp.Compare(len(b.prefix), len(a.prefix)) })
	return d
}

// pick returns the server of the database path names.
func (d *databases) pick(path string) *server.Server {
	if len(d.under) > 1 && strings.HasPrefix(path, "/sumdb/") {
		for _, m := range d.under {
			if strings.HasPrefix(path, m.prefix) {
				return m.srv
			}
		}
	}
	return d.root
}

func (d *databases) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.pick(r.URL.Path).ServeHTTP(w, r)
}

// errNoLog is the refusal of a server with neither a log nor a mirror.
var errNoLog = errors.New("nothing to serve: no log of its own and no mirror")
