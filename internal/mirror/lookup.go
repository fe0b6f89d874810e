package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// Ops serves a mirror through internal/server: the mirror's log, and a
// lookup of a version the mirror lacks forwarded to the origin, verified
// (signature, inclusion, consistency with the mirror's head), stored, and
// answered from the log. Nothing unverified is ever served.
type Ops struct{ f *Follower }

var _ sumdb.ServerOps = (*Ops)(nil)

// Ops returns the mirror's sumdb.ServerOps.
func (f *Follower) Ops() *Ops { return &Ops{f} }

// Signed returns the mirror's signed head: the origin's, verbatim.
func (o *Ops) Signed(ctx context.Context) ([]byte, error) {
	head, err := o.f.log.Signed(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &server.StatusError{Status: http.StatusServiceUnavailable,
			Err: noHeadYet(fmt.Sprintf("the mirror of %s holds no signed tree head yet: its first sync has not finished", o.f.name))}
	}
	return head, err
}

// noHeadYet is the reason a mirror without a head gives: a 503 at /latest,
// and an fs.ErrNotExist so that /supported answers 404 (see
// server.Server.supported).
type noHeadYet string

func (e noHeadYet) Error() string        { return string(e) }
func (e noHeadYet) Is(target error) bool { return target == fs.ErrNotExist }

// ReadRecords reads records the mirror holds.
func (o *Ops) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	return o.f.log.ReadRecords(ctx, id, n)
}

// ReadTileData reads a hash tile of the mirror's tree.
func (o *Ops) ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error) {
	return o.f.log.ReadTileData(ctx, t)
}

// Lookup finds m in the mirror, or forwards the lookup to the origin.
func (o *Ops) Lookup(ctx context.Context, m module.Version) (int64, error) {
	id, err := o.f.log.Lookup(ctx, m)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	return o.f.Forward(ctx, m)
}

