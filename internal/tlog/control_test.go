package tlog

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// A steppedContext is canceled by handing a value to the select waiting
// on its Done channel: once the send returns, that select has taken its
// Done case, which closing a channel would not tell (nor when the waiter
// got there), so a test needs no sleep to know where the waiter is.
type steppedContext struct {
	context.Context // Background's deadline and values: none
	done            chan struct{}
	canceled        atomic.Bool
}

func newSteppedContext() *steppedContext {
	return &steppedContext{Context: context.Background(), done: make(chan struct{})}
}

func (c *steppedContext) Done() <-chan struct{} { return c.done }

func (c *steppedContext) Err() error {
	if c.canceled.Load() {
		return context.Canceled
	}
	return nil
}

// cancel returns once the one select waiting on Done has taken it.
func (c *steppedContext) cancel() {
	c.canceled.Store(true)
	c.done <- struct{}{}
}

// TestControlCanceled checks control's promise to callers whose context
// ends: an operation still queued is withdrawn and never runs, and one
// already running is waited for, its result returned, so that a canceled
// write is either done or never done when control returns.
func TestControlCanceled(t *testing.T) {
	l := openMem(t, NewMemStore(), testKey(t, "sum.example.com"))
	defer l.Close()
	started, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- l.control(context.Background(), func(context.Context) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started

	// Queued behind the first (control waits on Done only once its
	// request is queued), then canceled: withdrawn.
	ctx := newSteppedContext()
	var ran atomic.Bool
	second := make(chan error, 1)
	go func() {
		second <- l.control(ctx, func(context.Context) error { ran.Store(true); return nil })
	}()
	ctx.cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("queued control canceled: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// The sequencer has passed the withdrawn one when the next runs.
	if err := l.control(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Fatal("a control operation withdrawn while queued ran")
	}

	// Canceled while running (the cancellation taken by control before
	// the operation may end): control waits and returns its result.
	ctx = newSteppedContext()
	started, release = make(chan struct{}), make(chan struct{})
	want := errors.New("the operation's own result")
	third := make(chan error, 1)
	go func() {
		third <- l.control(ctx, func(context.Context) error {
			close(started)
			<-release
			return want
		})
	}()
	<-started
	ctx.cancel()
	close(release)
	if err := <-third; !errors.Is(err, want) {
		t.Fatalf("control canceled while running = %v, want its operation's result", err)
	}
}
