package access

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// maxVerified bounds the remembered user name and password pairs: each is
// 32 bytes of map key; thousands of developers fit.
const maxVerified = 8192

// bcryptWait is how long a request waits for a free bcrypt slot before it
// gets a 503: past it the server is being flooded with guesses.
const bcryptWait = 5 * time.Second

// A basicStore checks user names and passwords against an htpasswd file of
// bcrypt hashes, remembering the pairs it verified.
type basicStore struct {
	file     *watched[basicFile]
	verified *verifiedCache
	slots    chan struct{} // one per bcrypt check running
	metrics  *metrics

	mu    sync.Mutex
	dummy map[int]string // a hash per cost, for unknown users
}

func newBasicStore(path string, m *metrics, log *slog.Logger) *basicStore {
	return &basicStore{
		file:     newWatched(path, parseBasicFile, log),
		verified: newVerifiedCache(maxVerified),
		slots:    make(chan struct{}, runtime.GOMAXPROCS(0)),
		metrics:  m,
		dummy:    map[int]string{},
	}
}

// check returns the principal of user and password, or a denial.
func (s *basicStore) check(ctx context.Context, user, password string) (*Principal, *denial) {
	f, err := s.file.load()
	if err != nil {
		return nil, errWrong // the status reports the file; the client learns nothing
	}
	c := f.users[user]
	var stored string
	if c != nil {
		stored = c.secret
	} else {
		stored = s.dummyHash(f.cost)
	}
	// The key covers the stored hash: a new password in the file is a
	// new key, so a pair verified against the old one stops working.
	key := s.verified.key(user, password, stored)
	if c != nil && s.verified.has(key) {
		s.metrics.basic("cached")
		return c.p, nil
	}
	// An unknown user costs a bcrypt check too, against a hash of the
	// file's highest cost: the answer's timing does not tell which user
	// names exist.
	ok, d := s.bcrypt(ctx, stored, password)
	switch {
	case d != nil:
		return nil, d
	case !ok || c == nil:
		s.metrics.basic("wrong")
		return nil, errWrong
	}
	s.metrics.basic("verified")
	s.verified.add(key)
	return c.p, nil
}

// bcrypt compares password with the stored hash in one of the bcrypt slots.
func (s *basicStore) bcrypt(ctx context.Context, stored, password string) (bool, *denial) {
	t := time.NewTimer(bcryptWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
	case <-t.C:
		s.metrics.basic("busy")
		return false, &denial{http.StatusServiceUnavailable, reasonBusy, "too many password checks at once: try again", nil}
	case <-ctx.Done():
		return false, &denial{http.StatusServiceUnavailable, reasonBusy, "the request ended while waiting for a password check", nil}
	}
	defer func() { <-s.slots }()
	return bcrypt.CompareHashAndPassword([]byte(stored), []byte(password)) == nil, nil
}

// dummyHash returns a bcrypt hash of the given cost that no password
// matches in practice, made once per cost.
func (s *basicStore) dummyHash(cost int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.dummy[cost]; ok {
		return h
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	h, err := bcrypt.GenerateFromPassword(secret, cost)
	if err != nil { // only for a cost out of range, which parsing refused
		panic(err)
	}
	s.dummy[cost] = string(h)
	return string(h)
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
