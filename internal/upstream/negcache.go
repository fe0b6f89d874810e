package upstream

import (
	"container/list"
	"errors"
	"sync"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/modhash"
)

// DefaultNegativeTTL is how long a gone or invalid version is remembered.
// sum.golang.org remembers for minutes, and users complain that a newly
// pushed tag stays 410 that long; a minute spares the upstream a storm of
// retries without making anyone wait.
const DefaultNegativeTTL = time.Minute

// DefaultNegativeMax bounds the negative cache.
const DefaultNegativeMax = 10000

// negCache remembers versions that failed as gone (Error.Gone), until ttl
// passes. It holds at most max entries; all share one ttl, so insertion
// order is expiry order, and the oldest entry is both the first to expire
// and the one evicted when full. A nil *negCache remembers nothing.
type negCache struct {
	ttl     time.Duration
	max     int
	now     func() time.Time
	metrics *Metrics

	mu      sync.Mutex
	byKey   map[module.Version]*list.Element // of *negEntry
	byOrder *list.List                       // oldest first
}

type negEntry struct {
	m       module.Version
	err     *Error
	expires time.Time
}

// newNegCache returns a cache, or nil if ttl is not positive.
func newNegCache(ttl time.Duration, max int, now func() time.Time, metrics *Metrics) *negCache {
	if ttl <= 0 {
		return nil
	}
	return &negCache{
		ttl: ttl, max: max, now: now, metrics: metrics,
		byKey: map[module.Version]*list.Element{}, byOrder: list.New(),
	}
}

// get returns the remembered failure of m, or nil.
func (c *negCache) get(m module.Version) *Error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep()
	el, ok := c.byKey[m]
	// The own-expiry check matters only if the clock stepped back, which
	// breaks the oldest-first order sweep relies on.
	if !ok || !c.now().Before(el.Value.(*negEntry).expires) {
		return nil
	}
	c.metrics.negativeHit()
	return el.Value.(*negEntry).err
}

// put remembers err for m if it is a gone failure; others are transient
// and never remembered.
func (c *negCache) put(m module.Version, err error) {
	var e *Error
	if c == nil || !errors.As(err, &e) || !e.Gone() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(m)
	c.sweep()
	for c.byOrder.Len() >= c.max {
		c.remove(c.byOrder.Front().Value.(*negEntry).m)
	}
	c.byKey[m] = c.byOrder.PushBack(&negEntry{m: m, err: capCause(e), expires: c.now().Add(c.ttl)})
	c.metrics.setNegativeEntries(c.byOrder.Len())
}

// capCause returns e with at most modhash.MaxReasonText of its cause, as
// the cache keeps it: an invalid module's cause is up to
// modhash.MaxCauseText, which the log has had in full, and max entries of
// it would be tens of MiB. A short cause is kept as it is, chain and all.
func capCause(e *Error) *Error {
	if e.Cause == nil || len(e.Cause.Error()) <= modhash.MaxReasonText {
		return e
	}
	c := *e
	c.Cause = errors.New(modhash.Truncate(e.Cause.Error(), modhash.MaxReasonText))
	return &c
}

// forget drops m, once it has been recorded.
func (c *negCache) forget(m module.Version) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(m)
}

// sweep drops expired entries, oldest first. c.mu is held.
func (c *negCache) sweep() {
	now := c.now()
	for el := c.byOrder.Front(); el != nil && !now.Before(el.Value.(*negEntry).expires); el = c.byOrder.Front() {
		c.remove(el.Value.(*negEntry).m)
	}
}

// remove drops m if present. c.mu is held.
func (c *negCache) remove(m module.Version) {
	if el, ok := c.byKey[m]; ok {
		c.byOrder.Remove(el)
		delete(c.byKey, m)
		c.metrics.setNegativeEntries(c.byOrder.Len())
	}
}

// len is the number of entries, expired ones included until swept.
func (c *negCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byOrder.Len()
}
