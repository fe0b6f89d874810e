package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// Kinds of SecurityError: the ways an origin (or the path to it) can show
// misbehaviour. They are metric labels: a small fixed set.
const (
	KindFork      = "fork"       // a head that does not contain the held one, or another tree of its size
	KindRollback  = "rollback"   // a head of a smaller tree that is not a prefix of the held one
	KindSignature = "signature"  // a head not signed by the origin's keys
	KindTampered  = "unverified" // a tile or record that does not hash to the signed head
)

// kinds are every Kind*, each exported at 0 from a follower's start.
var kinds = []string{KindFork, KindRollback, KindSignature, KindTampered}

// A SecurityError is data from the origin that a mirror refuses because
// it is not provably part of one consistent history signed by the origin.
// Nothing was stored; the mirror keeps serving the head it held. Clients
// that see both heads report the same misbehaviour, so an operator must
// look: the origin, or the path to it, is broken or hostile.
type SecurityError struct {
	Kind    string
	Origin  string // the origin's name
	Held    []byte // the signed head the mirror holds (nil if none yet)
	Offered []byte // the signed head refused, or the one the bad data claims
	Err     error  // the evidence
}

func (e *SecurityError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: the origin %s misbehaves (%s); nothing was stored: %v", e.Origin, e.Kind, e.Err)
}

func (e *SecurityError) Unwrap() error { return e.Err }

// IsSecurity reports whether err is a *SecurityError.
func IsSecurity(err error) bool {
	var se *SecurityError
	return errors.As(err, &se)
}

// classify turns a refusal of the log's (tlog's errors) into a
// *SecurityError; other errors (the store, the network) pass unchanged.
func (f *Follower) classify(err error, offered []byte) error {
	var ie *itlog.InconsistentError
	switch {
	case err == nil || IsSecurity(err):
		return err
	case errors.As(err, &ie):
		kind := KindFork
		if ie.Rollback() {
			kind = KindRollback
		}
		return &SecurityError{Kind: kind, Origin: f.name, Held: ie.Held, Offered: ie.Offered, Err: err}
	case errors.Is(err, itlog.ErrUnverified):
		return &SecurityError{Kind: KindTampered, Origin: f.name, Held: f.log.Published().Signed, Offered: offered, Err: err}
	}
	return err
}

// security logs a refusal and counts it, and returns it.
func (f *Follower) security(se *SecurityError) error {
	f.opts.Logger.Error("SECURITY: refused data from the origin of a mirror; nothing was stored and the held head is still served",
		slog.String("origin", se.Origin), slog.String("kind", se.Kind),
		slog.String("held_head", string(se.Held)), slog.String("offered_head", string(se.Offered)),
		slog.String("evidence", se.Err.Error()))
	f.opts.Metrics.securityEvent(f.name, se.Kind)
	f.st.security(se)
	return se
}

// inconsistency checks that tree (signed head offered) and the newest
// tree the mirror holds or stages (against; held, if none is staged) are
// one history, and returns a *SecurityError if they are not. A larger tree
// is proved to extend against with hashes of it (authenticated against its
// signed head); a smaller one is behind.
func (f *Follower) inconsistency(held, against *itlog.Head, tree tlog.Tree, offered []byte, hashes tlog.HashReader) error {
	if tree.N < against.Tree.N {
		return f.behind(held, against, tree, offered, hashes)
	}
	old, n := against.Tree, tree
	err := itlog.ProveExtends(n, old, hashes)
	var fork *itlog.ForkError
	switch {
	case errors.As(err, &fork) && fork.Proof == nil:
		return &SecurityError{Kind: KindFork, Origin: f.name, Held: against.Signed, Offered: offered, Err: fmt.Errorf(
			"the origin has signed two different trees of %d records (hashes %s and %s)", n.N, old.Hash, n.Hash)}
	case fork != nil:
		return &SecurityError{Kind: KindFork, Origin: f.name, Held: against.Signed, Offered: offered, Err: fmt.Errorf(
			"the tree of %d records the origin signs does not contain the tree of %d records it signed before: %v", n.N, old.N, fork.Proof)}
	case err != nil:
		return f.tileError(err, against, offered)
	}
	return nil
}

// behind checks a tree smaller than against, the newest the mirror holds
// or stages. An origin's older head is no misbehaviour if it is a prefix of
// the newer one (a replica behind a load balancer lags, and the go command
// accepts it as well): proved from the mirror's own hashes when tree is no
// larger than the held one, else (a tree between the held and the staged
// one) shown to extend the held one with its own hashes, since the staged
// tree's hashes are not all held yet (a *BehindError that says so, claiming
// no prefix). It returns a *BehindError then, and a *SecurityError (a
// rollback) if the proof fails.
func (f *Follower) behind(held, against *itlog.Head, tree tlog.Tree, offered []byte, hashes tlog.HashReader) error {
	var err error
	if tree.N <= held.Tree.N {
		err = f.prefixOf(held, tree, offered)
	} else {
		err = f.inconsistency(held, held, tree, offered, hashes)
	}
	if err != nil {
		return err
	}
	return &BehindError{Origin: f.name, Tree: tree.N, Held: against.Tree.N, Unproved: tree.N > held.Tree.N}
}

