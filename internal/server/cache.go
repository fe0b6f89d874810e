package server

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// DefaultCacheBytes is the default Options.CacheBytes. A record costs the
// cache about 780 bytes when everything about it is cached (its lookup
// with the entry's overhead about 580, its share of a data tile 165 and of
// hash tiles 32), so 64 MiB hold the hottest 85,000 or so records.
const DefaultCacheBytes = 64 << 20

// A cache holds answers that never change, ready to write: full tiles
// (PROTOCOL.md §2) and the record part of lookups of recorded versions
// (a record never changes; the signed tree head a lookup ends with is read
// for every request). Once one has been read and formatted, its bytes and
// headers serve every later request for it with no storage read, no
// parsing and no allocation of ours. Nothing that can change is cached:
// partial tiles are read within the published tree each time, so that none
// is served beyond it, and a version not found is looked up again.
//
// The cache is bounded by the bytes it holds and evicts with the CLOCK
// algorithm, an approximation of least-recently-used whose hits cost one
// atomic load under a read lock, so that concurrent hits do not contend.
//
// Entries are keyed by route and the path exactly as requested (the
// route's argument, "tile/8/0/x001/234" or "example.com/!m@v1.0.0"): the
// same string always parses to the same tile or module version, so a
// string that was answered once is answered alike for ever, without
// parsing it again.
type cache struct {
	max int64 // bytes held at most

	mu   sync.RWMutex
	m    map[cacheKey]*cached // guarded by mu
	ring []*cached            // the clock, guarded by mu
	hand int                  // next ring slot to consider for eviction
	size int64                // bytes held, guarded by mu
}

type cacheKey struct {
	route string // a route label: tile, data_tile, lookup
	arg   string
}

// A cached is one answer. Its fields never change once it is in the cache;
// the header values are shared by every answer and must not be modified.
type cached struct {
	key   cacheKey
	reply reply
	id    int64       // a lookup's record id
	used  atomic.Bool // set by a hit, cleared by the clock hand
}

// entryOverhead approximates what an entry costs beyond its body and key,
// about 350 bytes measured with lookups (TestCacheMemoryBound holds the
// bound to the heap the cache keeps): the struct (192 bytes as the
// runtime allocates it), its Content-Length (about 20), the map's slot
// with its share of the free ones (40 to 90), the ring's slot with its
// share of the spare capacity (8 to 16), and the runtime's rounding of a
// key up to its size class.
const entryOverhead = 352

// bytes is what e costs the heap: its body's capacity (a record's body
// is appended to, and may have room to spare), its key and the overhead.
func (e *cached) bytes() int64 {
	return int64(cap(e.reply.body) + len(e.key.arg) + entryOverhead)
}

// newCache returns a cache of at most max bytes, or nil (no cache) if max
// is not positive.
func newCache(max int64) *cache {
	if max <= 0 {
		return nil
	}
	return &cache{max: max, m: map[cacheKey]*cached{}}
}

// get returns the cached answer for route and arg, if any.
func (c *cache) get(route, arg string) (*cached, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	e := c.m[cacheKey{route, arg}]
	c.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	return e, true
}

// put caches rp, the answer for route and arg, and returns the cached
// copy, whose Content-Length is precomputed. rp's body must never change:
// the caller hands it over.
func (c *cache) put(route, arg string, id int64, rp *reply) *cached {
	e := &cached{key: cacheKey{route, arg}, reply: *rp, id: id}
	e.reply.length = []string{strconv.Itoa(len(rp.body))}
	if c == nil || e.bytes() > c.max/8 {
		return e // never this large unless the cache is tiny
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[e.key]; old != nil {
		return old // another request cached it first
	}
	// arg is cut from the request's path: a copy keeps only its own
	// bytes, which e.bytes counts, rather than the whole path.
	e.key.arg = strings.Clone(arg)
	for c.size+e.bytes() > c.max {
		c.evict()
	}
	if len(e.reply.body) >= sendfileMin {
		e.reply.file = new(fileSlot)
	}
	c.m[e.key] = e
	c.ring = append(c.ring, e)
	c.size += e.bytes()
	return e
}

// evict removes one entry: the first one the clock hand finds unused since
// it last passed, clearing the marks of those it passes. Call with mu held
// and the cache not empty.
func (c *cache) evict() {
	for {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		e := c.ring[c.hand]
		if e.used.Swap(false) {
			c.hand++
			continue
		}
		last := len(c.ring) - 1
		c.ring[c.hand] = c.ring[last]
		c.ring[last] = nil
		c.ring = c.ring[:last]
		delete(c.m, e.key)
		c.size -= e.bytes()
		return
	}
}

// stats returns the bytes and entries held.
func (c *cache) stats() (bytes int64, entries int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.size, len(c.m)
}

// Header values shared by every answer. net/http copies the header map
// before writing it and never modifies the values, so one slice serves all
// requests; nothing in this package modifies them either.
var (
	hdrOctetStream      = []string{octetStream}
	hdrTextPlain        = []string{textPlain}
	hdrImmutable        = []string{cacheImmutable}
	hdrShort            = []string{cacheShort}
	hdrImmutablePrivate = []string{cacheImmutablePrivate}
	hdrShortPrivate     = []string{cacheShortPrivate}
	hdrNone             = []string{cacheNone}
	hdrNosniff          = []string{"nosniff"}
)

// writeReply sends a successful answer. Its Content-Length makes HEAD
// answers match GET ones.
func writeReply(w http.ResponseWriter, rp *reply) {
	h := w.Header()
	h["Content-Type"] = rp.ctype
	h["Cache-Control"] = rp.cache
	if rp.length != nil && rp.tail == nil {
		h["Content-Length"] = rp.length
	} else {
		h["Content-Length"] = []string{strconv.Itoa(len(rp.body) + len(rp.tail))}
	}
	h["X-Content-Type-Options"] = hdrNosniff
	w.WriteHeader(http.StatusOK)
	w.Write(rp.body)
	if rp.tail != nil {
		w.Write(rp.tail)
	}
}
