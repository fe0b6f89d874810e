// Package heapfloor keeps the garbage collector from running on a small heap
// as often as GOGC alone makes it.
//
// With GOGC=100 a collection starts once the heap has grown by as much as
// was live after the last one. sumd serve lives on a few MiB (5–8 MiB in
// the first-lookup benchmark), so it collected every 5 MiB allocated, about
// every 150 first lookups, and the collector's fixed cost per cycle (its
// workers waking, stacks scanned, the whole live heap marked) came to a
// tenth of the CPU of a lookup. Keep raises the GC percent, after each
// collection, so that the next one waits until the heap reaches a floor,
// tens of MiB: a server whose live heap is already above the floor
// collects as GOGC says.
package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// maxPercent caps the percent Keep sets, whatever the floor: a live heap
// of a few KiB must not make the next collection wait for a million times
// it.
const maxPercent = 10000

// tuned is called with the GC percent set after each collection (tests).
var tuned = func(int) {}

// Keep keeps the heap goal, the heap size at which the next collection
// starts, at least floor bytes: after each collection it sets the GC
// percent to the larger of the one in force when Keep was called (GOGC's,
// 100 by default) and the one that puts the goal at floor, up to
// maxPercent. It never lowers the percent below GOGC's, and with GOGC=off
// it does nothing. A memory limit (GOMEMLIMIT) still makes the collector
// run earlier when the heap nears it. stop restores the percent of before
// and ends the tuning. While one Keep is in force, another does nothing
// (its stop too): the percent is the process's.
func Keep(floor uint64) (stop func()) {
	if !active.CompareAndSwap(false, true) {
		return func() {}
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 {
		active.Store(false)
		return func() {}
	}
	t := &tuner{floor: floor, base: base, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.tune()
	arm(t)
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.stopped {
			t.stopped = true
			debug.SetGCPercent(base)
			active.Store(false)
		}
	}
}

// active is set while a Keep is in force.
var active atomic.Bool

// A tuner sets the GC percent after each collection.
type tuner struct {
	floor  uint64
	base   int
	sample []metrics.Sample

	mu      sync.Mutex // held while setting the percent, so stop is final
	stopped bool
}

// A sentinel is garbage as soon as it is made, so that its finalizer runs
// once per collection: it arms the next one. It holds a pointer so that it
// is not one of the tiny objects sharing a block, whose finalizers may
// never run.
type sentinel struct{ t *tuner }

func arm(t *tuner) {
	runtime.SetFinalizer(&sentinel{t}, func(s *sentinel) {
		if s.t.tune() {
			arm(s.t)
		}
	})
}

// tune sets the percent for the live heap the last collection left, and
// reports whether tuning goes on.
func (t *tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	p := t.base
	if s := t.sample[0]; s.Value.Kind() == metrics.KindUint64 {
		p = percentFor(t.floor, s.Value.Uint64(), t.base)
	}
	debug.SetGCPercent(p)
	tuned(p)
	return true
}

// percentFor returns the GC percent that makes the goal of a live heap of
// live bytes floor, at least base and at most maxPercent.
func percentFor(floor, live uint64, base int) int {
	if live == 0 || live >= floor {
		return base
	}
	p := uint64(maxPercent)
	if q := (floor - live) * 100 / live; q < p {
		p = q
	}
	return max(int(p), base)
}
