package mirror

import (
	"context"
	"errors"
	"net/http"
	"testing"
)

// TestCancelledRoundNoProblem: a round cancelled while it waits on the
// origin (sumd serve shutting down) says nothing about the origin: the
// client's *FetchError, of no status, wraps context.Canceled, and the
// status read "the origin cannot be reached" because that case came first.
func TestCancelledRoundNoProblem(t *testing.T) {
	o := newOrigin(t, 10)
	m, _ := newMirror(t, o)
	f := newFollower(t, o, m, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cancel() // the shutdown, while the origin has not answered
		<-r.Context().Done()
	}))
	_, err := f.Sync(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("round cancelled while waiting on the origin: %v, want context.Canceled", err)
	}
	if got := f.Status().Problem; got != "" {
		t.Errorf("status after a cancelled round: %q, want no problem", got)
	}
}
