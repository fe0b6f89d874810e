// Package mirror keeps a verified copy of another checksum database — a
// sumd, sum.golang.org, or another mirror — and serves it: a read replica
// of a company's sumd, or sum.golang.org inside a network that cannot reach
// it.
//
// A mirror trusts only its origin's verifier keys. A Follower fetches the
// origin's signed head, its hash tiles and its records (every record, or
// only those a Selection names) through internal/sumdbclient, and stores
// them in a verifier-only tlog.Log with Extend and, when far behind, Stage
// (see internal/tlog): the log verifies everything against the signed head
// before it stores anything. So a mirror only ever moves forward along one
// consistent history; a head that is not provably consistent with the one
// it holds (a fork, a rollback), a bad signature, or a tile or record that
// does not hash to the signed head is refused as a *SecurityError: nothing
// is stored, the last good head keeps being served, and a SECURITY log
// line quotes both heads.
//
// # Steps
//
// A round (Follower.Sync) moves the mirror to the origin's latest head in
// steps of at most Options.Step records, each one commit: one Extend when
// the head is near, else the Stage procedure (skeleton, level-0 tiles in
// order, a last Extend), which resumes after a crash or SIGKILL where the
// last commit left it. The origin signs only the heads it serves, so a
// mirror far behind cannot stop at heads between; staging is how it
// bounds both memory and the work a crash loses.
//
// # Serving
//
// Ops serves the mirror through internal/server: the log's reads, and a
// lookup of a version the mirror lacks forwarded to the origin, verified,
// stored and answered (a 404 saying the mirror is offline, and how old its
// head is, when the origin cannot be reached).
//
// # Bundles
//
// Export writes what a mirror holds from one head to another into one file
// (a tar, see bundle.go and docs/mirrors.md); Import verifies a whole
// bundle before it stores any of it. That is how a mirror crosses an air
// gap.
package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/tlog"
)

// DefaultStep is the records a mirror adds per commit. Measured: smaller
// steps pay a fixed cost per commit (the staged head's checks, an fsync),
// larger ones make bbolt's transaction slower per record (its nodes split
// only at commit). At 16,384 a step holds about 3 MiB of records and
// 0.5 MiB of tiles in memory; three are in flight (two fetched ahead).
const DefaultStep = 1 << 14

// Config is what a mirror's database remembers about where it comes from,
// so that `sumd serve -mirror DB` needs nothing else. It is kept in the
// database's auxiliary state (never served).
type Config struct {
	// URL is the origin's base URL; empty for a mirror fed by bundles only.
	URL string `json:"url,omitempty"`
	// VerifierKeys are the origin's verifier keys.
	VerifierKeys []string `json:"verifier_keys"`
	// Modules, if set, make the mirror partial: entries ending in ".sum"
	// are go.sum files, the others module path patterns (GOPRIVATE
	// syntax). See Selection.
	Modules []string `json:"modules,omitempty"`
	// Partial makes the mirror partial without Modules: a partial
	// mirror's bundle was imported into it. See Config.partial.
	Partial bool `json:"partial,omitempty"`
	// Auth names the credentials sent to the origin, as sumd's clients
	// take them (-auth: none, basic:USER:FILE, bearer:FILE, netrc[:FILE];
	// "": the go command's .netrc): files, never the secrets themselves.
	Auth string `json:"auth,omitempty"`
	// ClientCert and ClientKey are the files of the client certificate
	// presented to the origin (-client-cert, -client-key): paths, never
	// the key itself, read again by each run.
	ClientCert string `json:"client_cert,omitempty"`
	ClientKey  string `json:"client_key,omitempty"`
	// ReadWith, once set, names the credentials (as Auth and ClientCert
	// do: files, never secrets) the mirror's data was first read with.
	// It stays when the mirror forgets them (-auth none, -client-cert
	// none, an origin on another host): the data copied with them does
	// not become public, and sumd serve keeps refusing to serve it to
	// anonymous clients. Only a new mirror starts without it.
	ReadWith string `json:"read_with,omitempty"`
}

// ReadWithBundle is ReadWith in a mirror that imported a private mirror's
// bundle (BundleHeader.Private): it holds none of the credentials, but
// the data they read.
const ReadWithBundle = "a private mirror's bundle"

const (
	auxConfig  = tlog.AuxMirrorConfig // sumd copy carries it
	auxChecked = "mirror/checked"     // when the held head was last known to be the origin's latest
)

