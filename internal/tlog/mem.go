package tlog

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// A MemStore is a Store in memory, for tests: of the Log (with fault hooks)
// and of the conformance suite. Its data lives as long as the MemStore, and
// several Logs may open it at once, as several sumd processes share one
// database; Close does nothing.
type MemStore struct {
	mu      sync.RWMutex
	created bool
	meta    Meta
	head    []byte
	records map[int64][]byte
	index   map[string]int64
	tiles   map[TileID][]byte
	aux     map[string][]byte

	hooks   sync.Mutex // guards before and after
	before  func(*Batch) error
	after   func(*Batch) error
	commits int // batches stored
}

var (
	_ Store    = (*MemStore)(nil)
	_ AuxStore = (*MemStore)(nil)
)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{
		records: map[int64][]byte{},
		index:   map[string]int64{},
		tiles:   map[TileID][]byte{},
		aux:     map[string][]byte{},
	}
}

// MemHooks inject faults into a MemStore's Commit (and SetAux, with a nil
// batch). Either may be nil.
type MemHooks struct {
	// BeforeCommit runs before the batch is applied, without the store's
	// lock: it may commit other batches (a second writer advancing the
	// head) or block. If it returns an error, Commit returns that error
	// with nothing stored: a failure that is "not persisted" if the error
	// wraps ErrNotPersisted, and ambiguous to the Log otherwise.
	BeforeCommit func(b *Batch) error
	// AfterCommit runs after the batch is stored. If it returns an error,
	// Commit returns it although the batch is durable: "failed but
	// persisted".
	AfterCommit func(b *Batch) error
}

// SetHooks installs h, replacing the previous hooks.
func (s *MemStore) SetHooks(h MemHooks) {
	s.hooks.Lock()
	defer s.hooks.Unlock()
	s.before, s.after = h.BeforeCommit, h.AfterCommit
}

func (s *MemStore) hook(before bool, b *Batch) error {
	s.hooks.Lock()
	f := s.after
	if before {
		f = s.before
	}
	s.hooks.Unlock()
	if f == nil {
		return nil
	}
	return f(b)
}

// Commits returns how many batches the store has stored.
func (s *MemStore) Commits() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.commits
}

// Load returns the metadata and head.
func (s *MemStore) Load(ctx context.Context) (State, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.created {
		return State{}, ErrNoLog
	}
	m := s.meta
	m.VKeys = slices.Clone(m.VKeys)
	return State{Meta: m, Head: bytes.Clone(s.head)}, nil
}

// Create stores a new log.
func (s *MemStore) Create(ctx context.Context, meta Meta, head []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.created {
		return ErrLogExists
	}
	if len(s.records) > 0 || len(s.index) > 0 || len(s.tiles) > 0 {
		return fmt.Errorf("%w: %w", ErrNotPersisted, ErrLeftoverData)
	}
	s.created, s.meta, s.head = true, meta, bytes.Clone(head)
	s.meta.VKeys = slices.Clone(meta.VKeys)
	return nil
}

// Commit stores b if the head is b.Prev, running the hooks around it.
func (s *MemStore) Commit(ctx context.Context, b *Batch) error {
	if err := s.hook(true, b); err != nil {
		return err
	}
	if err := s.apply(b); err != nil {
		return err
	}
	return s.hook(false, b)
}

func (s *MemStore) apply(b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.created:
		return ErrNoLog
	case !bytes.Equal(s.head, b.Prev):
		return ErrHeadMoved
	}
	for _, r := range b.Records {
		s.records[r.ID] = bytes.Clone(r.Text)
		if r.Key != "" {
			s.index[r.Key] = r.ID
		}
	}
	for _, t := range b.Tiles {
		s.tiles[t.TileID] = bytes.Clone(t.Data)
	}
	if b.VKeys != nil {
		s.meta.VKeys = slices.Clone(b.VKeys)
	}
	s.head = bytes.Clone(b.Head)
	s.commits++
	return nil
}

// Lookup reads the index.
func (s *MemStore) Lookup(ctx context.Context, keys []string) ([]int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]int64, len(keys))
	for i, k := range keys {
		id, ok := s.index[k]
		if !ok {
			id = -1
		}
		ids[i] = id
	}
	return ids, nil
}

