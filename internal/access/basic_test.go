package access

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"golang.org/x/crypto/bcrypt"
)

// TestBcryptSlots: one core is always left to verified users, and a
// one-core server still checks passwords.
func TestBcryptSlots(t *testing.T) {
	for procs, want := range map[int]int{1: 1, 2: 1, 3: 2, 4: 3, 16: 15} {
		if got := bcryptSlots(procs); got != want {
			t.Errorf("bcryptSlots(%d) = %d, want %d", procs, got, want)
		}
	}
	s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
	if got, want := cap(s.layer.basic.slots), bcryptSlots(runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("the store has %d bcrypt slots, want %d", got, want)
	}
}

// A spyCompare stands for bcrypt.CompareHashAndPassword: it counts the
// runs, how many run at once, and holds each until release is closed.
type spyCompare struct {
	runs, running, most atomic.Int32
	started             chan struct{} // gets a value as each run starts
	release             chan struct{}
}

func newSpyCompare() *spyCompare {
	return &spyCompare{started: make(chan struct{}, 1000), release: make(chan struct{})}
}

func (c *spyCompare) compare(hash, password []byte) error {
	c.runs.Add(1)
	n := c.running.Add(1)
	defer c.running.Add(-1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	c.started <- struct{}{}
	<-c.release
	return bcrypt.CompareHashAndPassword(hash, password)
}

// TestSharedCheck: a go command's burst of requests with new credentials
// costs one bcrypt run, which all of them wait for and share. It runs in a
// synctest bubble, where synctest.Wait says when every request waits.
func TestSharedCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
		spy := newSpyCompare()
		s.layer.basic.compare = spy.compare
		const n = 20
		var wg sync.WaitGroup
		codes := make([]int, n)
		for i := range n {
			wg.Go(func() { codes[i] = s.do("GET", "/tile/8/0/000", basicAuth("reader", readerPass)).Code })
		}
		<-spy.started
		// Once the other requests wait, they have reached the check: they
		// must have joined the run, not queued for their own.
		synctest.Wait()
		close(spy.release)
		wg.Wait()
		for i, code := range codes {
			if code != 200 {
				t.Errorf("request %d: %d, want 200", i, code)
			}
		}
		if runs := spy.runs.Load(); runs != 1 {
			t.Errorf("%d concurrent requests with the same new credentials ran bcrypt %d times, want once", n, runs)
		}
		checks := func(result string) float64 { return counter(t, s.layer.metrics.checks, result) }
		if v, total := checks("verified"), checks("verified")+checks("shared")+checks("cached"); v != 1 || total != n {
			t.Errorf("sumd_access_basic_checks_total: %v verified of %v, want 1 of %d", v, total, n)
		}
	})
}

// TestGuessesBounded: distinct wrong guesses, which cannot share a run,
// never run more bcrypt checks at once than there are slots, and each is
// checked.
func TestGuessesBounded(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	testGuessesBounded(t)
}

func testGuessesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
		spy := newSpyCompare()
		s.layer.basic.compare = spy.compare
		slots := cap(s.layer.basic.slots)
		const n = 12
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				want(t, "a guess", s.do("GET", "/latest", basicAuth("reader", fmt.Sprint("guess-", i))), 401, "wrong credentials")
			})
		}
		for range slots {
			<-spy.started
		}
		// Wait until every guess waits: one beyond the slots would have
		// started by then, were it allowed to.
		synctest.Wait()
		if most := spy.most.Load(); most != int32(slots) {
			t.Errorf("%d bcrypt checks ran at once with %d slots", most, slots)
		}
		close(spy.release)
		wg.Wait()
		if most := spy.most.Load(); most != int32(slots) || slots != 3 {
			t.Errorf("%d bcrypt checks ran at once with %d slots on 4 cores, want 3", most, slots)
		}
		if runs := spy.runs.Load(); runs != n {
			t.Errorf("%d distinct guesses ran bcrypt %d times, want %d", n, runs, n)
		}
	})
}

// TestSharedCheckLeaderEnds: when the request that started a shared run
// ends while the run waits for a slot, the requests sharing it do not get
// its 503: one of them waits again. In a synctest bubble, synctest.Wait
// says when each request waits, so which one leads is certain.
func TestSharedCheckLeaderEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
		b := s.layer.basic
		for range cap(b.slots) {
			b.slots <- struct{}{} // every slot busy
		}
		ctx, cancel := context.WithCancel(context.Background())
		led := make(chan *denial)
		go func() {
			_, d := b.check(ctx, "reader", readerPass)
			led <- d
		}()
		synctest.Wait() // the first request leads the run, waiting for a slot
		shared := make(chan *denial)
		go func() {
			_, d := b.check(context.Background(), "reader", readerPass)
			shared <- d
		}()
		synctest.Wait() // the second one shares it
		cancel()
		if d := <-led; d != errEnded {
			t.Errorf("the request that ended: %v, want errEnded", d)
		}
		for range cap(b.slots) {
			<-b.slots
		}
		if d := <-shared; d != nil {
			t.Errorf("the request sharing its run: %v, want verified", d.msg)
		}
		if v := counter(t, s.layer.metrics.checks, "verified"); v != 1 {
			t.Errorf("%v verified checks, want 1", v)
		}
	})
}

