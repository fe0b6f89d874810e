package audit

import (
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/sumd-project/sumd/internal/gosum"
)

// checkpoint hands the keys met since the last checkpoint to the key set,
// with the audit's progress if no problem has been found. It waits for the
// hooks first, since a checkpoint promises that every record before it has
// been checked in full. The commit runs in the background while the next
// tiles are audited: it is the costliest step, and overlapping it with
// fetching and hashing keeps both cores busy. One commit at a time, in
// order, so a duplicate found by one is known before the next is started.
func (a *recordAudit) checkpoint() error {
	if err := a.hooks.Wait(); err != nil {
		return err
	}
	if err := a.collect(); err != nil {
		return err
	}
	if a.hookFound.Load() {
		a.clean = false
	}
	var cp *checkpoint
	if a.clean {
		fr := *a.fr // a.fr moves on while the commit runs
		cp = &checkpoint{head: a.head, frontier: &fr}
	}
	keys := a.keys
	a.keys, a.tiles = make([]seenKey, 0, len(keys)), 0
	done := make(chan commitResult, 1)
	go func() {
		dups, err := a.state.commit(keys, cp)
		done <- commitResult{dups, err}
	}()
	a.pending = done
	a.hooks = a.newHooks()
	return nil
}

// A commitResult is the outcome of state.commit.
type commitResult struct {
	dups []duplicate
	err  error
}

// collect waits for the commit in flight, if any, and reports the
// duplicates it found.
func (a *recordAudit) collect() error {
	if a.pending == nil {
		return nil
	}
	res := <-a.pending
	a.pending = nil
	for _, d := range res.dups {
		a.problem(Problem{Kind: KindDuplicate, Module: d.key, Record: recordID(d.then), Records: []int64{d.first, d.then},
			Message: fmt.Sprintf("%s is recorded twice, as records %d and %d: a checksum database holds one record per module version", quote(d.key), d.first, d.then)})
	}
	return res.err
}

// newHooks returns the group the record hooks of one checkpoint run in.
func (a *recordAudit) newHooks() *errgroup.Group {
	g, ctx := errgroup.WithContext(a.ctx)
	g.SetLimit(a.opts.Parallel)
	a.hookCtx = ctx
	return g
}

// runHook runs the record hook, if any, on an authenticated record.
func (a *recordAudit) runHook(id int64, rec gosum.Record) {
	hook := a.opts.RecordHook
	if hook == nil {
		return
	}
	ctx := a.hookCtx
	a.hooks.Go(func() error {
		p, err := hook(ctx, id, rec)
		if p != nil {
			a.found.add(*p)
			a.hookFound.Store(true)
		}
		return err
	})
}
