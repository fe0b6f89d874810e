// Package audit checks that a Go checksum database is honest, using only
// the HTTP protocol every such database speaks: the signed tree head
// (/latest), lookups (/lookup/M@V), hash tiles (/tile/8/L/N[.p/W]) and data
// tiles (/tile/8/data/N[.p/W]). It works against sumd, sum.golang.org, or a
// module proxy relaying either under a base URL with a path.
//
// # Trust model
//
// The auditor trusts exactly one thing: the verifier key it is given (or
// keys: during a key rotation a database publishes two, and a head signed
// by any of them verifies, as with the go command).
// Everything the server sends is authenticated before it is believed:
//
//   - The signed tree head, by its Ed25519 signature under the key
//     (note.Open). Other signatures on the note (witnesses) are ignored.
//   - Hash tiles, by the signed head: tlog.TileHashReader recomputes the
//     head's root hash from the right-edge tiles and checks every other
//     tile against its authenticated parent, so a hash read through it is
//     proven to be in the signed tree.
//   - Records, by the tree: a full audit hashes every record of each data
//     tile into a tree it rebuilds itself and compares that tree's root,
//     at the end of every data tile, with the authenticated root of the
//     same prefix. A record is checked further only once its tile passed.
//   - Lookups (-gosum), by x/mod's sumdb.Client: the record's inclusion in
//     a signed tree, and that tree's consistency with the head seen before.
//   - The state directory is the auditor's own memory and is trusted to be
//     what it wrote; even so, every head in it is verified again, with the
//     keys given or with a key the state remembers having verified a saved
//     head with (so that a state outlives a key rotation, even one the
//     auditor learns of only after the old key was retired), and the saved
//     right edge of the audited tree must match the server's authenticated
//     tree before an audit resumes from it. The tree served must still
//     extend the saved head: a log re-created under the same name with a
//     new key is a fork, whichever key is given.
//
// # Checks
//
// Every run verifies the head's signature (CheckSignature) and that the
// hash tiles at the tree's right edge hash to the signed root (CheckTiles).
// With a state directory it proves that the tree extends the head saved by
// the previous run and the head the full audit last checkpointed under,
// whose audited records must still be the tree's first ones
// (CheckConsistency, tlog.ProveTree and tlog.CheckTree); a different tree
// of the same size, a tree that does not contain the saved one, a smaller
// tree that the saved one's hash tiles show is not its prefix (a fork), or
// one whose server no longer serves those tiles (a rollback) is a SECURITY
// problem quoting both signed heads, and the new head is then not saved:
// nothing is saved before every check that could refuse it has passed. A
// smaller tree proven a prefix of the saved one is an older head, such as a
// cache in front of the database may serve: a warning (KindStale), the
// newer head stays saved, and the checks go on with the tree served, but
// for the go.sum lookups, which are checked against the newer head: a
// database serving the auditor a stale head must not pass a fork that
// extends only that.
//
// A full audit (Options.Full, CheckRecords) reads every data tile not yet
// audited, at most Options.Parallel at a time, and checks that each splits
// into exactly its W records, that the records rebuild the signed tree,
// that each record is exactly the two go.sum lines of one module version
// with a canonical path and version (gosum.ParseMax: of any size a data
// tile holds, since the protocol does not limit records), and that no
// module@version appears twice in the whole log. With a state directory it
// checkpoints as it goes and the next run audits only the records added
// since; a range in which a problem was found is never checkpointed, so it
// is audited, and the problem reported, again on every run.
//
// Options.GoSum (CheckGosum) checks go.sum files: every line must match
// the database's record for its module version, found by a verified
// lookup.
//
// # Problems and errors
//
// A Problem is a finding about the database. An error means the audit could
// not run to the end (a network failure or HTTP error after retries, an
// answer that is not the protocol's at all, such as a proxy's page, an
// unusable state directory, cancellation); the report is then partial.
package audit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// Options configure Run.
type Options struct {
	// URL is the database's base URL: https://sum.golang.org, or a path
	// under a proxy such as https://proxy.example/sumdb/sum.golang.org.
	URL string
	// VerifierKey is the database's verifier key, "name+hash+base64".
	VerifierKey string
	// VerifierKeys are more verifier keys of the same database, as
	// published during a key rotation: a signed head verifies if any one
	// of the keys signed it, the go command's rule (PROTOCOL.md §2).
	VerifierKeys []string
	// KeySource says where the keys came from, for the operator to check
	// when /latest does not verify with them: "-key" (the default), or
	// the TUF repository that published them.
	KeySource string
	// StateDir, if set, keeps what this run learned for the next one (see
	// the layout in state.go); several databases can share it.
	StateDir string
	// Full audits every record not audited before.
	Full bool
	// GoSum lists go.sum files to check against the database.
	GoSum []string
	// Parallel caps concurrent requests (default 8).
	Parallel int
	// UserAgent is sent with every request (default "sumd-verify/devel").
	UserAgent string
	// Auth, if set, adds credentials to every request (a server behind
	// sumd serve -read-auth: data tiles need an auditor's). An error it
	// returns fails the request without a retry.
	Auth func(*http.Request) error
	// Transport is sumdbclient.Options.Transport (a client certificate).
	Transport func(*http.Transport) http.RoundTripper
	// Timeout caps each HTTP request (default 30s).
	Timeout time.Duration
	// Progress, if set, is called after each data tile of a full audit
	// with the records done and the total to do. It is called from one
	// goroutine at a time.
	Progress func(done, total int64)
	// RecordHook, if set, runs on every record a full audit checks.
	RecordHook RecordHook
	// Recheck, if set, re-hashes every record from RecheckSince on from its
	// source and reports those that differ (-recheck UPSTREAM -since ID).
	Recheck      Rechecker
	RecheckSince int64

	retryBackoff    time.Duration // tests shorten the wait between retries
	checkpointTiles int           // data tiles between checkpoints (default 64)
}