// TestUnknownCost: an unknown user name is checked at the bcrypt cost of a
// real user, the same one at every request, so that its timing is a real
// user's; over many names every cost of the file comes up, and no other.
func TestUnknownCost(t *testing.T) {
	hashOf := func(cost int) string {
		h, err := bcrypt.GenerateFromPassword([]byte("pw"), cost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	file := writeSecret(t, t.TempDir(), "htpasswd",
		"zed:"+hashOf(4)+"\nann:"+hashOf(6)+"\nbob:"+hashOf(5)+"\ncid:"+hashOf(4)+"\n")
	s := newSetup(t, Config{Mode: ModeBasic, File: file})
	b := s.layer.basic
	f, err := b.file.load()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.costs, []int{6, 5, 4, 4}) {
		t.Errorf("costs %v, want 6 5 4 4 (ann, bob, cid, zed)", f.costs)
	}
	var checked []int // the cost of each hash bcrypt was given
	b.compare = func(hash, password []byte) error {
		cost, _ := bcrypt.Cost(hash)
		checked = append(checked, cost)
		return bcrypt.CompareHashAndPassword(hash, password)
	}
	seen := map[int]int{}
	for i := range 100 {
		name := fmt.Sprint("nobody-", i)
		cost := b.unknownCost(f, name)
		if again := b.unknownCost(f, name); again != cost {
			t.Fatalf("%s: cost %d, then %d", name, cost, again)
		}
		seen[cost]++
		checked = checked[:0]
		want(t, name, s.do("GET", "/latest", basicAuth(name, "pw")), 401, "wrong credentials")
		if len(checked) != 1 || checked[0] != cost {
			t.Errorf("%s: bcrypt checked hashes of costs %v, want one of %d", name, checked, cost)
		}
	}
	if len(seen) != 3 || seen[4] == 0 || seen[5] == 0 || seen[6] == 0 {
		t.Errorf("100 unknown names got the costs %v, want 4, 5 and 6", seen)
	}

	// Another start (a new store) gives every name the same cost, and a
	// user added to the file moves only the names it now wins: an attacker
	// probing before and after learns nothing of the names that exist.
	other := newBasicStore(file, newMetrics(nil), slog.New(slog.DiscardHandler))
	eve := hashOf(7)
	added, err := parseBasicFile([]byte("zed:" + f.secrets[3] + "\nann:" + f.secrets[0] + "\nbob:" + f.secrets[1] + "\ncid:" + f.secrets[2] + "\neve:" + eve + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	moved := 0
	for i := range 100 {
		name := fmt.Sprint("nobody-", i)
		if b.unknownCost(f, name) != other.unknownCost(f, name) {
			t.Errorf("%s: another start gives another cost", name)
		}
		if c := b.unknownCost(added, name); c != b.unknownCost(f, name) {
			if c != 7 {
				t.Errorf("%s: cost %d after eve was added, not eve's", name, c)
			}
			moved++
		}
	}
	if moved == 0 || moved > 40 {
		t.Errorf("adding one user of five moved %d of 100 names, want about 20", moved)
	}

	// A file of one cost: every unknown name gets it.
	replace(t, file, "ann:"+hashOf(5)+"\nbob:"+hashOf(5)+"\n")
	if f, err = b.file.load(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if cost := b.unknownCost(f, fmt.Sprint("nobody-", i)); cost != 5 {
			t.Errorf("nobody-%d: cost %d in a file of cost 5 only", i, cost)
		}
	}
}

// TestDummyHashShared: the first unknown names after a start, all at once,
// wait for one dummy hash of their cost: made once, not once each beside
// the bcrypt slots (anonymous work unbounded). Four cores give three
// slots, so that several names reach the dummy hash at once (one slot, as
// on two cores, would make it once whatever the code).
func TestDummyHashShared(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	synctest.Test(t, func(t *testing.T) {
		s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
		var made atomic.Int32
		release := make(chan struct{})
		s.layer.basic.generate = func(password []byte, cost int) ([]byte, error) {
			made.Add(1)
			<-release
			return bcrypt.GenerateFromPassword(password, cost)
		}
		const n = 16
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				want(t, "unknown", s.do("GET", "/latest", basicAuth(fmt.Sprint("nobody-", i), "pw")), 401, "wrong credentials")
			})
		}
		synctest.Wait() // every one waits: for the dummy hash, or a bcrypt slot
		close(release)
		wg.Wait()
		if m := made.Load(); m != 1 {
			t.Errorf("%d unknown names at once made %d dummy hashes, want 1", n, m)
		}
	})
}

