package upstream

import "sync"

// workers runs a Recorder's flights on goroutines kept from one flight to
// the next while flights run. A first lookup's fetch, validation, hashing
// and record grow a new goroutine's stack several times over (inflating a
// zip alone puts kilobytes on it), copying the stack each time: 3–6% of
// the CPU of BenchmarkFirstLookup and of sumd serving first lookups. A
// kept goroutine has its stack grown already, until a garbage collection
// halves it. When the last flight ends every kept goroutine exits, so none
// outlives the work (testing/synctest's bubbles wait for them all).
type workers struct {
	mu      sync.Mutex
	running int         // flights started and not ended
	idle    int         // goroutines waiting on work, each owed one receive
	work    chan func() // a flight, or nil: exit
}

func newWorkers() *workers { return &workers{work: make(chan func())} }

// run runs fn on a waiting goroutine if there is one, else on a new one.
func (w *workers) run(fn func()) {
	w.mu.Lock()
	w.running++
	if w.idle > 0 {
		w.idle--
		w.mu.Unlock()
		w.work <- fn // the goroutine counted in idle receives it
		return
	}
	w.mu.Unlock()
	go w.loop(fn)
}

// loop runs fn, then waits for another flight while some still run.
func (w *workers) loop(fn func()) {
	for fn != nil {
		fn()
		w.mu.Lock()
		if w.running--; w.running == 0 {
			// No flight runs, so none is being handed over: release the
			// waiting goroutines and exit.
			n := w.idle
			w.idle = 0
			w.mu.Unlock()
			for range n {
				w.work <- nil
			}
			return
		}
		w.idle++
		w.mu.Unlock()
		fn = <-w.work
	}
}