// A RecordHook is an extra check of one record of a full audit (such as
// re-hashing the module from a proxy). It runs only on records whose data
// tile matched the signed tree and that parsed as a go.sum record. Hooks
// run concurrently, at most Options.Parallel at a time, in no particular
// order; a checkpoint waits for the hooks of every record before it. A
// returned Problem is added to the report; an error stops the audit.
type RecordHook func(ctx context.Context, id int64, rec gosum.Record) (*Problem, error)

func (o Options) withDefaults() Options {
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.UserAgent == "" {
		o.UserAgent = "sumd-verify/devel"
	}
	if o.KeySource == "" {
		o.KeySource = "-key"
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.retryBackoff <= 0 {
		o.retryBackoff = 500 * time.Millisecond
	}
	if o.checkpointTiles <= 0 {
		o.checkpointTiles = 64
	}
	return o
}

// Run audits the database at opts.URL. It always returns a report; when
// the audit could not run to the end, the report is partial, its Error is
// set and the same error is returned.
func Run(ctx context.Context, opts Options) (*Report, error) {
	start := time.Now()
	rep := &Report{Checks: []string{}, Problems: []Problem{}}
	r, err := newRun(ctx, opts.withDefaults(), rep)
	if err == nil {
		err = r.run(ctx)
		r.damaged(err)
		if cerr := r.close(); err == nil {
			err = cerr
		}
	}
	rep.Problems, rep.ProblemsOmitted = r.found.problems, r.found.omitted
	if rep.Problems == nil {
		rep.Problems = []Problem{}
	}
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.RecordsPerSecond = float64(rep.RecordsAudited) / rep.Seconds
	}
	if err != nil {
		rep.Error = err.Error()
	}
	rep.OK = err == nil && r.found.count() == 0
	return rep, err
}

// A run is one audit. Its fields are set up by newRun and the head check
// and then only read, except those of the Report and the findings.
type run struct {
	opts  Options
	keys  *sumdbclient.Verifiers // every verifier key given; they name the database
	vkey  string                 // the first that signed the head served, for sumdb.Client
	f     *sumdbclient.Client
	tiles *sumdbclient.TileReader
	state *state // nil without a state directory, until a full audit needs a key set
	rep   *Report
	found *findings

	head []byte          // the signed head served by /latest, verified
	tree tlog.Tree       // its tree
	thr  tlog.HashReader // hashes of tree, authenticated

	sumLines []sumLine // the lines of the go.sum files to check, read by newRun
	sumProbs []Problem // the lines of those that are no go.sum lines

	stale      bool         // tree is a prefix of a head signed before (KindStale): not saved
	newer      []byte       // if stale, the newest head signed before, verified (the saved one's, or the checkpoint's)
	newerTree  tlog.Tree    // its tree
	resumeFrom *frontier    // the checkpoint's audited tree, proven a prefix of tree; nil: none
	rechecked  atomic.Int64 // records -recheck re-hashed from their source

	// badTiles are the data tiles (by path) the full audit reported as a
	// whole, which -recheck does not read or report again. Written by the
	// full audit's consumer only, read after it.
	badTiles map[string]bool
}

