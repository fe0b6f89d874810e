package tlog

import (
	"context"
	"errors"
	"testing"
	"time"
)

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

	// Queued behind the first, then canceled: withdrawn.
	ctx, cancel := context.WithCancel(context.Background())
	ran := false
	second := make(chan error, 1)
	go func() {
		second <- l.control(ctx, func(context.Context) error { ran = true; return nil })
	}()
	time.Sleep(10 * time.Millisecond) // let it reach the queue
	cancel()
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
	if ran {
		t.Fatal("a control operation withdrawn while queued ran")
	}

	// Canceled while running: control waits and returns its result.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
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
	cancel()
	select {
	case err := <-third:
		t.Fatalf("control returned %v while its operation still ran", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-third; !errors.Is(err, want) {
		t.Fatalf("control canceled while running = %v, want its operation's result", err)
	}
}