// ScanIndex lists the index in key order.
func (s *MemStore) ScanIndex(ctx context.Context, from string, limit int) ([]IndexEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var keys []string
	for k := range s.index {
		if k >= from {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []IndexEntry
	for _, k := range keys[:min(limit, len(keys))] {
		path, version, _ := strings.Cut(k, "@")
		out = append(out, IndexEntry{Path: path, Version: version, ID: s.index[k]})
	}
	return out, nil
}

// ScanIndexBack lists the index in descending key order.
func (s *MemStore) ScanIndexBack(ctx context.Context, before string, limit int) ([]IndexEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var keys []string
	for k := range s.index {
		if k < before {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	slices.Reverse(keys)
	var out []IndexEntry
	for _, k := range keys[:min(limit, len(keys))] {
		path, version, _ := strings.Cut(k, "@")
		out = append(out, IndexEntry{Path: path, Version: version, ID: s.index[k]})
	}
	return out, nil
}

// ScanReleases lists the first key of each release of a module.
func (s *MemStore) ScanReleases(ctx context.Context, path, from string, limit int) ([]IndexEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var keys []string
	for k := range s.index {
		if strings.HasPrefix(k, path+"@") && k >= from {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []IndexEntry
	next := ""
	for _, k := range keys {
		if len(out) == limit {
			break
		}
		if k >= next {
			out, next = append(out, IndexEntry{Path: path, Version: k[len(path)+1:], ID: s.index[k]}), releaseEnd(k)
		}
	}
	return out, nil
}

// ReadRecords reads records.
func (s *MemStore) ReadRecords(ctx context.Context, ids []int64) ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = bytes.Clone(s.records[id])
	}
	return out, nil
}

// ReadTiles reads tiles.
func (s *MemStore) ReadTiles(ctx context.Context, tiles []TileID) ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		out[i] = bytes.Clone(s.tiles[t])
	}
	return out, nil
}

// Extent scans everything: a MemStore is small.
func (s *MemStore) Extent(ctx context.Context) (Extent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := Extent{Head: bytes.Clone(s.head)}
	for id := range s.records {
		e.Records = max(e.Records, id+1)
	}
	for _, id := range s.index {
		e.Indexed = max(e.Indexed, id+1)
	}
	last := map[int]TileExtent{}
	for id, data := range s.tiles {
		if t, ok := last[id.L]; !ok || id.N > t.N {
			last[id.L] = TileExtent{id, len(data) / tlog.HashSize}
		}
	}
	for _, l := range slices.Sorted(maps.Keys(last)) {
		e.Tiles = append(e.Tiles, last[l])
	}
	return e, nil
}

// Forget deletes the log's metadata and head and keeps its records, index
// and tiles: for tests, what DELETE FROM sumd_log does to a PostgreSQL
// store.
func (s *MemStore) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created, s.meta, s.head = false, Meta{}, nil
}

// SetRecord replaces the text of a stored record behind the log's back:
// for tests of a damaged or tampered store.
func (s *MemStore) SetRecord(id int64, text []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[id] = bytes.Clone(text)
}

// SetIndex points the index entry of key (path@version) at id behind the
// log's back: for tests of a damaged or edited store.
func (s *MemStore) SetIndex(key string, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index[key] = id
}

// SetTile replaces the data of a stored hash tile behind the log's back:
// for tests of a damaged or tampered store.
func (s *MemStore) SetTile(id TileID, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tiles[id] = bytes.Clone(data)
}

// Aux reads an auxiliary value.
func (s *MemStore) Aux(ctx context.Context, key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.aux[key]) == 0 {
		return nil, nil
	}
	return bytes.Clone(s.aux[key]), nil
}

// SetAux stores an auxiliary value, running the hooks (with a nil batch).
func (s *MemStore) SetAux(ctx context.Context, key string, value []byte) error {
	if err := s.hook(true, nil); err != nil {
		return err
	}
	s.mu.Lock()
	s.aux[key] = bytes.Clone(value)
	s.mu.Unlock()
	return s.hook(false, nil)
}

// Close does nothing: the data stays for the next Log to open the store.
func (s *MemStore) Close() error { return nil }

// Clone returns a copy of the store's data, without hooks: the state a
// crash at this instant would leave.
func (s *MemStore) Clone() *MemStore {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := NewMemStore()
	c.created, c.meta, c.head, c.commits = s.created, s.meta, bytes.Clone(s.head), s.commits
	c.meta.VKeys = slices.Clone(s.meta.VKeys)
	for k, v := range s.records {
		c.records[k] = bytes.Clone(v)
	}
	maps.Copy(c.index, s.index)
	for k, v := range s.tiles {
		c.tiles[k] = bytes.Clone(v)
	}
	for k, v := range s.aux {
		c.aux[k] = bytes.Clone(v)
	}
	return c
}
