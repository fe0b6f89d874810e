package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"
)

// runGroup runs the listeners and the parts until ctx ends or one of them
// dies, then stops them in the order of the package doc: the listeners
// drain first (together, within one timeout), the parts are cancelled
// after them. It returns the first failure, or nil after a clean stop on
// ctx. Several listeners are for later: admin and metrics on their own.
func runGroup(ctx context.Context, servers []*listener, parts []Part, timeout time.Duration, logger *slog.Logger) error {
	// The parts' context is cancelled only after the drain, not with ctx.
	partCtx, stopParts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopParts()
	g, gctx := errgroup.WithContext(ctx)
	for _, srv := range servers {
		g.Go(srv.serve)
	}
	for _, p := range parts {
		g.Go(func() error { return runPart(partCtx, p, logger) })
	}
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("shutting down", "timeout", timeout)
		var drain errgroup.Group
		for _, srv := range servers {
			drain.Go(func() error { return srv.shutdown(timeout) })
		}
		err := drain.Wait()
		stopParts()
		return err
	})
	return g.Wait()
}

// runPart runs p and turns a return before ctx is done into an error.
func runPart(ctx context.Context, p Part, logger *slog.Logger) error {
	err := p.Run(ctx)
	if ctx.Err() != nil {
		return nil // stopped on request; an error now is the stop's echo
	}
	if err == nil {
		err = errors.New("it returned without an error")
	}
	logger.Error("part of the server died; stopping", "part", p.Name, "err", err)
	var hinted interface{ Hint() string }
	own := errors.As(err, &hinted) // the cause knows better what to do
	err = fmt.Errorf("%s stopped: %w", p.Name, err)
	if p.Hint != "" && !own {
		err = withHint(err, p.Hint)
	}
	return err
}

// sequencerHint is the hint for a log whose sequencer stopped for good.
const sequencerHint = "start sumd serve again: opening the database re-verifies it and carries on from what is durable"

// healthPart watches the log's sequencer, if the log reports its death: a
// storage failure whose outcome is unknown stops the sequencer for good
// (it cannot tell what is durable), and the server must then stop too, so
// that reopening the database decides.
func healthPart(l any) (Part, bool) {
	f, ok := l.(interface {
		Done() <-chan struct{} // closed when the sequencer stops
		Err() error            // why it stopped
	})
	if !ok {
		return Part{}, false
	}
	return Part{
		Name: "the log's sequencer",
		Hint: sequencerHint,
		Report: func(s *Status) {
			select {
			case <-f.Done():
				s.problem("log", "the sequencer stopped (see the server log); the server is stopping")
			default:
			}
		},
		Run: func(ctx context.Context) error {
			select {
			case <-ctx.Done():
				return nil
			case <-f.Done():
				return f.Err()
			}
		},
	}, true
}

// A hintError is an error with a hint saying what to do about it; sumd
// prints the hint after the error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }
func (e *hintError) Hint() string  { return e.hint }

func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }
