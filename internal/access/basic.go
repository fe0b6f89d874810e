package access

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"
)

// maxVerified bounds the remembered user name and password pairs: each is
// 32 bytes of map key; thousands of developers fit.
const maxVerified = 8192

// bcryptWait is how long a request waits for a free bcrypt slot before it
// gets a 503: past it the server is being flooded with guesses.
const bcryptWait = 5 * time.Second

// bcryptSlots is how many bcrypt checks may run at once on procs cores:
// one core is always left to the requests of users already verified, so
// that a flood of guesses cannot lock them out.
func bcryptSlots(procs int) int {
	return max(1, procs-1)
}

// A basicStore checks user names and passwords against an htpasswd file of
// bcrypt hashes, remembering the pairs it verified.
type basicStore struct {
	file     *watched[basicFile]
	verified *verifiedCache
	slots    chan struct{}      // one per bcrypt check running
	flights  singleflight.Group // by verifiedCache key: concurrent checks of one triple share a bcrypt run
	metrics  *metrics

	// compare is bcrypt.CompareHashAndPassword, generate
	// bcrypt.GenerateFromPassword, cost unknownCost; tests count their
	// runs.
	compare  func(hash, password []byte) error
	generate func(password []byte, cost int) ([]byte, error)
	cost     func(f basicFile, user string) int

	mu    sync.Mutex
	dummy map[int]string // a hash per cost, for unknown users
}

func newBasicStore(path string, m *metrics, log *slog.Logger) *basicStore {
	s := &basicStore{
		file:     newLineFile(path, parseBasicFile, log),
		verified: newVerifiedCache(maxVerified),
		slots:    make(chan struct{}, bcryptSlots(runtime.GOMAXPROCS(0))),
		metrics:  m,
		compare:  bcrypt.CompareHashAndPassword,
		generate: bcrypt.GenerateFromPassword,
		dummy:    map[int]string{},
	}
	s.cost = s.unknownCost
	return s
}

// check returns the principal of user and password, or a denial.
func (s *basicStore) check(ctx context.Context, user, password string) (*Principal, *denial) {
	f, err := s.file.load()
	if err != nil {
		return nil, errWrong // the status reports the file; the client learns nothing
	}
	if len(user) > maxName {
		// No file holds a longer name (checkName), and choosing an
		// unknown name's cost hashes the whole name once per user.
		return nil, errWrong
	}
	c := f.users[user]
	// The key covers the stored hash: a new password in the file is a
	// new key, so a pair verified against the old one stops working. It
	// is computed, and looked up, once for every name, an unknown one's
	// too (no stored hash: never remembered), so that the answer's timing
	// does not tell which user names exist.
	secret := ""
	if c != nil {
		secret = c.secret
	}
	key := s.verified.key(user, password, secret)
	if s.verified.has(key) && c != nil {
		s.metrics.basic("cached")
		return c.p, nil
	}
	// An unknown user costs a bcrypt check too, against a hash of a real
	// user's cost: the answer's timing does not tell which user names
	// exist. Its cost is chosen for every check that reaches bcrypt, a
	// known user's too, so that the choice's own time (one HMAC per user)
	// tells nothing either; and it is chosen in the bcrypt slot, as it is
	// work a guess causes: thousands of users make it cost more than the
	// bcrypt check itself, which a flood of guesses would otherwise run
	// on every core.
	stored := func(ctx context.Context) (string, error) {
		cost := s.cost(f, user)
		if c != nil {
			return c.secret, nil
		}
		return s.dummyHash(ctx, cost)
	}
	ok, d := s.shared(ctx, key, c != nil, stored, password)
	switch {
	case d != nil:
		return nil, d
	case !ok || c == nil:
		return nil, errWrong
	}
	return c.p, nil
}

// remembered returns the principal of user and password if a check
// verified them (they are in the cache), else nil, without running bcrypt:
// a route open to all (/healthz) recognises only those, since it answers
// every client, and a password there changes only how much it tells. A
// password it cannot recognise is counted as unchecked, not as wrong:
// nothing says it is, and a flood of them costs no check.
func (s *basicStore) remembered(user, password string) *Principal {
	if f, err := s.file.load(); err == nil && len(user) <= maxName {
		// The key is computed for an unknown name too, with no stored
		// hash as check computes it, so that the answer's timing does
		// not tell which user names exist.
		c := f.users[user]
		secret := ""
		if c != nil {
			secret = c.secret
		}
		if key := s.verified.key(user, password, secret); c != nil && s.verified.has(key) {
			s.metrics.basic("cached")
			return c.p
		}
	}
	s.metrics.basic("unchecked")
	return nil
}

// errEnded answers a request that ended while it waited for a check.
var errEnded = &denial{http.StatusServiceUnavailable, reasonBusy, "the request ended while waiting for a password check", nil}

// shared checks password against stored, for the triple of key, in one
// bcrypt run shared by every request checking the same triple meanwhile:
// a go command starts its tile requests at once, with the same new
// credentials, and they should cost one check and one slot, not one each.
// known says whether the user exists, so that only a real user's triple is
// remembered. A request that shares a run counts as "shared".
func (s *basicStore) shared(ctx context.Context, key [32]byte, known bool, stored func(context.Context) (string, error), password string) (bool, *denial) {
	for {
		led := false // set by the run, which only this request's call starts
		ch := s.flights.DoChan(string(key[:]), func() (any, error) {
			led = true
			return s.run(ctx, key, known, stored, password), nil
		})
		var r result
		select {
		case res := <-ch:
			r = res.Val.(result)
		case <-ctx.Done():
			return false, errEnded
		}
		if r.d == errEnded && ctx.Err() == nil {
			// The request that led the run ended while it waited for a
			// slot: wait again, this time leading a run if none is.
			continue
		}
		if !led {
			s.metrics.basic("shared")
		}
		return r.ok, r.d
	}
}

// A result is the outcome of one shared check.
type result struct {
	ok bool
	d  *denial
}

// run is one shared check, made for the request of ctx: it waits for a slot
// while that request lasts, runs bcrypt and remembers a verified triple.
func (s *basicStore) run(ctx context.Context, key [32]byte, known bool, stored func(context.Context) (string, error), password string) result {
	// A run that started after another one verified the same triple (its
	// request read the cache before) finds it remembered.
	if s.verified.has(key) && known { // looked up for an unknown name too, as check does
		s.metrics.basic("cached")
		return result{ok: true}
	}
	ok, d := s.bcrypt(ctx, stored, password)
	switch {
	case d != nil:
		return result{d: d}
	case !ok || !known:
		s.metrics.basic("wrong")
		return result{}
	}
	s.metrics.basic("verified")
	s.verified.add(key)
	return result{ok: true}
}

// bcrypt compares password with the hash stored returns, both in one of
// the bcrypt slots.
func (s *basicStore) bcrypt(ctx context.Context, stored func(context.Context) (string, error), password string) (bool, *denial) {
	t := time.NewTimer(bcryptWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
	case <-t.C:
		s.metrics.basic("busy")
		return false, &denial{http.StatusServiceUnavailable, reasonBusy, "too many password checks at once: try again", nil}
	case <-ctx.Done():
		return false, errEnded
	}
	defer func() { <-s.slots }()
	hash, err := stored(ctx)
	if err != nil {
		return false, errEnded
	}
	return s.compare([]byte(hash), []byte(password)) == nil, nil
}

// unknownCost returns the bcrypt cost an unknown user name is checked at:
// the cost of the user of the file whose HMAC of the name, keyed by the
// user's bcrypt hash, is highest (rendezvous hashing). Had every unknown
// name the same cost (the highest, say), a user of another cost would
// answer faster or slower than any unknown name, which tells the names that
// exist. This way an unknown name answers as one of the users does, always
// the same one: across restarts, and across edits of the file but for the
// names whose chosen user was added or removed, so that asking again before
// and after tells nothing. The keys are the hashes, secret, so which cost a
// name gets cannot be worked out offline.
func (s *basicStore) unknownCost(f basicFile, user string) int {
	cost, best := bcrypt.MinCost, []byte(nil) // New refuses an empty file; a file emptied later
	for i, secret := range f.secrets {
		mac := hmac.New(sha256.New, []byte(secret))
		io.WriteString(mac, user)
		if sum := mac.Sum(nil); best == nil || bytes.Compare(sum, best) > 0 {
			cost, best = f.costs[i], sum
		}
	}
	return cost
}

// dummyHash returns a bcrypt hash of the given cost that no password
// matches in practice, made once per cost: by one shared run (the first
// unknown names of a cost after a start all wait for it, while their
// requests last), outside the lock, so that it holds up no other cost.
func (s *basicStore) dummyHash(ctx context.Context, cost int) (string, error) {
	s.mu.Lock()
	h, ok := s.dummy[cost]
	s.mu.Unlock()
	if ok {
		return h, nil
	}
	ch := s.flights.DoChan(fmt.Sprint("dummy/", cost), func() (any, error) {
		secret := make([]byte, 32)
		rand.Read(secret)
		made, err := s.generate(secret, cost)
		if err != nil { // only for a cost out of range, which parsing refused
			panic(err)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.dummy[cost] = string(made)
		return string(made), nil
	})
	select {
	case res := <-ch:
		return res.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// A verifiedCache remembers user name, password and hash triples that
// bcrypt accepted, as HMAC-SHA256 digests under a key made at start: the
// memory of the server never holds a password, nor anything an attacker
// could test guesses against without the key. It is bounded: when full,
// an arbitrary entry makes room (Go's map iteration order).
type verifiedCache struct {
	secret [32]byte
	max    int
	macs   sync.Pool // of hash.Hash: HMAC-SHA256 under secret, reused (a new one costs allocations per request)

	mu sync.Mutex
	m  map[[32]byte]struct{}
}

func newVerifiedCache(max int) *verifiedCache {
	c := &verifiedCache{max: max, m: map[[32]byte]struct{}{}}
	rand.Read(c.secret[:])
	c.macs.New = func() any { return hmac.New(sha256.New, c.secret[:]) }
	return c
}

// key is the digest of one triple. Each part is length-prefixed, so that
// no two triples share an encoding.
func (c *verifiedCache) key(user, password, stored string) [32]byte {
	mac := c.macs.Get().(hash.Hash)
	defer c.macs.Put(mac)
	mac.Reset()
	var n [4]byte
	for _, part := range [...]string{user, password, stored} {
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		mac.Write(n[:])
		io.WriteString(mac, part)
	}
	var k [32]byte
	mac.Sum(k[:0])
	return k
}

func (c *verifiedCache) has(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	return ok
}

func (c *verifiedCache) add(k [32]byte) {
	if c.max <= 0 {
		return // remembering nothing: every request pays bcrypt
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for old := range c.m {
		if len(c.m) < c.max {
			break
		}
		delete(c.m, old)
	}
	c.m[k] = struct{}{}
}