// ErrNewerConfig is ReadConfig's answer for a configuration holding a
// field this sumd does not know: dropped, it might have made the mirror
// private, or changed how it reads its origin.
var ErrNewerConfig = errors.New("the mirror configuration was written by a newer sumd")

// maxConfig caps the stored configuration.
const maxConfig = 1 << 20

// An AuxReader reads auxiliary state: a *tlog.Log, or a store not yet
// opened as one (*tlog.BoltStore).
type AuxReader interface {
	Aux(ctx context.Context, key string) ([]byte, error)
}

// ReadConfig returns the configuration stored in a mirror's database, or
// nil if there is none. One that holds a field this sumd does not know is
// refused (ErrNewerConfig), not read without it; one that is not as
// WriteConfig writes it is ErrCorrupt (see decodeConfig).
func ReadConfig(ctx context.Context, l AuxReader) (*Config, error) {
	data, err := l.Aux(ctx, auxConfig)
	if err != nil || data == nil {
		return nil, err
	}
	return decodeConfig(data)
}

// private reports whether a mirror with configuration c (nil: none) holds
// data read with credentials, as sumd serve decides it (serve's
// servedCreds): credentials remembered (but none, or the go command's
// .netrc taken by default) or recorded in ReadWith.
func (c *Config) private() bool {
	return c != nil && (c.ReadWith != "" || c.ClientCert != "" || c.Auth != "" && c.Auth != "none")
}

// partial reports whether a mirror with configuration c (nil: none) holds
// only some records, and so may import a partial mirror's bundle.
func (c *Config) partial() bool {
	return c != nil && (len(c.Modules) > 0 || c.Partial)
}

// WriteConfig stores c in the mirror's log.
func WriteConfig(ctx context.Context, l *tlog.Log, c *Config) error {
	data, err := encodeConfig(c)
	if err != nil {
		return err
	}
	return l.SetAux(ctx, auxConfig, data)
}

// encodeConfig encodes c as WriteConfig stores it, refusing what
// ReadConfig would refuse to read back: JSON escapes some characters of a
// string in six bytes, so a configuration read within maxConfig may be
// written beyond it.
func encodeConfig(c *Config) ([]byte, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("failed to encode the mirror configuration: %w", err)
	}
	if len(data) > maxConfig {
		return nil, fmt.Errorf("mirror configuration is %d bytes, more than %d", len(data), maxConfig)
	}
	return data, nil
}

// Checked returns when the head the mirror holds was last known to be its
// origin's latest (zero if never), and so how stale it may be.
func Checked(ctx context.Context, l *tlog.Log) (time.Time, error) {
	data, err := l.Aux(ctx, auxChecked)
	if err != nil || data == nil {
		return time.Time{}, err
	}
	var t time.Time
	if err := t.UnmarshalText(data); err != nil {
		return time.Time{}, fmt.Errorf("failed to read when the mirror last checked its origin: %w", err)
	}
	return t, nil
}

func setChecked(ctx context.Context, l *tlog.Log, t time.Time) error {
	data, _ := t.UTC().MarshalText()
	return l.SetAux(ctx, auxChecked, data)
}

// Options configure a Follower.
type Options struct {
	// Log is the mirror: a verifier-only log of the origin.
	Log *tlog.Log
	// Client fetches from the origin; nil for a mirror that cannot reach it
	// (fed by bundles): Sync fails, and lookups it lacks are offline 404s.
	Client *sumdbclient.Client
	// Verifiers are the origin's verifier keys.
	Verifiers *sumdbclient.Verifiers
	// Select, if set, makes the mirror partial: every hash tile, but only
	// the records it selects. nil: every record.
	Select *Selection
	// Partial says, for the status, that the mirror holds only some
	// records though Select is nil: a partial bundle made it
	// (Config.Partial).
	Partial bool
	// Step caps the records added per commit (default DefaultStep).
	Step int64
	// Parallel caps concurrent requests to the origin (default 8).
	Parallel int
	// Logger receives progress and SECURITY lines; nil means slog.Default.
	Logger *slog.Logger
	// Metrics, if set, receives the mirror's metrics.
	Metrics *Metrics
	// Progress, if set, is called after each step with the records done
	// and to do in this round. It is called from one goroutine at a time.
	Progress func(done, total int64)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AfterFirstStore, if set, runs once in a round, right after its
	// first commit; its error fails the round (what it stored stays). A
	// round that stores nothing, its stores refused or failed included,
	// does not run it: before the log has verified what the origin sent
	// there is nothing to tell a mistyped origin from the right one. sumd
	// mirror saves there the options the round runs with, so that a run
	// killed after its first commit keeps them, and one that fails
	// before stores none of them; a kill in the milliseconds between that
	// commit and the save loses them, as when they were saved after the
	// round.
	AfterFirstStore func(ctx context.Context) error
	// ForwardTimeout bounds a forwarded lookup whole: the origin's answer,
	// the tiles that prove it, and the wait for the rounds' turn (default
	// DefaultForwardTimeout).
	ForwardTimeout time.Duration
	// MaxForwards caps the lookups forwarded at once; one more gets a 503
	// with Retry-After (default DefaultMaxForwards).
	MaxForwards int
}

