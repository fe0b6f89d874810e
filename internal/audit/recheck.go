package audit

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// A Rechecker computes the go.sum hashes of module version m from its
// source, such as a module proxy, as the go command would. It returns an
// error wrapping ErrUnavailable when the source no longer has m; any other
// error stops the audit.
type Rechecker func(ctx context.Context, m module.Version) (gosum.Record, error)

// ErrUnavailable marks a module version its source no longer serves, or
// serves invalid, so that it cannot be re-hashed.
var ErrUnavailable = errors.New("unavailable at its source")

// ErrSincePastEnd is a RecheckSince past the size of the tree served: the
// id of no record the log holds (a typo, another database's id), so the
// recheck would re-hash nothing and pass.
var ErrSincePastEnd = errors.New("the first record to re-hash (-since) is past the end of the log")

const (
	// CheckRecheck: -recheck re-hashed the recorded versions from their source.
	CheckRecheck = "recheck"
	// KindRecheckMismatch is a recorded version whose source now hashes
	// differently: the module was re-tagged or tampered with, or the log
	// recorded wrong hashes.
	KindRecheckMismatch = "recheck-mismatch"
	// KindRecheckUnavailable is a recorded version its source no longer
	// has, so it could not be re-hashed.
	KindRecheckUnavailable = "recheck-unavailable"
)

// checkRecheckSince refuses a RecheckSince past the size of the tree
// served, once the head is known and before any other step: found after a
// full audit of perhaps hours, it would waste them, and not found at all,
// the recheck passes having re-hashed nothing. The size itself is fine:
// it is the next record's id, where a run rechecking what was added since
// the last one starts when nothing was.
func (r *run) checkRecheckSince(context.Context) (bool, error) {
	if r.opts.Recheck != nil && r.opts.RecheckSince > r.tree.N {
		return false, fmt.Errorf("%w: it is record %d, and the signed tree holds %d records", ErrSincePastEnd, r.opts.RecheckSince, r.tree.N)
	}
	return true, nil
}

// recheck re-hashes records RecheckSince … N-1 from their source. Each
// record is first authenticated against the signed tree: only bytes the
// tree vouches for are compared with the source.
func (r *run) recheck(ctx context.Context) (bool, error) {
	if r.opts.Recheck == nil {
		return true, nil
	}
	from := max(r.opts.RecheckSince, 0)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Parallel)
	for n := from / tileWidth; n*tileWidth < r.tree.N; n++ {
		// gctx: once a recheck failed, no more tiles are fetched.
		recs, err := r.authenticRecords(gctx, sumdbclient.DataTileOf(n, r.tree.N))
		// The level-0 hash tile that authenticated them is not needed
		// again: kept, every one of them would be (1.5 GB at
		// sum.golang.org's size).
		r.tiles.Forget(func(t tlog.Tile) bool { return t.L == 0 && t.N == n })
		if err != nil {
			if gerr := g.Wait(); gerr != nil {
				return false, gerr // what cancelled gctx, if it did
			}
			return false, err
		}
		for i, text := range recs {
			if id := n*tileWidth + int64(i); id >= from {
				g.Go(func() error { return r.recheckOne(gctx, id, text) })
			}
		}
	}
	if err := g.Wait(); err != nil {
		return false, err
	}
	r.rep.RecordsRechecked = r.rechecked.Load()
	r.passed(CheckRecheck)
	return true, nil
}

// authenticRecords fetches data tile t and checks each record's hash
// against the tree's level-0 hashes, which r.thr authenticates up to the
// signed root. A tile that does not split, whose records do not match the
// tree, or that the server reports damaged, is reported and yields no
// records: the recheck carries on past it, as the full audit does, so
// that one bad tile does not hide the versions re-tagged after it. A tile
// the full audit reported is not read again. Its error is a failure to
// fetch.
func (r *run) authenticRecords(ctx context.Context, t tlog.Tile) ([][]byte, error) {
	if r.badTiles[t.Path()] {
		// The full audit reported it, reading it from the same tree: it
		// is one problem, and its records are not authentic.
		return [][]byte{}, nil
	}
	recs, err := r.dataTile(ctx, t)
	var tfe *sumdbclient.TileFormatError
	switch {
	case errors.As(err, &tfe):
		r.found.add(Problem{Kind: KindMalformedTile, Tile: t.Path(), Message: fmt.Sprintf("%s: %s", t.Path(), tfe.Msg)})
		return [][]byte{}, nil
	case errors.Is(err, sumdbclient.ErrDamaged):
		// The server's own finding: reported, and the recheck carries on
		// past the tile, none of whose records it can authenticate.
		r.found.add(Problem{Kind: KindDamaged, Tile: t.Path(), Message: fmt.Sprintf(
			"%s: the server reports it damaged in its database, and does not serve it", t.Path())})
		return [][]byte{}, nil
	case err != nil:
		return nil, err
	}
	indexes := make([]int64, len(recs))
	for i := range recs {
		indexes[i] = tlog.StoredHashIndex(0, t.N*tileWidth+int64(i))
	}
	hashes, err := r.thr.ReadHashes(indexes)
	if err != nil {
		_, err = r.tileProblem(err)
		return [][]byte{}, err
	}
	for i, text := range recs {
		if tlog.RecordHash(text) != hashes[i] {
			r.found.add(Problem{Kind: KindDataMismatch, Tile: t.Path(), Record: recordID(t.N*tileWidth + int64(i)),
				Message: fmt.Sprintf("record %d of %s does not hash to the signed tree", t.N*tileWidth+int64(i), t.Path())})
			return [][]byte{}, nil
		}
	}
	return recs, nil
}

// recheckOne re-hashes one authenticated record from its source.
func (r *run) recheckOne(ctx context.Context, id int64, text []byte) error {
	rec, err := parseRecord(text)
	if err != nil {
		// Nothing to re-hash, but a finding: reported here unless the
		// full audit, which read every record after its last clean
		// checkpoint, reports it.
		if !r.opts.Full {
			r.found.add(malformedRecord(id, err))
		}
		return nil
	}
	m := module.Version{Path: rec.Path, Version: rec.Version}
	got, err := r.opts.Recheck(ctx, m)
	switch {
	case errors.Is(err, ErrUnavailable):
		r.found.add(Problem{Kind: KindRecheckUnavailable, Record: recordID(id), Module: rec.Key(),
			Message: fmt.Sprintf("%s (record %d) could not be re-hashed: %s", quote(rec.Key()), id, quote(err.Error()))})
		return nil
	case err != nil:
		return fmt.Errorf("failed to re-hash %s: %w", rec.Key(), err)
	}
	r.rechecked.Add(1)
	if got.Hash != rec.Hash || got.GoMod != rec.GoMod {
		r.found.add(Problem{Kind: KindRecheckMismatch, Record: recordID(id), Module: rec.Key(), Message: fmt.Sprintf(
			"%s (record %d) hashes differently at its source now: recorded %s, go.mod %s; source %s, go.mod %s",
			quote(rec.Key()), id, rec.Hash, rec.GoMod, got.Hash, got.GoMod)})
	}
	return nil
}
