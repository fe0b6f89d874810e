package pgstore

import (
	"bytes"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/sumd-project/sumd/internal/tlog"
)

// A recordCache keeps records and index entries that cannot change: those
// below a head this store read or committed. In a primary's log, a record
// and its index entry never change once a committed head covers them. (A
// mirror may index a module version under a smaller id later, when it
// learns an older record, and a commit moves the entry (see writeIndexSQL);
// the larger id another store cached is still a record of that version in
// the tree, and this store's own commits replace the cached entry.)
// What lies beyond such a head — another writer's commit in flight is
// invisible, but an unfinished copy's leftovers are not — is never cached,
// and neither is a miss: a version can be recorded at any moment.
type recordCache struct {
	size    atomic.Int64 // the largest tree size of a head this store read or committed
	index   *lru.Cache[string, int64]
	records *lru.Cache[int64, []byte]
}

func newRecordCache(n int) recordCache {
	index, _ := lru.New[string, int64](n)
	records, _ := lru.New[int64, []byte](n)
	return recordCache{index: index, records: records}
}

// below notes a head of tree size n, committed.
func (c *recordCache) below(n int64) {
	for {
		old := c.size.Load()
		if n <= old || c.size.CompareAndSwap(old, n) {
			return
		}
	}
}

// committed caches a batch this store committed.
func (c *recordCache) committed(b *tlog.Batch) {
	c.below(b.Tree.N)
	for _, r := range b.Records {
		if r.ID >= b.Tree.N {
			continue // a copy's, beyond the head
		}
		if r.Key != "" {
			c.index.Add(r.Key, r.ID)
		}
		c.records.Add(r.ID, bytes.Clone(r.Text))
	}
}

// addIndex caches an index entry read while the largest known tree had n
// records, which the caller loads before the read: an entry read beyond
// that tree is not yet known to be covered, and the commit that covers it,
// finishing during the read, may have changed it (moved it to a smaller
// id) and cached its own, which this one would replace.
func (c *recordCache) addIndex(key string, id, n int64) {
	if id >= n {
		return
	}
	// An entry only ever moves to a smaller id (a mirror's re-point): a
	// read that raced this store's own commit of the move must not put
	// the larger one back, which indexFirst would then build on.
	if cached, ok := c.index.Peek(key); ok && cached < id {
		return
	}
	c.index.Add(key, id)
}

// addRecord caches a record read while the largest known tree had n
// records (see addIndex).
func (c *recordCache) addRecord(id int64, text []byte, n int64) {
	if id < n {
		c.records.Add(id, bytes.Clone(text))
	}
}

// forget drops the index entries of keys and the records of ids: the log
// found them wrong (a damaged or edited row), and an operator's repair
// must be read, not this copy served until the process restarts.
func (c *recordCache) forget(keys []string, ids []int64) {
	for _, k := range keys {
		c.index.Remove(k)
	}
	for _, id := range ids {
		c.records.Remove(id)
	}
}
