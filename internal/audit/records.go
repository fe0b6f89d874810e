package audit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// A fetchedTile is a data tile as a fetch worker prepared it: split,
// hashed and parsed, which needs no state and so runs in parallel. None
// of it is trusted until the consumer has matched the hashes to the tree.
type fetchedTile struct {
	tile    tlog.Tile
	err     error // a fetch error, or a *sumdbclient.TileFormatError
	hashes  []tlog.Hash
	records []gosum.Record
	errs    []error // errs[i]: why record i is not a go.sum record
}

// auditRecords is the full audit: it reads the data tiles from the last
// checkpoint to the end of the tree in order, fetched ahead in parallel.
func (r *run) auditRecords(ctx context.Context) (bool, error) {
	if !r.opts.Full {
		return true, nil
	}
	if r.state == nil {
		st, err := openTempState()
		if err != nil {
			return false, err
		}
		r.state = st
	}
	// checkConsistency proved the checkpoint, if any, against the tree
	// served before the head was saved.
	fr := r.resumeFrom
	if fr == nil {
		fr = &frontier{}
	}
	r.rep.RecordsFrom = fr.size
	if fr.size < r.tree.N {
		a := &recordAudit{run: r, fr: fr, clean: true, total: r.tree.N - fr.size}
		if err := a.walk(ctx); err != nil {
			return false, err
		}
	}
	r.passed(CheckRecords)
	return true, nil
}

// A recordAudit is the sequential half of the full audit. It is used from
// one goroutine only.
type recordAudit struct {
	*run
	fr        *frontier // the tree rebuilt so far; its size is the next record to audit
	clean     bool      // no problem found yet: checkpoints may advance
	total     int64     // records to audit
	done      int64
	keys      []seenKey         // keys met since the last checkpoint
	tiles     int               // data tiles since the last checkpoint
	ctx       context.Context   // the walk's
	hooks     *errgroup.Group   // the hooks since the last checkpoint
	hookCtx   context.Context   // theirs
	hookFound atomic.Bool       // a hook reported a problem
	pending   chan commitResult // the commit in flight, if any
}

// walk fetches the data tiles ahead, at most r.opts.Parallel at a time and
// 2×Parallel fetched but not yet consumed, and consumes them in order.
func (a *recordAudit) walk(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.ctx = ctx
	a.hooks = a.newHooks()
	ordered := make(chan chan fetchedTile, 2*a.opts.Parallel)
	var producer errgroup.Group
	producer.Go(func() error { a.fetchAhead(ctx, ordered); return nil })
	err := a.consume(ordered)
	// After an error, stop the fetches and hooks still running; either
	// way, wait for everything, the last commit included, so that nothing
	// touches the report or the state after Run returns.
	cancel()
	a.hooks.Wait()
	if cerr := a.collect(); err == nil {
		err = cerr
	}
	producer.Wait()
	return err
}

func (a *recordAudit) fetchAhead(ctx context.Context, ordered chan<- chan fetchedTile) {
	defer close(ordered)
	var workers errgroup.Group
	workers.SetLimit(a.opts.Parallel)
	defer workers.Wait()
	for n := a.fr.size / tileWidth; n*tileWidth < a.tree.N; n++ {
		c := make(chan fetchedTile, 1)
		select {
		case ordered <- c:
		case <-ctx.Done():
			return
		}
		t := sumdbclient.DataTileOf(n, a.tree.N)
		workers.Go(func() error { c <- a.prepareTile(ctx, t); return nil })
	}
}

// prepareTile fetches, splits, hashes and parses one data tile.
func (r *run) prepareTile(ctx context.Context, t tlog.Tile) fetchedTile {
	recs, err := r.dataTile(ctx, t)
	ft := fetchedTile{tile: t, err: err}
	if err != nil {
		return ft
	}
	ft.hashes = make([]tlog.Hash, len(recs))
	ft.records = make([]gosum.Record, len(recs))
	ft.errs = make([]error, len(recs))
	for i, text := range recs {
		ft.hashes[i] = tlog.RecordHash(text)
		ft.records[i], ft.errs[i] = parseRecord(text)
	}
	return ft
}

func (a *recordAudit) consume(ordered <-chan chan fetchedTile) error {
	for c := range ordered {
		if err := a.tile(<-c); err != nil {
			return err
		}
	}
	return a.checkpoint()
}

// tile audits one data tile and checkpoints every few tiles.
func (a *recordAudit) tile(ft fetchedTile) error {
	start := ft.tile.N * tileWidth
	skip := a.fr.size - start // records of this tile audited by an earlier run
	if err := a.check(ft, skip); err != nil {
		return err
	}
	a.advance(int64(ft.tile.W) - skip)
	if a.tiles++; a.tiles >= a.opts.checkpointTiles {
		return a.checkpoint()
	}
	return nil
}