func newRun(ctx context.Context, opts Options, rep *Report) (*run, error) {
	r := &run{opts: opts, rep: rep, found: new(findings)}
	u, err := sumdbclient.CheckURL(opts.URL)
	if err != nil {
		return r, err
	}
	rep.URL = u.Redacted()
	if err := r.parseKeys(append([]string{opts.VerifierKey}, opts.VerifierKeys...)); err != nil {
		return r, err
	}
	rep.Database = r.keys.Name()
	// Before any request: a file missing is found at once, not after
	// hours of a full audit.
	if r.sumLines, r.sumProbs, err = readGoSums(opts.GoSum); err != nil {
		return r, err
	}
	r.f, err = sumdbclient.New(opts.URL, sumdbclient.Options{
		UserAgent: opts.UserAgent, Timeout: opts.Timeout, Parallel: opts.Parallel, Backoff: opts.retryBackoff, Auth: opts.Auth,
		Transport: opts.Transport,
	})
	if err != nil {
		return r, err
	}
	r.tiles = sumdbclient.NewTileReader(ctx, r.f, opts.Parallel)
	if opts.StateDir != "" {
		r.state, err = openState(opts.StateDir, rep.Database)
	}
	return r, err
}

func (r *run) close() error {
	if r.f != nil {
		r.f.CloseIdleConnections()
	}
	if r.state == nil {
		return nil
	}
	return r.state.close()
}

// run runs the checks in order; each returns false when it found a
// problem that makes the later checks meaningless.
func (r *run) run(ctx context.Context) error {
	for _, step := range []func(context.Context) (bool, error){
		r.checkHead, r.checkRecheckSince, r.checkTiles, r.checkConsistency, r.auditRecords, r.recheck, r.checkGosum,
	} {
		if ok, err := step(ctx); err != nil || !ok {
			return err
		}
	}
	return nil
}

func (r *run) passed(check string) { r.rep.Checks = append(r.rep.Checks, check) }

// damaged reports, as a problem, data the server answered damaged in its
// database (sumdbclient.ErrDamaged) that the audit could not go on
// without, such as a hash tile: the audit stopped, but the answer is a
// finding (sumd verify exits 1), which the report must list as such.
func (r *run) damaged(err error) {
	var fe *FetchError
	if !errors.Is(err, sumdbclient.ErrDamaged) || !errors.As(err, &fe) {
		return
	}
	p := Problem{Kind: KindDamaged, Message: fmt.Sprintf(
		"%s: the server reports it damaged in its database, and does not serve it; the audit cannot go on without it", quote(fe.Path))}
	if t, err := tlog.ParseTilePath(strings.TrimPrefix(fe.Path, "/")); err == nil {
		p.Tile = t.Path()
	}
	r.found.add(p)
}

// checkTiles checks that the hash tiles at the tree's right edge hash to
// the signed root: what every client's first inclusion proof relies on.
func (r *run) checkTiles(ctx context.Context) (bool, error) {
	h, err := tlog.TreeHash(r.tree.N, r.thr)
	if err != nil {
		return r.tileProblem(err)
	}
	if h != r.tree.Hash { // only an empty tree gets here: TileHashReader checked the rest
		r.found.add(Problem{Kind: KindTileMismatch, Message: fmt.Sprintf(
			"the signed head claims an empty tree with hash %s, but the empty tree's hash is %s", r.tree.Hash, h)})
		return false, nil
	}
	r.passed(CheckTiles)
	return true, nil
}

// tileProblem sorts an error from the tlog maths over r.thr: failing to
// fetch a tile stops the audit; anything else means the tiles served do
// not authenticate against the signed head.
func (r *run) tileProblem(err error) (bool, error) {
	if isFetchError(err) {
		return false, err
	}
	r.found.add(Problem{Kind: KindTileMismatch, Message: fmt.Sprintf(
		"the hash tiles served do not match the signed tree of size %d (%v): clients cannot verify lookups against it", r.tree.N, err)})
	return false, nil
}

func isFetchError(err error) bool { return sumdbclient.IsFetchError(err) }

// dataTile fetches data tile t and splits it into its records, as
// sumdbclient.Client.DataTile does, but for a body that is not a data tile
// at all (it does not split, nor begin with a record's line: a proxy's
// page), which is a failure to fetch, not a malformed tile.
func (r *run) dataTile(ctx context.Context, t tlog.Tile) ([][]byte, error) {
	recs, err := r.f.DataTile(ctx, t)
	if err != nil {
		return nil, sumdbclient.CheckDataTile(t, err, false)
	}
	return recs, nil
}

// A FetchError is a request the server did not answer with 200 OK and a
// body within its size cap, even after retries. It stops the audit: the
// data needed could not be obtained, which says nothing either way about
// the database's honesty.
type FetchError = sumdbclient.FetchError

// tileHeight and tileWidth are the protocol's: tiles of height 8, 256
// hashes (or records) wide.
const (
	tileHeight = sumdbclient.TileHeight
	tileWidth  = sumdbclient.TileWidth
)
