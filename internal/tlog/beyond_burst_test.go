package tlog

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// TestBeyondTreeBurst: anyone may ask for a tile of a tree beyond the
// published one (GET /tile/8/0/999999.p/1); each such request made a
// process on a shared store read the stored head. Now the stored head is
// read at most once per coverWait for them, and they are still not found.
func TestBeyondTreeBurst(t *testing.T) {
	ctx := context.Background()
	s, k := &sharedMem{MemStore: NewMemStore()}, testKey(t, "sum.example.com")
	l := openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
	if _, err := l.Add(ctx, record(0, 0)); err != nil {
		t.Fatal(err)
	}
	const burst = time.Second
	loads, start := s.loads.Load(), time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	requests := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < burst {
				_, err := l.ReadTileData(ctx, tlog.Tile{H: 8, L: 0, N: 999999, W: 1})
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a tile beyond the tree: %v, want not exist", err)
					return
				}
				mu.Lock()
				requests++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	got := s.loads.Load() - loads
	t.Logf("%d requests beyond the tree in %v read the stored head %d times", requests, elapsed.Round(time.Millisecond), got)
	// One catch-up per coverWait, callers that wake together joining the
	// one begun after they arrived (before they did, 11 to 16 a second
	// failed this bound); the code before read it about 50,000 times a
	// second.
	if limit := 2*int64(elapsed/coverWait) + 2; got > limit {
		t.Errorf("%d requests beyond the tree in %v read the stored head %d times, want at most %d", requests, elapsed.Round(time.Millisecond), got, limit)
	}
}
