package seed

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/module"
	"golang.org/x/sync/errgroup"

	"github.com/sumd-project/sumd/internal/gosum"
)

// A Fetch returns the record of a module version fetched from a module
// proxy, validated and hashed as the go command does:
// upstream.Fetcher.Fetch, the fetching sumd serve -upstream records with.
type Fetch func(ctx context.Context, m module.Version) (gosum.Record, error)

// A Failure is an incomplete version Complete could not complete.
type Failure struct {
	Incomplete
	Err error
}

// ErrHashMismatch means a proxy serves a version with another hash than
// the go.sum line that named it: not what the builds that wrote the go.sum
// file downloaded.
var ErrHashMismatch = errors.New("the module proxy serves other content than the go.sum line says")

// Complete fetches the incomplete versions, at most parallel at a time,
// and returns, in the order of incs, the records of those whose fetched
// hash equals the one go.sum line they have, and the failures: a version
// the proxy does not serve, serves invalid, or serves with another hash
// (ErrHashMismatch). It returns an error only when ctx ends.
func Complete(ctx context.Context, fetch Fetch, incs []Incomplete, parallel int) ([]gosum.Record, []Failure, error) {
	recs := make([]gosum.Record, len(incs))
	errs := make([]error, len(incs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallel, 1))
	for i, inc := range incs {
		g.Go(func() error {
			recs[i], errs[i] = completeOne(gctx, fetch, inc)
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var done []gosum.Record
	var failed []Failure
	for i, inc := range incs {
		if errs[i] != nil {
			failed = append(failed, Failure{inc, errs[i]})
			continue
		}
		done = append(done, recs[i])
	}
	return done, failed, nil
}

// completeOne fetches one version and checks it against its go.sum line.
func completeOne(ctx context.Context, fetch Fetch, inc Incomplete) (gosum.Record, error) {
	rec, err := fetch(ctx, inc.Version)
	if err != nil {
		return gosum.Record{}, err
	}
	got, what := rec.Hash, "zip"
	if inc.GoMod {
		got, what = rec.GoMod, "go.mod"
	}
	if got != inc.Hash {
		return gosum.Record{}, fmt.Errorf("%w: %s hash %s, go.sum has %s", ErrHashMismatch, what, got, inc.Hash)
	}
	return rec, nil
}
