package modhash

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"
)

// MemoryBudget bounds the bytes of module zips that callers hold in memory
// at once to hash them with HashZipData, across the process. Small zips are
// hashed in memory because a temporary file's system calls cost more than
// the hashing; but uploads and the admin API's fetches are bounded in
// number only by the server's connections, so without a shared budget a
// burst of them could hold gigabytes. A caller that cannot hold its share
// writes the zip to a file, as it does a large one. Large go.mod files,
// which must be held in memory, wait for their share (WaitMemory).
const MemoryBudget = 64 << 20

var memory = semaphore.NewWeighted(MemoryBudget)

// HoldMemory takes n bytes of MemoryBudget if they are free now and
// returns their release (safe to call more than once), or returns ok
// false: the caller keeps the zip in a file instead. It never waits: a zip
// is never delayed for memory, only sent to disk. It fails too while a
// WaitMemory caller waits, whatever is free, so that a stream of zips
// taking what frees cannot starve the go.mod waiting: until that has its
// share, zips go to disk and hold nothing, and the share frees as the
// versions held meanwhile are hashed.
func HoldMemory(n int64) (release func(), ok bool) {
	if !memory.TryAcquire(n) {
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { memory.Release(n) }) }, true
}

// WaitMemory is HoldMemory for what the caller cannot keep in a file
// instead (a go.mod, which is compared and parsed whole): it waits for the
// n bytes (at most MemoryBudget) until ctx is done, and then fails with
// ctx's error.
func WaitMemory(ctx context.Context, n int64) (release func(), err error) {
	n = min(n, MemoryBudget)
	if err := memory.Acquire(ctx, n); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { memory.Release(n) }) }, nil
}
