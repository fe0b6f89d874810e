package tlog

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// TestBeyondTreeBurst: anyone may ask for a tile of a tree beyond the
// published one (GET /tile/8/0/999999.p/1); each such request made a
// process on a shared store read the stored head. Now the stored head is
// read at most once per coverWait for them, and they are still not found.
//
// The requests are a fixed number, made in a synctest bubble: its clock
// moves only when every goroutine waits, so the time they span, and the
// bound drawn from it, are the code's waits, not the machine's speed.
func TestBeyondTreeBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		s, k := &sharedMem{MemStore: NewMemStore()}, testKey(t, "sum.example.com")
		l := openShared(t, s, Options{Keys: []*Key{k}, RefreshInterval: time.Hour})
		if _, err := l.Add(ctx, record(0, 0)); err != nil {
			t.Fatal(err)
		}
		const clients, each = 4, 50
		loads, start := s.loads.Load(), time.Now()
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for range each {
					// A millisecond apart on the bubble's clock: at one
					// instant every caller would join the catch-up begun
					// at it, and a wait of none would pass unseen.
					time.Sleep(time.Millisecond)
					_, err := l.ReadTileData(ctx, tlog.Tile{H: 8, L: 0, N: 999999, W: 1})
					if !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("a tile beyond the tree: %v, want not exist", err)
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		got := s.loads.Load() - loads
		t.Logf("%d requests beyond the tree in %v read the stored head %d times", clients*each, elapsed, got)
		// One catch-up per coverWait, callers that wake together joining
		// the one begun after they arrived (50 in the 12.5 s the bubble's
		// clock shows); with no wait, 50 within the 50 ms of spacing.
		if limit := 2*int64(elapsed/coverWait) + 2; got > limit {
			t.Errorf("%d requests beyond the tree in %v read the stored head %d times, want at most %d", clients*each, elapsed, got, limit)
		}
	})
}
