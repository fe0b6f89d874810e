package main

import (
	"runtime/debug"
	"testing"
)

// TestBatchGCKeepsGOGC: the batch commands raise the GC percent to 400,
// but not over a GOGC the operator set: GOGC=off ran them with the
// collector on, and GOGC=50 (less memory) at eight times the heap.
func TestBatchGCKeepsGOGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	for _, tc := range []struct {
		env     string
		percent int // set before, as the runtime does from GOGC
		want    int
	}{
		{"", 100, 400},
		{"off", -1, -1},
		{"50", 50, 50},
	} {
		t.Setenv("GOGC", tc.env)
		debug.SetGCPercent(tc.percent)
		batchGC()
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("GOGC=%q: batchGC left the GC percent at %d, want %d", tc.env, got, tc.want)
		}
	}
}
