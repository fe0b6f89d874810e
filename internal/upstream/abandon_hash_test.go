package upstream

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestAbandonedHashFreesSlot: a client that hangs up while its version is
// hashed gets its per-client count back at once, and the fetch slot must
// follow within moments, not when the hash of a large zip ends (seconds):
// otherwise one address cycling lookups of large versions, hanging up each
// time, holds every slot past -upstream-per-client. The abandoned version
// is neither recorded nor remembered as failed.
func TestAbandonedHashFreesSlot(t *testing.T) {
	dir := t.TempDir()
	big := testproxy.WithNoise(goodModule("example.com/big", "v1.0.0"), 120<<20)
	small := goodModule("example.com/small", "v1.0.0")
	if _, err := testproxy.Build(dir, []testproxy.Module{big, small}); err != nil {
		t.Fatal(err)
	}
	f := newFetcher(t, "file://"+dir, FetcherOptions{})
	l := testLog(t)
	rec := newRecorder(t, l, RecorderOptions{Fetcher: f, MaxFetches: 1, MaxClientFetches: 1,
		Client: func(context.Context) (string, bool) { return "192.0.2.1:1234", false }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := rec.Lookup(ctx, mv(big.Path, big.Version)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("abandoned lookup: %v, want the deadline's error", err)
	}
	// The flight winds down after the caller returns: its slot must free
	// in a small part of what the whole fetch and hash takes (measured
	// below, seconds on a slow machine), not once the hash ends.
	hungUp := time.Now()
	for len(rec.slots) > 0 && time.Since(hungUp) < time.Minute {
		time.Sleep(time.Millisecond)
	}
	freed := time.Since(hungUp)
	start := time.Now()
	if _, err := f.Fetch(context.Background(), mv(big.Path, big.Version)); err != nil {
		t.Fatal(err)
	}
	whole := time.Since(start)
	t.Logf("slot freed %v after the hang-up; a whole fetch takes %v", freed, whole)
	if freed > whole/4 {
		t.Errorf("slot freed %v after the hang-up, the hash held it on (a whole fetch takes %v)", freed, whole)
	}
	if _, err := rec.Lookup(context.Background(), mv(small.Path, small.Version)); err != nil {
		t.Errorf("lookup after the hang-up: %v", err)
	}
	if e := rec.neg.get(mv(big.Path, big.Version)); e != nil {
		t.Errorf("abandoned version remembered as failed: %v", e)
	}
	if _, err := l.Lookup(context.Background(), mv(big.Path, big.Version)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("abandoned version: log lookup %v, want not found", err)
	}
}
