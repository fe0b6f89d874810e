package heapfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// percent returns the GC percent in force.
func percent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// collect runs a collection and waits until the tuner has seen it.
func collect(t *testing.T, seen chan int) int {
	t.Helper()
	runtime.GC()
	return <-seen
}

func TestKeepRaisesGoalOfSmallHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	seen := make(chan int, 16)
	tuned = func(p int) { seen <- p }
	defer func() { tuned = func(int) {} }()
	stop := Keep(1 << 30) // far above this test's live heap
	t.Cleanup(stop)
	<-seen // Keep's own, for the heap before any collection
	p := collect(t, seen)
	if p <= 100 || percent() != p {
		t.Fatalf("after a collection of a heap far below the floor: GC percent %d (in force %d), want above 100", p, percent())
	}
	stop()
	if got := percent(); got != 100 {
		t.Fatalf("after stop: GC percent %d, want the 100 in force before Keep", got)
	}
}

func TestKeepNeverLowersPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(300))
	seen := make(chan int, 16)
	tuned = func(p int) { seen <- p }
	defer func() { tuned = func(int) {} }()
	t.Cleanup(Keep(1)) // below any live heap
	<-seen
	if p := collect(t, seen); p != 300 || percent() != 300 {
		t.Fatalf("heap above the floor: GC percent %d (in force %d), want GOGC's 300 kept", p, percent())
	}
}

func TestKeepLeavesGCOff(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	t.Cleanup(Keep(1 << 30))
	runtime.GC()
	if p := percent(); p != -1 {
		t.Fatalf("with GOGC=off: GC percent %d, want -1 kept", p)
	}
}

func TestKeepOnceAtATime(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	seen := make(chan int, 16)
	tuned = func(p int) { seen <- p }
	defer func() { tuned = func(int) {} }()
	stopA := Keep(1 << 30)
	t.Cleanup(stopA)
	<-seen
	if p := collect(t, seen); p <= 100 {
		t.Fatalf("GC percent %d after a collection, want above 100", p)
	}
	stopB := Keep(1 << 30) // while the first is in force: must change nothing
	t.Cleanup(stopB)
	stopA()
	stopB()
	if got := percent(); got != 100 {
		t.Fatalf("after both stopped, the first first: GC percent %d, want the 100 in force before the first Keep", got)
	}
}