// Forward looks m up at the origin, verifies the answer, stores what it
// proved and returns m's id in the mirror. Its errors are for the go
// command's user: a 404 when the origin does not hold m or cannot be
// reached (saying how old the mirror's head is), a 502 when it reports its
// data damaged, answers the lookup malformed or the tiles proving it with
// something that is not a tile (a *BodyError), answers either with a body
// over its cap, or refuses (a 4xx) the lookup or the tiles proving it, a
// 503 while the mirror is too far behind to take the origin's newer head,
// busy following it, or forwarding Options.MaxForwards lookups already, a
// 502 when the answer does not verify. It returns within
// Options.ForwardTimeout.
func (f *Follower) Forward(ctx context.Context, m module.Version) (int64, error) {
	if f.opts.Client == nil {
		f.opts.Metrics.forward(f.name, "offline")
		return 0, f.offline(m, "it has no origin to ask (it is fed by bundles)")
	}
	select {
	case f.forwards <- struct{}{}:
		defer func() { <-f.forwards }()
	default:
		f.opts.Metrics.forward(f.name, "busy")
		return 0, &server.StatusError{Status: http.StatusServiceUnavailable, Err: fmt.Errorf(
			"%s: the mirror of %s is forwarding too many lookups to its origin at once; try again in a moment", m, f.name)}
	}
	fctx, cancel := context.WithTimeout(ctx, f.opts.ForwardTimeout)
	defer cancel()
	ans, err := f.opts.Client.Lookup(fctx, m)
	if err == nil && !sumdbclient.IsNote(ans.Head) {
		// Not evidence against the origin, as a signed note would be
		// (see BodyError).
		err = errors.New("malformed lookup answer: its tree head is not a signed note")
	}
	switch {
	case sumdbclient.NotFound(err):
		// The origin's own reason stays in the log: it may name hosts
		// of the network the origin lives in (or one a redirect led
		// to), which the mirror's clients, maybe anonymous, must not
		// read.
		f.opts.Metrics.forward(f.name, "not_found")
		f.opts.Logger.Info("a lookup forwarded to the origin: not found there", "origin", f.name, "module", m.String(), "err", err)
		return 0, &server.StatusError{Status: http.StatusNotFound,
			Err: fmt.Errorf("not found: %s: the origin %s does not hold it", m, f.name)}
	case errors.Is(err, sumdbclient.ErrDamaged):
		return 0, f.damaged(m, err)
	case refusedBy(err):
		return 0, f.refused(m, err, "the lookup")
	case errors.Is(err, sumdbclient.ErrTooLarge):
		return 0, f.tooLarge(m, err, "the lookup")
	case sumdbclient.IsFetchError(err):
		f.opts.Logger.Warn("a mirror could not forward a lookup to its origin", "origin", f.name, "module", m.String(), "err", err)
		f.opts.Metrics.forward(f.name, "offline")
		return 0, f.offline(m, "it cannot reach its origin")
	case err != nil:
		// The origin answered 200, with a body that is not a lookup
		// answer (m, checked by server.ParseLookup, escapes): perhaps a
		// proxy's or a login page's, which the log quotes and the
		// client, maybe anonymous, must not read.
		f.opts.Logger.Warn("the origin answered a forwarded lookup with a malformed answer", "origin", f.name, "module", m.String(), "err", err)
		f.opts.Metrics.forward(f.name, "refused")
		return 0, &server.StatusError{Status: http.StatusBadGateway, Err: fmt.Errorf(
			"%s: the origin %s answered the lookup with a malformed answer (not a record id, the record and a signed tree head); the mirror stored nothing", m, f.name)}
	}
	if err := f.store(ctx, fctx, m, ans); err != nil {
		var busy *busyError
		var be *BodyError
		switch {
		case IsSecurity(err):
			f.opts.Metrics.forward(f.name, "refused")
			return 0, &server.StatusError{Status: http.StatusBadGateway,
				Err: fmt.Errorf("%s: the origin %s answered with data that does not verify; the mirror refused it", m, f.name)}
		case errors.As(err, &busy):
			f.opts.Metrics.forward(f.name, "busy")
			return 0, &server.StatusError{Status: http.StatusServiceUnavailable, Err: busy}
		case errors.Is(err, itlog.ErrLowDisk):
			// The log has the path; the client, maybe anonymous, not.
			f.opts.Logger.Error("a mirror could not store a forwarded lookup: its disk is nearly full", "origin", f.name, "module", m.String(), "err", err)
			f.opts.Metrics.forward(f.name, "busy")
			return 0, &server.StatusError{Status: http.StatusServiceUnavailable, Err: fmt.Errorf(
				"%s: the mirror of %s cannot store what its origin answered: its disk is nearly full, so it stores nothing new until its operator frees space", m, f.name)}
		case errors.Is(err, sumdbclient.ErrDamaged):
			return 0, f.damaged(m, err)
		case refusedBy(err):
			return 0, f.refused(m, err, "the tiles that prove its answer")
		case errors.Is(err, sumdbclient.ErrTooLarge):
			return 0, f.tooLarge(m, err, "the tiles that prove its answer")
		case errors.As(err, &be):
			// The body stays in the log, as a malformed answer's does.
			f.opts.Logger.Warn("the origin answered a tile proving a forwarded lookup with something that is not a tile", "origin", f.name, "module", m.String(), "err", err)
			f.opts.Metrics.forward(f.name, "refused")
			return 0, &server.StatusError{Status: http.StatusBadGateway, Err: fmt.Errorf(
				"%s: the origin %s answered the tiles that prove its answer with something that is not a tile (a proxy's or a login page?); the mirror stored nothing", m, f.name)}
		case sumdbclient.IsFetchError(err) && ctx.Err() == nil:
			f.opts.Logger.Warn("a mirror could not fetch the tiles proving a forwarded lookup", "origin", f.name, "module", m.String(), "err", err)
			f.opts.Metrics.forward(f.name, "offline")
			return 0, f.offline(m, "it could not fetch in time the tiles from its origin that prove the origin's answer")
		}
		return 0, err
	}
	id, err := f.log.Lookup(ctx, m)
	if err != nil {
		f.opts.Metrics.forward(f.name, "refused")
		return 0, &server.StatusError{Status: http.StatusBadGateway,
			Err: fmt.Errorf("%s: the origin %s answered with the record of another version", m, f.name)}
	}
	f.opts.Metrics.forward(f.name, "stored")
	return id, nil
}

// A busyError is a forwarded lookup the mirror cannot take yet.
type busyError struct{ msg string }

func (e *busyError) Error() string { return e.msg }

