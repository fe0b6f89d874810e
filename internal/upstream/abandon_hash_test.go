package upstream

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// A gatedContext is the context a hash runs with in
// TestAbandonedHashFreesSlot. Until open is closed, its Err, which the
// hash of a large zip calls before each read (see modhash.ctxReaderAt),
// reports the hash under way by closing reading and blocks, so the hash
// cannot get past its first read. Once open, Err is its parent's, which
// the hang-up has cancelled; were the parent not done, the hash would be
// reading on for nobody: Err reports that by closing readOn and blocks
// until finish is closed, so that the hash cannot end, and free its slot,
// meanwhile.
type gatedContext struct {
	context.Context
	reading, open, readOn, finish chan struct{}
	readingOnce, readOnOnce       sync.Once
}

func newGatedContext() *gatedContext {
	return &gatedContext{reading: make(chan struct{}), open: make(chan struct{}),
		readOn: make(chan struct{}), finish: make(chan struct{})}
}

func (c *gatedContext) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	select {
	case <-c.open:
		c.readOnOnce.Do(func() { close(c.readOn) })
		<-c.finish
	default:
		c.readingOnce.Do(func() { close(c.reading) })
		<-c.open
	}
	return c.Context.Err()
}

// TestAbandonedHashFreesSlot: a client that hangs up while its version is
// hashed gets its per-client count back at once, and the fetch slot
// follows when the hash's next read finds the flight cancelled, not when
// the hash of a large zip ends: otherwise one address cycling lookups of
// large versions, hanging up each time, holds every slot past
// -upstream-per-client. The abandoned version is neither recorded nor
// remembered as failed. The hash is held at its first read (gatedContext)
// until the client has gone, so that the hang-up falls mid-hash whatever
// the machine's speed.
func TestAbandonedHashFreesSlot(t *testing.T) {
	dir := t.TempDir()
	// Over modhash's wholeZip (1 MiB), so that it is read through a
	// ctxReaderAt, a read at a time.
	big := testproxy.WithNoise(goodModule("example.com/big", "v1.0.0"), 2<<20)
	small := goodModule("example.com/small", "v1.0.0")
	if _, err := testproxy.Build(dir, []testproxy.Module{big, small}); err != nil {
		t.Fatal(err)
	}
	gate := newGatedContext()
	opened := sync.OnceFunc(func() { close(gate.open) })
	defer opened()
	defer close(gate.finish)
	hashContext = func(ctx context.Context) context.Context {
		if gate.Context != nil {
			return ctx // the small lookup's, after the hang-up
		}
		gate.Context = ctx
		return gate
	}
	defer func() { hashContext = func(ctx context.Context) context.Context { return ctx } }()

	f := newFetcher(t, "file://"+dir, FetcherOptions{})
	l := testLog(t)
	rec := newRecorder(t, l, RecorderOptions{Fetcher: f, MaxFetches: 1, MaxClientFetches: 1,
		Client: func(context.Context) (string, bool) { return "192.0.2.1:1234", false }})
	ctx, hangUp := context.WithCancel(context.Background())
	defer hangUp()
	looked := make(chan error, 1)
	go func() {
		_, err := rec.Lookup(ctx, mv(big.Path, big.Version))
		looked <- err
	}()
	select {
	case <-gate.reading:
	case err := <-looked:
		t.Fatalf("lookup ended (%v) without its hash reading the zip through its context", err)
	}
	if n := len(rec.slots); n != 1 {
		t.Fatalf("%d fetch slots taken while the hash runs, want 1", n)
	}
	hangUp()
	if err := <-looked; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned lookup: %v, want the hang-up's error", err)
	}
	rec.perClient.mu.Lock()
	counted := len(rec.perClient.n)
	rec.perClient.mu.Unlock()
	if counted != 0 {
		t.Errorf("per-client count not given back at the hang-up, while the hash is held: %d clients counted", counted)
	}
	// The hash is still held at its first read, the slot with it: let
	// that read find the flight cancelled. The slot must free then, with
	// the hash stopped there: one reading on is held (readOn) and can
	// never free it. The minute is only there not to hang.
	if n := len(rec.slots); n != 1 {
		t.Fatalf("%d fetch slots taken while the hash is held, want 1", n)
	}
	opened()
	for waited := time.Now(); len(rec.slots) > 0; time.Sleep(time.Millisecond) {
		select {
		case <-gate.readOn:
			t.Fatal("the abandoned hash read on after the hang-up, holding its fetch slot")
		default:
		}
		if time.Since(waited) > time.Minute {
			t.Fatal("fetch slot still taken a minute after the abandoned hash read on")
		}
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