// A BehindError is an origin serving a signed head older than the one the
// mirror holds, and a prefix of it; or (Unproved) older than the one it
// stages and an extension of the one it holds: a lagging replica, or a
// cache. It is not a security event: the mirror keeps serving its head and
// moves on once the origin catches up. Nothing was stored.
type BehindError struct {
	Origin     string
	Tree, Held int64 // the sizes of the origin's tree and of the mirror's
	// Unproved: the tree lies between the held tree and the one being
	// staged, and was proved to extend the held tree only: whether it is a
	// prefix of the staged tree waits for the staged tree's hashes.
	Unproved bool
}

func (e *BehindError) Error() string {
	if e.Unproved {
		return fmt.Sprintf("the origin %s is behind the tree the mirror is staging (tree %d < %d): a lagging replica? "+
			"Its head extends the tree the mirror serves, which keeps being served; the mirror follows again once the origin catches up", e.Origin, e.Tree, e.Held)
	}
	return fmt.Sprintf("the origin %s is behind the mirror (tree %d < %d): a lagging replica? "+
		"Its head is a prefix of the mirror's, which keeps being served; the mirror follows again once the origin catches up", e.Origin, e.Tree, e.Held)
}

// IsBehind reports whether err is a *BehindError.
func IsBehind(err error) bool {
	var be *BehindError
	return errors.As(err, &be)
}

// tileError sorts an error of x/mod's tile maths over tiles fetched from
// the origin: a failure to fetch them, or tiles that do not authenticate
// against the signed head that names them.
func (f *Follower) tileError(err error, held *itlog.Head, offered []byte) error {
	if sumdbclient.IsFetchError(err) {
		return err
	}
	return &SecurityError{Kind: KindTampered, Origin: f.name, Held: held.Signed, Offered: offered,
		Err: fmt.Errorf("the origin's hash tiles do not hash to its signed head: %w", err)}
}

// proveHeld proves that the mirror's held tree extends tree, a tree no
// larger, from the mirror's own hash tiles, which the log reads without
// authenticating them (they are its own). A proof that fails is built
// again from tiles each authenticated against the held tree, as the go
// command reads a server's: only if that proof fails too is it the
// origin's misbehaviour (a *itlog.ForkError). Own tiles that do not hash to
// the held tree are the mirror's damage, an error wrapping
// itlog.ErrCorrupt: a damaged disk must not raise the alarm that sends an
// operator after the origin's keys.
func proveHeld(l *itlog.Log, held *itlog.Head, tree tlog.Tree) error {
	err := itlog.ProveExtends(held.Tree, tree, l.HashReader())
	var fe *itlog.ForkError
	if !errors.As(err, &fe) || fe.Proof == nil {
		return err // proved, a fork of one size (no tile read), or unreadable
	}
	own := &ownTiles{ctx: context.Background(), log: l}
	again := itlog.ProveExtends(held.Tree, tree, tlog.TileHashReader(held.Tree, own))
	switch {
	case errors.As(again, &fe):
		return again
	case own.err != nil:
		return fmt.Errorf("failed to prove a tree against the mirror's: %w", own.err)
	}
	return fmt.Errorf("the mirror's own hash tiles do not hash to the tree of %d records it holds (%v): its database is damaged; restore it from a backup or mirror it again: %w",
		held.Tree.N, again, itlog.ErrCorrupt)
}

// ownTiles reads a mirror log's hash tiles for tlog.TileHashReader, and
// keeps the first read error, to tell a tile that could not be read from
// one that does not authenticate.
type ownTiles struct {
	ctx context.Context
	log *itlog.Log
	err error
}

func (r *ownTiles) Height() int { return 8 }

func (r *ownTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := r.log.ReadTileData(r.ctx, t)
		if err != nil {
			if r.err == nil {
				r.err = err
			}
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (r *ownTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// A BodyError is an origin's answer that is not the protocol's at all:
// not a signed note at /latest, a hash tile of another length than the
// width asked for, or a data tile that neither splits into records nor
// begins with one (see sumdbclient.BodyError). It is no evidence of
// misbehaviour, unlike a signed note that is not the origin's or not
// consistent, or a tile of the right length whose hashes do not match the
// signed tree (a *SecurityError).
type BodyError = sumdbclient.BodyError

// notProtocol returns the failure to fetch path, answered with body, which
// is not want, quoting the body's first bytes for the mirror's log.
func notProtocol(path, want string, body []byte) error {
	return sumdbclient.NotProtocol(path, want, body, true)
}

// originHashes reads the hash tiles of tree, signed by the origin, with
// ctx: each authenticated against tree, and checked for length before.
func (f *Follower) originHashes(ctx context.Context, tree tlog.Tree) tlog.HashReader {
	tiles := sumdbclient.NewTileReader(ctx, f.opts.Client, f.opts.Parallel)
	tiles.Quote = true
	return tlog.TileHashReader(tree, tiles)
}