// store verifies a lookup answer and stores its record, extending the
// mirror to the answer's head if it is newer. The tiles proving that head
// are fetched (with fctx, the forward's deadline) before it waits for the
// rounds' turn (until fctx is done, too): a slow origin then holds up only
// this lookup, never the rounds or the other lookups. Local work uses ctx.
func (f *Follower) store(ctx, fctx context.Context, m module.Version, ans *sumdbclient.LookupAnswer) error {
	tree, err := f.opts.Verifiers.Open(ans.Head)
	if err != nil {
		return f.security(&SecurityError{Kind: KindSignature, Origin: f.name, Held: f.log.Published().Signed, Offered: ans.Head,
			Err: errors.New(f.opts.Verifiers.Explain("the lookup of "+m.String(), keyFlag, err))})
	}
	if ans.ID >= tree.N {
		return f.security(&SecurityError{Kind: KindTampered, Origin: f.name, Held: f.log.Published().Signed, Offered: ans.Head,
			Err: fmt.Errorf("the lookup of %s answers record %d, which the tree of %d records it comes with does not hold", m, ans.ID, tree.N)})
	}
	var ext itlog.Extension
	if held := f.log.Published(); tree.N > held.Tree.N {
		if err := f.canExtend(ctx, m, held, tree); err != nil {
			return err
		}
		// Consistency first, as a round proves it, from the origin's hash
		// tiles authenticated against the answer's head: a fork is then
		// refused as one (Extend's checks would call it unverified data)
		// before any data is fetched for it.
		hashes := f.originHashes(fctx, tree)
		if err := f.inconsistency(held, held, tree, ans.Head, hashes); err != nil {
			return f.fromOrigin(err, ans.Head)
		}
		// Unverified until Extend, which checks them all.
		ext, err = f.fetch(fctx, target{ans.Head, tree}, held.Tree.N, tlog.NewTiles(8, held.Tree.N, tree.N))
		if err != nil {
			return f.fromOrigin(err, ans.Head)
		}
	}
	if err := f.lock(fctx); err != nil {
		return &busyError{fmt.Sprintf("%s: the mirror of %s is busy following its origin; try again in a moment", m, f.name)}
	}
	defer f.unlock()
	held := f.log.Published()
	if tree.N <= held.Tree.N {
		// The answer's tree is one the mirror has passed (perhaps while
		// this lookup fetched): prove it a prefix of the held one from
		// the mirror's own tiles.
		if err := f.contains(held, tree, ans.Head); err != nil {
			return err
		}
		ext = itlog.Extension{Head: held.Signed}
	} else {
		if err := f.canExtend(ctx, m, held, tree); err != nil {
			return err
		}
		// The mirror may have moved on since the fetch, not as far as
		// tree: the tiles the extension needs now are some of those.
		narrow(&ext, held.Tree.N, tree.N)
	}
	if ext.Records == nil {
		ext.Records = map[int64][]byte{}
	}
	ext.Records[ans.ID] = ans.Record
	n := f.fresh(ctx, ext, held.Tree.N, ans.ID)
	if err := f.log.Extend(ctx, ext); err != nil {
		return f.fromOrigin(f.classify(err, ans.Head), ans.Head)
	}
	f.opts.Metrics.addRecords(f.name, n)
	f.opts.Metrics.observeHeld(f.name, f.log.Published().Tree.N)
	return nil
}

// fresh counts the records of ext that a mirror holding a tree of held
// records stores: those beyond its tree, and the answer's own (id) below
// it if the mirror lacks it (a partial mirror's, or another lookup of the
// same version stored it first). The extension's other records below held
// were fetched for tiles that whatever moved the head meanwhile (a round,
// another lookup) stored with the same selection: Extend ignores them, as
// it does every record the mirror holds.
func (f *Follower) fresh(ctx context.Context, ext itlog.Extension, held, id int64) int {
	n := 0
	for i := range ext.Records {
		if i >= held {
			n++
		}
	}
	if id < held {
		if _, err := f.log.ReadRecords(ctx, id, 1); errors.Is(err, fs.ErrNotExist) {
			n++
		}
	}
	return n
}

// canExtend returns a *busyError if a forwarded lookup may not extend the
// mirror from held to tree in one step: too far, or while a round stages.
func (f *Follower) canExtend(ctx context.Context, m module.Version, held *itlog.Head, tree tlog.Tree) error {
	staging, err := f.log.Staged(ctx)
	if err != nil {
		return err
	}
	if staging != nil || tree.N-held.Tree.N > f.opts.Step {
		return &busyError{fmt.Sprintf("%s: the mirror of %s is catching up with its origin (%d records behind); try again later",
			m, f.name, tree.N-held.Tree.N)}
	}
	return nil
}

// narrow drops from ext, fetched for an extension from an older held tree
// to one of size n, the tiles not part of the extension from held to n: a
// subset, as a tile's width in a larger held tree is no smaller.
func narrow(ext *itlog.Extension, held, n int64) {
	need := map[tlog.Tile]bool{}
	for _, t := range tlog.NewTiles(8, held, n) {
		need[t] = true
	}
	maps.DeleteFunc(ext.Tiles, func(t tlog.Tile, _ []byte) bool { return !need[t] })
}

// contains proves that the mirror's held tree contains tree (signed head
// offered), a tree no larger, from the mirror's own tiles, and logs a
// failed proof as a security event.
func (f *Follower) contains(held *itlog.Head, tree tlog.Tree, offered []byte) error {
	err := f.prefixOf(held, tree, offered)
	var se *SecurityError
	if errors.As(err, &se) {
		return f.security(se)
	}
	return err
}