// TestGuessCostInSlot: choosing the bcrypt cost of a guessed user name
// (one HMAC of the name per user of the file: more than the bcrypt check
// itself with thousands of users) runs in a bcrypt slot, so a flood of
// guesses cannot run it on every core; and a name longer than any a file
// may hold is refused without it.
func TestGuessCostInSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
		b := s.layer.basic
		var chosen atomic.Int32
		b.cost = func(f basicFile, user string) int {
			chosen.Add(1)
			return b.unknownCost(f, user)
		}
		if _, d := b.check(context.Background(), strings.Repeat("u", 12_000), "guess"); d != errWrong || chosen.Load() != 0 {
			t.Fatalf("a 12,000-byte user name: %v, cost chosen %d times; want refused with none", d, chosen.Load())
		}
		for range cap(b.slots) {
			b.slots <- struct{}{} // every slot busy
		}
		const n = 8
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if _, d := b.check(context.Background(), fmt.Sprint("guess-", i), "guess"); d != errWrong {
					t.Errorf("guess %d: %v, want wrong credentials", i, d)
				}
			})
		}
		synctest.Wait() // every guess waits: it would have chosen by now, were it allowed to
		if c := chosen.Load(); c != 0 {
			t.Errorf("%d guesses chose their cost while every bcrypt slot was busy", c)
		}
		for range cap(b.slots) {
			<-b.slots
		}
		wg.Wait()
		if c := chosen.Load(); c != n {
			t.Errorf("%d guesses chose their cost %d times, want once each", n, c)
		}
		// A known user's check chooses it too: its time (one HMAC per user)
		// must not tell known names from unknown ones.
		if _, d := b.check(context.Background(), "reader", readerPass); d != nil || chosen.Load() != n+1 {
			t.Errorf("a known user's first check: %v, cost chosen %d times in all, want verified and %d", d, chosen.Load(), n+1)
		}
	})
}

// TestRememberedKeysUnknownUsers: remembered (/healthz) computed the HMAC
// of a pair only for a user name the file holds, so an answer there about
// a microsecond faster told which names exist, where check computes it for
// every name alike. Counting the HMACs each computes, without timing
// anything: an unknown name costs the one a known name does.
func TestRememberedKeysUnknownUsers(t *testing.T) {
	s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
	v := s.layer.basic.verified
	var sums atomic.Int32
	v.macs = sync.Pool{New: func() any { return countingHash{hmac.New(sha256.New, v.secret[:]), &sums} }}
	keys := func(user string) int32 {
		sums.Store(0)
		if p := s.layer.basic.remembered(user, "nope"); p != nil {
			t.Fatalf("remembered(%q, wrong password) = %v, want nil", user, p)
		}
		return sums.Load()
	}
	known, unknown := keys("auditor"), keys("nobody")
	if known != 1 || unknown != known {
		t.Errorf("remembered computed %d HMACs for a known user name and %d for an unknown one, want 1 for each", known, unknown)
	}
}

// countingHash counts the digests taken of it.
type countingHash struct {
	hash.Hash
	sums *atomic.Int32
}

func (h countingHash) Sum(b []byte) []byte {
	h.sums.Add(1)
	return h.Hash.Sum(b)
}

// TestCheckKeysUnknownUsers: check computed the HMAC of a pair twice for a
// user name the file holds but has not verified with that password (to
// look it up in the cache, then to key the shared run) and once for an
// unknown one, and looked the cache up only for the known name, so a wrong
// password answered a little slower for a name that exists. Counting the
// HMACs, without timing anything: an unknown name costs what a known one
// does.
func TestCheckKeysUnknownUsers(t *testing.T) {
	s := newSetup(t, Config{Mode: ModeBasic, File: writeSecret(t, t.TempDir(), "htpasswd", htpasswd(t))})
	b := s.layer.basic
	b.compare = func(hash, password []byte) error { return bcrypt.ErrMismatchedHashAndPassword }
	v := b.verified
	var sums atomic.Int32
	v.macs = sync.Pool{New: func() any { return countingHash{hmac.New(sha256.New, v.secret[:]), &sums} }}
	keys := func(user string) int32 {
		sums.Store(0)
		if p, d := b.check(context.Background(), user, "nope"); p != nil || d != errWrong {
			t.Fatalf("check(%q, wrong password) = %v, %v, want errWrong", user, p, d)
		}
		return sums.Load()
	}
	known, unknown := keys("auditor"), keys("nobody")
	if known != 1 || unknown != known {
		t.Errorf("check computed %d HMACs for a known user name and %d for an unknown one, want 1 for each", known, unknown)
	}
}
