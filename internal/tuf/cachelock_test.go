//go:build unix

package tuf

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestConcurrentFetchesOneCache: two runs on one cache (a cron job's sumd
// verify -state and an operator's) must not interleave. Run A, which
// verified timestamp v1, is held before it keeps it, while the server
// re-signs and run B starts: were B to run, A would then write v1 over
// the v2 B kept, and the next run would start from older metadata than
// the client verified (a spurious rollback, or a newer root lost). B
// fails instead, once its wait for the cache is over (none here), naming
// the directory another run holds.
func TestConcurrentFetchesOneCache(t *testing.T) {
	defer func(d time.Duration) { cacheLockWait = d }(cacheLockWait)
	cacheLockWait = 0
	f := newFixture(t)
	cache := t.TempDir()
	opts, errA, release := holdRunA(t, f, cache)
	f.clock.advance(TimestampRenewAfter)
	if s := f.signOnline(); !s.Timestamp {
		t.Fatal("the server did not re-sign its timestamp")
	}
	_, errB := Fetch(opts)
	var kept int64 // the timestamp version B kept, if it ran
	if errB == nil {
		kept = cachedVersion(t, cache, metadata.TIMESTAMP)
	}
	close(release)
	if err := <-errA; err != nil {
		t.Fatalf("run A: %v", err)
	}
	switch {
	case errB == nil:
		t.Errorf("run B, while run A held %s, succeeded: want ErrCacheInUse", cache)
		if v := cachedVersion(t, cache, metadata.TIMESTAMP); v < kept {
			t.Errorf("run A wrote timestamp version %d over version %d, which run B verified and kept", v, kept)
		}
	case !errors.Is(errB, ErrCacheInUse) || !strings.Contains(errB.Error(), cache):
		t.Errorf("run B while run A held the cache: %v, want ErrCacheInUse naming %s", errB, cache)
	}
	// A released the cache: the next run takes it, and the newer timestamp.
	if _, err := Fetch(opts); err != nil {
		t.Fatalf("run after A: %v", err)
	}
	if v, want := cachedVersion(t, cache, metadata.TIMESTAMP), f.clock.Now().Unix(); v != want {
		t.Errorf("cached timestamp version %d after the last run, want %d", v, want)
	}
}

// TestFetchWaitsForCache: a run that finds the cache held (two shells
// started at once, each running the documented export
// GOSUMDB="$(sumd tuf gosumdb … -cache DIR)") failed at once with
// ErrCacheInUse, leaving one shell's GOSUMDB empty: the go command then
// asks sum.golang.org about every module, private ones included. It now
// waits for the other run (up to cacheLockWait), then reads what that run
// kept.
func TestFetchWaitsForCache(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	opts, errA, release := holdRunA(t, f, cache)
	waiting := make(chan struct{})
	optsB := opts
	optsB.Logger = slog.New(&onMessage{msg: "another sumd run holds the TUF cache: waiting", do: func() { close(waiting) }})
	errB := make(chan error, 1)
	go func() {
		_, err := Fetch(optsB)
		errB <- err
	}()
	select {
	case err := <-errB:
		close(release)
		<-errA
		t.Fatalf("run B, started while run A held the cache, returned before A ended: %v; want it to wait for A", err)
	case <-waiting:
	}
	close(release)
	if err := <-errA; err != nil {
		t.Fatalf("run A: %v", err)
	}
	if err := <-errB; err != nil {
		t.Fatalf("run B, once run A released the cache: %v", err)
	}
}

// holdRunA starts run A of Fetch on cache against f's repository and
// returns once A, its metadata verified, is held at its first target
// request, with A's options, its result to come, and the channel whose
// closing lets it go on.
func holdRunA(t *testing.T, f *fixture, cache string) (ClientOptions, <-chan error, chan struct{}) {
	t.Helper()
	reached, release, ended := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/"+targetsDir+"/") && held.CompareAndSwap(false, true) {
			close(reached)
			select {
			case <-release:
			case <-ended: // a test that failed before releasing A
			}
		}
		f.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(ended) }) // runs first: srv.Close waits for A's request
	opts := ClientOptions{Root: f.root(1), URL: srv.URL + "/tuf", CacheDir: cache, Now: f.clock.Now}
	errA := make(chan error, 1)
	go func() {
		_, err := Fetch(opts)
		errA <- err
	}()
	<-reached
	return opts, errA, release
}

// onMessage is a slog.Handler that calls do once, at the first record
// whose message starts with msg.
type onMessage struct {
	msg  string
	do   func()
	once sync.Once
}

func (h *onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h *onMessage) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *onMessage) WithGroup(string) slog.Handler            { return h }
func (h *onMessage) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.msg) {
		h.once.Do(h.do)
	}
	return nil
}