// prefixOf proves that the mirror's held tree contains tree (signed head
// offered), a tree no larger, from the mirror's own tiles, and returns a
// *SecurityError, not yet logged, if it does not: a fork of the same size,
// or a rollback.
func (f *Follower) prefixOf(held *itlog.Head, tree tlog.Tree, offered []byte) error {
	err := proveHeld(f.log, held, tree)
	var fork *itlog.ForkError
	switch {
	case errors.As(err, &fork) && fork.Proof == nil:
		return &SecurityError{Kind: KindFork, Origin: f.name, Held: held.Signed, Offered: offered, Err: fmt.Errorf(
			"the origin has signed two different trees of %d records (hashes %s and %s)", tree.N, held.Tree.Hash, tree.Hash)}
	case fork != nil:
		return &SecurityError{Kind: KindRollback, Origin: f.name, Held: held.Signed, Offered: offered, Err: fmt.Errorf(
			"the origin signs a tree of %d records that is not contained in its tree of %d records the mirror holds: %v", tree.N, held.Tree.N, fork.Proof)}
	case err != nil:
		return fmt.Errorf("failed to prove a tree of the origin against the mirror's: %w", err)
	}
	return nil
}

// damaged is the 502 for a version whose lookup, or the tiles proving it,
// the origin answers damaged in its database (sumdbclient.ErrDamaged): it
// was reached, and its data is at fault, not the network.
func (f *Follower) damaged(m module.Version, err error) error {
	f.opts.Logger.Error("the origin reports data a forwarded lookup needs damaged in its database", "origin", f.name, "module", m.String(), "err", err)
	f.opts.Metrics.forward(f.name, "damaged")
	return &server.StatusError{Status: http.StatusBadGateway, Err: fmt.Errorf(
		"%s: the origin %s reports its data damaged (it answers that what the mirror asked for is damaged in its database); the mirror stored nothing", m, f.name)}
}

// refusedBy reports whether err is the origin's refusal of a request: a
// 4xx answer other than a lookup's 404 or 410 (NotFound, which Forward
// sorts first), a timeout (408), a rate limit (429) or a mirror's offline
// 404. The origin was reached and will answer the same again: neither the
// network nor the mirror's deadline is at fault.
func refusedBy(err error) bool {
	var fe *sumdbclient.FetchError
	if !errors.As(err, &fe) || errors.Is(err, sumdbclient.ErrOffline) {
		return false
	}
	s := fe.Status
	return s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
}

// refused is the 502 for a version whose lookup, or the tiles proving it
// (what), the origin refuses (refusedBy): it was reached, and at fault or
// misconfigured (-auth, a proxy's rules). The origin's answer and the URL
// asked for stay in the log.
func (f *Follower) refused(m module.Version, err error, what string) error {
	f.opts.Logger.Warn("the origin refused a request of a forwarded lookup", "origin", f.name, "module", m.String(), "err", err)
	f.opts.Metrics.forward(f.name, "refused")
	return &server.StatusError{Status: http.StatusBadGateway, Err: fmt.Errorf(
		"%s: the origin %s refused %s; the mirror stored nothing", m, f.name, what)}
}

// tooLarge is the 502 for a version whose lookup, or the tiles proving it
// (what), the origin answers 200 with a body over its cap
// (sumdbclient.ErrTooLarge): it was reached, and answered what the protocol
// never sends. The URL asked for stays in the log.
func (f *Follower) tooLarge(m module.Version, err error, what string) error {
	f.opts.Logger.Warn("the origin answered a request of a forwarded lookup with too large a body", "origin", f.name, "module", m.String(), "err", err)
	f.opts.Metrics.forward(f.name, "refused")
	return &server.StatusError{Status: http.StatusBadGateway, Err: fmt.Errorf(
		"%s: the origin %s answered %s with a body larger than the protocol allows; the mirror stored nothing", m, f.name, what)}
}

// offline is the 404 for a version the mirror lacks and cannot get: it
// says why, and how old the mirror's head is, in one line the go command
// shows its user, holding sumdbclient.OfflineText so that an auditor tells
// the outage from a version the database lacks.
func (f *Follower) offline(m module.Version, why string) error {
	h := f.log.Published()
	age := "never confirmed current"
	if c := f.st.lastChecked(); !c.IsZero() {
		age = "last confirmed current " + roundAge(f.opts.Now().Sub(c)) + " ago"
	}
	return &server.StatusError{Status: http.StatusNotFound, Err: fmt.Errorf(
		"not found: %s: the mirror of %s %s: %s; its tree head (%d records) was %s",
		m, f.name, sumdbclient.OfflineText, why, h.Tree.N, age)}
}

// roundAge rounds an age for people: "42s", "3h12m", "2h", "3 days".
func roundAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		// Duration.String writes the zero seconds ("3h12m0s") and
		// minutes ("2h0m0s") rounding leaves.
		s := strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