// check extends the rebuilt tree with the tile's records, matches it to
// the signed tree, and only then checks the records themselves.
func (a *recordAudit) check(ft fetchedTile, skip int64) error {
	start := ft.tile.N * tileWidth
	end := start + int64(ft.tile.W)
	var tfe *sumdbclient.TileFormatError
	switch {
	case errors.As(ft.err, &tfe):
		a.badTile(Problem{Kind: KindMalformedTile, Tile: ft.tile.Path(), Message: fmt.Sprintf(
			"%s (records %d to %d): %v", ft.tile.Path(), start, end-1, ft.err)})
		return a.reseed(end)
	case errors.Is(ft.err, sumdbclient.ErrDamaged):
		// The server's own finding: the tile is a problem, as a malformed
		// one is, and the audit carries on after it.
		a.badTile(Problem{Kind: KindDamaged, Tile: ft.tile.Path(), Message: fmt.Sprintf(
			"%s (records %d to %d): the server reports it damaged in its database, and does not serve it", ft.tile.Path(), start, end-1)})
		return a.reseed(end)
	case ft.err != nil:
		return ft.err
	}
	if skip > 0 {
		// The tile's first records were audited through the partial tile
		// an earlier run read: the full tile must hash to the signed tree
		// as a whole, those records too, so the rebuilt tree restarts at
		// the tile's start from authenticated hashes. Hash tiles that
		// fail to authenticate are the tile's mismatch, as in matches.
		fr, err := seedFrontier(start, a.thr)
		switch {
		case isFetchError(err):
			return err
		case err != nil:
			return a.reseedAfter(ft.tile, err)
		}
		a.fr = fr
	}
	for _, h := range ft.hashes {
		if err := a.fr.append(h); err != nil {
			return err
		}
	}
	if ok, err := a.matches(ft.tile); err != nil || !ok {
		return err
	}
	for i := skip; i < int64(len(ft.records)); i++ {
		a.record(start+i, ft.records[i], ft.errs[i])
	}
	return nil
}

// matches compares the rebuilt tree, now ending at tile t, with the
// authenticated tree of the same size. On a mismatch the tile's records
// are not what the database signed: the rest of the audit restarts after
// the tile from authenticated hashes, so that one bad tile is one problem.
func (a *recordAudit) matches(t tlog.Tile) (bool, error) {
	want, err := tlog.TreeHash(a.fr.size, a.thr)
	if err != nil {
		if isFetchError(err) {
			return false, err
		}
		return false, a.reseedAfter(t, err)
	}
	if got := a.fr.root(); got != want {
		start := t.N * tileWidth
		a.badTile(Problem{Kind: KindDataMismatch, Tile: t.Path(), Message: fmt.Sprintf(
			"%s (records %d to %d): the records served do not hash to the signed tree "+
				"(the first %d records hash to %s, the signed tree says %s)",
			t.Path(), start, a.fr.size-1, a.fr.size, got, want)})
		return false, a.reseed(a.fr.size)
	}
	return true, nil
}

// reseedAfter reports hash tiles that fail to authenticate while checking
// tile t, then carries on after t.
func (a *recordAudit) reseedAfter(t tlog.Tile, err error) error {
	a.badTile(Problem{Kind: KindTileMismatch, Tile: t.Path(), Message: fmt.Sprintf(
		"the hash tiles needed to check %s do not match the signed tree: %v", t.Path(), err)})
	return a.reseed(t.N*tileWidth + int64(t.W))
}

// reseed restarts the rebuilt tree at size n from authenticated hashes.
func (a *recordAudit) reseed(n int64) error {
	fr, err := seedFrontier(n, a.thr)
	if err != nil {
		if isFetchError(err) {
			return err
		}
		return fmt.Errorf("failed to read the signed tree's hashes at size %d to restart the rebuilt tree there: %w", n, err)
	}
	a.fr = fr
	return nil
}

// parseRecord parses a record of the audited log. Its size is bounded only
// by the data tile it came in (sumdbclient.MaxDataTile): sumd records no
// more than gosum.MaxRecordSize, but that is sumd's rule, not the
// protocol's, and a longer record of another log is not malformed.
func parseRecord(text []byte) (gosum.Record, error) {
	return gosum.ParseMax(text, sumdbclient.MaxDataTile)
}

// record checks one authenticated record and queues its key.
func (a *recordAudit) record(id int64, rec gosum.Record, err error) {
	if err != nil {
		a.problem(malformedRecord(id, err))
		return
	}
	a.keys = append(a.keys, seenKey{rec.Key(), id})
	a.runHook(id, rec)
}

// malformedRecord is the problem of record id, authenticated, that is not
// a go.sum record (parseRecord's err).
func malformedRecord(id int64, err error) Problem {
	return Problem{Kind: KindMalformedRecord, Record: recordID(id), Message: fmt.Sprintf(
		"record %d is not the two go.sum lines of one module version: %s", id, quote(err.Error()))}
}

func (a *recordAudit) problem(p Problem) {
	a.clean = false
	a.found.add(p)
}

// badTile reports a problem of the data tile p.Tile as a whole, and
// remembers the tile, so that -recheck, which reads the same tiles of the
// same tree after the full audit, does not report it a second time.
func (a *recordAudit) badTile(p Problem) {
	if a.badTiles == nil {
		a.badTiles = map[string]bool{}
	}
	a.badTiles[p.Tile] = true
	a.problem(p)
}

// advance counts n more records as done.
func (a *recordAudit) advance(n int64) {
	a.done += n
	a.rep.RecordsAudited = a.done
	if a.opts.Progress != nil {
		a.opts.Progress(a.done, a.total)
	}
}
