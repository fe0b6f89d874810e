//go:build unix

package tuf

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// TestConcurrentFetchesOneCache: two runs on one cache (a cron job's sumd
// verify -state and an operator's) must not interleave. Run A, which
// verified timestamp v1, is held before it keeps it, while the server
// re-signs and run B starts: were B to run, A would then write v1 over
// the v2 B kept, and the next run would start from older metadata than
// the client verified (a spurious rollback, or a newer root lost). B
// fails at once instead, naming the directory another run holds.
func TestConcurrentFetchesOneCache(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	reached, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A's first target request: its metadata is verified by then.
		if strings.Contains(r.URL.Path, "/"+targetsDir+"/") && held.CompareAndSwap(false, true) {
			close(reached)
			<-release
		}
		f.handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	opts := ClientOptions{Root: f.root(1), URL: srv.URL + "/tuf", CacheDir: cache, Now: f.clock.Now}
	errA := make(chan error, 1)
	go func() {
		_, err := Fetch(opts)
		errA <- err
	}()
	<-reached
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
