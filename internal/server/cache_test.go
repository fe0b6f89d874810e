package server

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCacheAnswersAlike checks that a server with the response cache
// answers every request exactly as one without it, however often it is
// asked and as the tree grows: full tiles and found records come from the
// cache, partial tiles, the signed tree head and missing versions never do.
func TestCacheAnswersAlike(t *testing.T) {
	f, _ := newFakeOps(t, 600)
	f.publish(t, 300)
	reg := prometheus.NewRegistry()
	cached := New(testName, f, Options{Logger: quietLogger, Registry: reg})
	plain := New(testName, f, Options{Logger: quietLogger, CacheBytes: -1})
	if plain.cache != nil {
		t.Fatal("CacheBytes -1 made a cache")
	}
	paths := []string{
		"/tile/8/0/000", "/tile/8/0/001", "/tile/8/0/001.p/44", "/tile/8/0/001.p/200", "/tile/8/0/002.p/10",
		"/tile/8/1/000.p/1", "/tile/8/1/000.p/2", "/tile/8/data/000", "/tile/8/data/001",
		"/tile/8/data/001.p/44", "/tile/8/data/001.p/200",
		prefix + "/tile/8/0/000", prefix + "/tile/8/data/000",
		"/lookup/example.com/m7@v1.7.0", prefix + "/lookup/example.com/m7@v1.7.0",
		"/lookup/example.com/!upper/!case@v1.0.0-!r!c.1", "/lookup/example.com/m400@v1.400.0",
		"/lookup/example.com/m9@v9.9.9", "/lookup/example.com/m7@latest", "/latest",
	}
	compare := func(size int64) {
		t.Helper()
		for _, p := range paths {
			want := get(plain, "GET", p)
			for range 2 {
				got := get(cached, "GET", p)
				if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
					t.Errorf("tree %d: GET %s = %d %q, uncached %d %q", size, p, got.Code, got.Body, want.Code, want.Body)
				}
				for _, h := range []string{"Content-Type", "Cache-Control", "Content-Length", "X-Content-Type-Options"} {
					if got.Header().Get(h) != want.Header().Get(h) {
						t.Errorf("tree %d: GET %s: %s = %q, uncached %q", size, p, h, got.Header().Get(h), want.Header().Get(h))
					}
				}
			}
		}
	}
	compare(300)
	// The log grows: a full tile that was missing appears, the partial tiles
	// of the old size stay, lookups end with the new head.
	f.publish(t, 600)
	compare(600)
	if w := get(cached, "GET", "/tile/8/0/001"); w.Code != 200 {
		t.Errorf("full tile after the tree reached it: %d, want 200", w.Code)
	}
	_, signed := f.visible()
	if w := get(cached, "GET", "/lookup/example.com/m7@v1.7.0"); !strings.HasSuffix(w.Body.String(), string(signed)) {
		t.Errorf("cached lookup does not end with the latest signed tree head:\n%s", w.Body)
	}
	if w := get(cached, "HEAD", "/tile/8/data/000"); w.Header().Get("Content-Length") != get(plain, "GET", "/tile/8/data/000").Header().Get("Content-Length") {
		t.Errorf("HEAD of a cached data tile: Content-Length %q", w.Header().Get("Content-Length"))
	}
	for route, want := range map[string]float64{routeTile: 5, routeDataTile: 5, routeLookup: 5} {
		if got := testutil.ToFloat64(cached.metrics.hits[route]); got < want {
			t.Errorf("cache hits of %s = %v, want at least %v", route, got, want)
		}
	}
	// The cache holds what it may: full tiles and found records, nothing
	// partial, missing or malformed (m400 was missing at size 300, and is
	// found, and cached, at 600).
	for key := range cached.cache.m {
		if strings.Contains(key.arg, ".p/") || strings.Contains(key.arg, "m9@") || strings.Contains(key.arg, "latest") {
			t.Errorf("cache holds %v", key)
		}
	}
}

// TestCacheEvicts checks the bound and the CLOCK order: entries used since
// the hand last passed survive an eviction.
func TestCacheEvicts(t *testing.T) {
	body := make([]byte, 1000)
	one := (&cached{key: cacheKey{routeTile, "tile/8/0/000"}, reply: reply{body: body}}).bytes()
	c := newCache(10 * one)
	for i := range 10 {
		c.put(routeTile, fmt.Sprintf("tile/8/0/%03d", i), 0, &reply{body: body})
	}
	if size, n := c.stats(); n != 10 || size != 10*one {
		t.Fatalf("after 10 puts: %d entries, %d bytes; want 10, %d", n, size, 10*one)
	}
	for _, i := range []int{2, 5, 7} {
		if _, ok := c.get(routeTile, fmt.Sprintf("tile/8/0/%03d", i)); !ok {
			t.Fatalf("entry %d missing", i)
		}
	}
	for i := 10; i < 17; i++ {
		c.put(routeTile, fmt.Sprintf("tile/8/0/%03d", i), 0, &reply{body: body})
	}
	if size, n := c.stats(); n != 10 || size > c.max {
		t.Fatalf("after 17 puts: %d entries, %d bytes; want 10, at most %d", n, size, c.max)
	}
	for _, i := range []int{2, 5, 7} {
		if _, ok := c.get(routeTile, fmt.Sprintf("tile/8/0/%03d", i)); !ok {
			t.Errorf("entry %d, used, was evicted before unused ones", i)
		}
	}
	if _, ok := c.get(routeLookup, "tile/8/0/002"); ok {
		t.Error("a lookup found a tile's entry: routes share keys")
	}
	// An answer too large for the cache is served, not kept.
	if e := c.put(routeDataTile, "huge", 0, &reply{body: make([]byte, c.max)}); e.reply.length[0] != fmt.Sprint(c.max) {
		t.Errorf("huge answer's Content-Length = %v", e.reply.length)
	}
	if _, ok := c.get(routeDataTile, "huge"); ok {
		t.Error("an answer larger than an eighth of the cache was kept")
	}
	var none *cache
	if _, ok := none.get(routeTile, "x"); ok {
		t.Error("a nil cache found something")
	}
}

// TestCacheMemoryBound checks that the bound holds for the memory the
// cache keeps: filled many times over with lookups, its smallest and most
// numerous entries, keyed by a part of the request's path as the routes
// key them, it holds no more heap than its bound, give or take what the
// runtime rounds up. An entry's overhead was counted as 160 bytes where
// it costs about 350, and a key kept the whole path it was cut from: 64
// MiB of lookups held 91 MiB.
func TestCacheMemoryBound(t *testing.T) {
	const max = 16 << 20
	hash := "h1:" + strings.Repeat("x", 43) + "="
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newCache(max)
	for i := range 200_000 {
		p, v := fmt.Sprintf("example.com/some/module%d", i), fmt.Sprintf("v1.%d.0", i)
		path := "/sumdb/sum.example.com/lookup/" + p + "@" + v
		body := fmt.Appendf(nil, "%d\n%s %s %s\n%s %s/go.mod %s\n\n", i, p, v, hash, p, v, hash)
		c.put(routeLookup, path[len("/sumdb/sum.example.com/lookup/"):], int64(i), &reply{ctype: hdrTextPlain, cache: hdrShort, body: body})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	size, n := c.stats()
	if held := int64(after.HeapAlloc) - int64(before.HeapAlloc); held > max*21/20 {
		t.Errorf("a cache of %d MiB holding %d lookups (%d bytes by its count) holds %.1f MiB of heap", max>>20, n, size, float64(held)/(1<<20))
	}
	runtime.KeepAlive(c)
}