// DefaultForwardTimeout is the default Options.ForwardTimeout: a go
// command waiting on an origin that hangs gets an answer in time.
const DefaultForwardTimeout = 20 * time.Second

// DefaultMaxForwards is the default Options.MaxForwards, as many as the
// first lookups a primary fetches from upstream at once
// (upstream.DefaultMaxFetches): a cold build on a 16-core machine goes
// through, while the requests to the origin and the goroutines waiting on
// them stay bounded.
const DefaultMaxForwards = 16

func (o Options) withDefaults() Options {
	if o.Step <= 0 {
		o.Step = DefaultStep
	}
	// A step holds whole level-0 tiles.
	o.Step = max(o.Step>>8<<8, 256)
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ForwardTimeout <= 0 {
		o.ForwardTimeout = DefaultForwardTimeout
	}
	if o.MaxForwards <= 0 {
		o.MaxForwards = DefaultMaxForwards
	}
	return o
}

// A Follower moves a mirror forward along its origin's history. Its
// methods are safe for concurrent use: rounds and forwarded lookups take
// turns, one step at a time.
type Follower struct {
	opts Options
	log  *tlog.Log
	name string
	st   *state
	// turn is held (a token sent) by each step of a round while it plans
	// and while it stores, never while it fetches from the origin, and by
	// each forwarded lookup while it extends the mirror; a channel, so
	// that a forwarded lookup waits for it no longer than its deadline.
	turn     chan struct{}
	forwards chan struct{} // a token per forwarded lookup in flight
}

// MaxTreeSize is the largest origin a mirror follows: 2^32 records, about
// 80 times sum.golang.org's size in 2026. A catch-up lists every tile of
// the extension and stages the tiles above level 0 in one commit (65,793
// tiles, about 540 MB, at this size), so a head claiming more — which only
// a broken or compromised origin signs — is refused before anything is
// planned: the work and memory it would take grow with the claim.
const MaxTreeSize = 1 << 32

// New returns a follower of the origin of opts.Log.
func New(opts Options) (*Follower, error) {
	opts = opts.withDefaults()
	if opts.Log == nil || opts.Verifiers == nil {
		return nil, errors.New("mirror: a follower needs the mirror's log and the origin's verifier keys")
	}
	if opts.Verifiers.Name() != opts.Log.Name() {
		return nil, fmt.Errorf("mirror: the verifier keys are for %s, but the mirror holds %s", opts.Verifiers.Name(), opts.Log.Name())
	}
	opts.Verifiers = opts.Verifiers.Limit(MaxTreeSize)
	f := &Follower{opts: opts, log: opts.Log, name: opts.Log.Name(), st: newState(),
		turn: make(chan struct{}, 1), forwards: make(chan struct{}, opts.MaxForwards)}
	checked, err := Checked(context.Background(), opts.Log)
	if err != nil {
		return nil, err
	}
	f.st.checked = checked
	opts.Metrics.follow(f.name, f.Online(), checked)
	opts.Metrics.observeHeld(f.name, opts.Log.Published().Tree.N)
	return f, nil
}

// Name is the origin's name.
func (f *Follower) Name() string { return f.name }

// Log is the mirror's log.
func (f *Follower) Log() *tlog.Log { return f.log }

// Online reports whether the follower can reach an origin (has a URL).
func (f *Follower) Online() bool { return f.opts.Client != nil }

// SetProgress sets Options.Progress. Call it before Sync.
func (f *Follower) SetProgress(p func(done, total int64)) { f.opts.Progress = p }
