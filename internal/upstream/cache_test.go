package upstream

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/modhash"
)

// TestNegCacheBounds checks expiry, the size bound (oldest evicted first),
// that only gone errors are kept, and that forget drops an entry.
func TestNegCacheBounds(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	c := newNegCache(time.Minute, 3, clock.Now, nil)
	gone := func(i int) (module.Version, error) {
		v := mv(fmt.Sprintf("example.com/m%d", i), "v1.0.0")
		return v, newError(KindGone, v, "no such version")
	}
	for i := range 5 {
		k, err := gone(i)
		c.put(k, err)
		clock.advance(time.Second)
	}
	if n := c.len(); n != 3 {
		t.Fatalf("len = %d, want the bound 3", n)
	}
	for i := range 5 {
		k, _ := gone(i)
		if got := c.get(k) != nil; got != (i >= 2) {
			t.Errorf("entry %d present = %v, want %v (oldest evicted first)", i, got, i >= 2)
		}
	}
	k4, _ := gone(4)
	c.forget(k4)
	clock.advance(57 * time.Second) // entry 2 is now a minute old
	if k2, _ := gone(2); c.get(k2) != nil {
		t.Error("entry 2 outlived its TTL")
	}
	if k3, _ := gone(3); c.get(k3) == nil {
		t.Error("entry 3 expired early")
	}
	if n := c.len(); n != 1 {
		t.Errorf("len = %d after expiry and forget, want 1", n)
	}

	v := mv("example.com/t", "v1.0.0")
	c.put(v, &Error{Kind: KindTimeout, Module: v, Err: errors.New("slow")})
	c.put(v, &Error{Kind: KindUnavailable, Module: v, Err: errors.New("down")})
	c.put(v, errors.New("plain"))
	if c.get(v) != nil {
		t.Error("a transient failure was remembered")
	}
	disabled := newNegCache(0, 3, clock.Now, nil)
	disabled.put(v, newError(KindGone, v, "x"))
	if disabled != nil || disabled.get(v) != nil {
		t.Error("a zero TTL cache remembers")
	}
}

func TestLRUCache(t *testing.T) {
	c := newLRUCache(10)
	c.put("a", []byte("1234"))
	c.put("b", []byte("1234"))
	c.get("a") // b is now the least recently used
	c.put("c", []byte("1234"))
	if _, ok := c.get("b"); ok {
		t.Error("b survived; want it evicted as least recently used")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	c.put("big", make([]byte, 11))
	if _, ok := c.get("big"); ok || c.size != 8 {
		t.Errorf("an entry over the bound was stored (size %d)", c.size)
	}
	c.put("a", []byte("123456"))
	if c.size > 10 {
		t.Errorf("size %d over the bound after replacing an entry", c.size)
	}
}

// TestNegCacheCauseBound: an entry keeps at most modhash.MaxReasonText of
// its cause, as of its reason. Causes of invalid modules are up to
// MaxCauseText (8 KiB), which the log has already: DefaultNegativeMax
// entries kept 80 MiB of them.
func TestNegCacheCauseBound(t *testing.T) {
	c := newNegCache(time.Minute, 3, time.Now, nil)
	v := mv("example.com/m", "v1.0.0")
	cause := errors.New(strings.Repeat("x", modhash.MaxCauseText))
	c.put(v, &Error{Kind: KindInvalid, Module: v, Err: errors.New("invalid module: bad"), Cause: cause})
	e := c.get(v)
	if e == nil {
		t.Fatal("an invalid version was not remembered")
	}
	// Truncate says how much it left out, after the n bytes it keeps.
	if n, max := len(e.Cause.Error()), len(modhash.Truncate(cause.Error(), modhash.MaxReasonText)); n > max {
		t.Errorf("the cause kept is %d bytes, want at most %d", n, max)
	}
	// A short cause is kept as it is, its chain with it.
	w := mv("example.com/m", "v1.1.0")
	short := &statusError{status: 404}
	c.put(w, &Error{Kind: KindGone, Module: w, Err: errors.New("gone"), Cause: short})
	if e := c.get(w); e == nil || !errors.Is(e, short) {
		t.Errorf("a short cause was not kept as it was: %v", e)
	}
}
