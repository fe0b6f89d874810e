package upstream

import (
	"container/list"
	"sync"
)

// lruCache is a byte-bounded least-recently-used cache: the Checker's tiles
// and lookups. Full tiles never change, so nothing here ever goes stale; the
// bound only keeps memory flat.
type lruCache struct {
	max int64

	mu    sync.Mutex
	size  int64
	items map[string]*list.Element // of *lruItem
	order *list.List               // most recently used first
}

type lruItem struct {
	key  string
	data []byte
}

func newLRUCache(max int64) *lruCache {
	return &lruCache{max: max, items: map[string]*list.Element{}, order: list.New()}
}

func (c *lruCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruItem).data, true
}

// put stores data under key, evicting the least recently used entries to
// stay within max. An entry larger than max is not stored.
func (c *lruCache) put(key string, data []byte) {
	if int64(len(data)) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.drop(el)
	}
	for c.size+int64(len(data)) > c.max {
		c.drop(c.order.Back())
	}
	c.items[key] = c.order.PushFront(&lruItem{key: key, data: data})
	c.size += int64(len(data))
}

// drop removes el. c.mu is held.
func (c *lruCache) drop(el *list.Element) {
	it := c.order.Remove(el).(*lruItem)
	delete(c.items, it.key)
	c.size -= int64(len(it.data))
}
