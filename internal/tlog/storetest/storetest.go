// Package storetest is the conformance suite every tlog.Store must pass.
//
// A store's test calls Run with a function that opens its stores by name:
//
//	func TestConformance(t *testing.T) {
//		dir := t.TempDir()
//		storetest.Run(t, func(t *testing.T, name string) tlog.Store {
//			s, err := tlog.OpenBolt(filepath.Join(dir, name), tlog.BoltOptions{Create: true})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite writes realistic data (records, RFC 6962 tiles built with
// x/mod's tlog, signed notes) but checks only what the Store contract
// promises: reads (and index scans, in key order, and ScanReleases's
// skipping one) return what was committed, a batch is all or nothing, a
// stale Prev is refused with ErrHeadMoved, one of several racing writers
// wins, reads never see anything but committed bytes (a RecordFinder's
// index entry with its record, a LeafReader's record with its leaf, each
// pair from one transaction), Extent reports how
// far the data reaches with the head of the same moment (also after a head
// is rolled back over data it does not cover), no slice is shared with the
// caller (one passed in is not kept, one returned is not the store's),
// everything survives closing
// and reopening the store, and a LockingStore's lock is used by the next
// Commit.
//
// A store that several logs may write at once (several sumd processes on
// one database) also calls Writers, with a function that opens a log on it.
//
// Every store also calls Damage with a Tamperer that changes its data
// behind the log's back: the log must find a wrong index entry, a changed
// record or tile, through the store's own reads and index scan.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/tlog"
)

// An Opener opens the store called name: an empty one the first time a name
// is used in a Run, and one with the same data each time after the store
// it returned before was closed. The suite closes every store it opens.
type Opener func(t *testing.T, name string) tlog.Store

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	t.Run("Empty", func(t *testing.T) { testEmpty(t, open) })
	t.Run("Create", func(t *testing.T) { testCreate(t, open) })
	t.Run("Commit", func(t *testing.T) { testCommit(t, open) })
	t.Run("HeadMoved", func(t *testing.T) { testHeadMoved(t, open) })
	t.Run("RacingWriters", func(t *testing.T) { testRacingWriters(t, open) })
	t.Run("ReadsDuringCommits", func(t *testing.T) { testReadsDuringCommits(t, open) })
	t.Run("Aliasing", func(t *testing.T) { testAliasing(t, open) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, open) })
	t.Run("Mirror", func(t *testing.T) { testMirror(t, open) })
	t.Run("Repoint", func(t *testing.T) { testRepoint(t, open) })
	t.Run("Aux", func(t *testing.T) { testAux(t, open) })
	t.Run("LockHead", func(t *testing.T) { testLockHead(t, open) })
	t.Run("RolledBack", func(t *testing.T) { testRolledBack(t, open) })
	t.Run("ScanReleases", func(t *testing.T) { testScanReleases(t, open) })
}

var ctx = context.Background()

func openClosed(t *testing.T, open Opener, name string) tlog.Store {
	t.Helper()
	s := open(t, name)
	t.Cleanup(func() { s.Close() })
	return s
}

func reopen(t *testing.T, open Opener, s tlog.Store, name string) tlog.Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openClosed(t, open, name)
}

func testEmpty(t *testing.T, open Opener) {
	s := openClosed(t, open, "empty")
	if _, err := s.Load(ctx); !errors.Is(err, tlog.ErrNoLog) {
		t.Fatalf("Load of a new store = %v, want ErrNoLog", err)
	}
	s = reopen(t, open, s, "empty")
	if _, err := s.Load(ctx); !errors.Is(err, tlog.ErrNoLog) {
		t.Fatalf("Load of a reopened new store = %v, want ErrNoLog", err)
	}
}

func testCreate(t *testing.T, open Opener) {
	s := openClosed(t, open, "create")
	m := newModel(t)
	meta := tlog.Meta{Name: m.name, VKeys: []string{m.vkey}}
	if err := s.Create(ctx, meta, m.head); err != nil {
		t.Fatalf("Create: %v", err)
	}
	other := tlog.Meta{Name: "other.example", VKeys: []string{"other.example+00000000+AAAA"}}
	if err := s.Create(ctx, other, []byte("other head")); !errors.Is(err, tlog.ErrLogExists) {
		t.Fatalf("second Create = %v, want ErrLogExists", err)
	}
	m.check(s)
	s = reopen(t, open, s, "create")
	m.check(s)
}

// testCommit grows a log across tile boundaries (and a second tile level),
// checking every read after each batch and after reopening.
func testCommit(t *testing.T, open Opener) {
	s := openClosed(t, open, "commit")
	m := newModel(t)
	m.create(s)
	for _, n := range []int{1, 2, 250, 3, 1, 300, 7, 0} {
		b := m.next(n)
		if err := s.Commit(ctx, b); err != nil {
			t.Fatalf("Commit of %d records at size %d: %v", n, m.n, err)
		}
		m.apply(b)
		m.check(s)
	}
	s = reopen(t, open, s, "commit")
	m.check(s)
	b := m.next(5)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("Commit after reopening: %v", err)
	}
	m.apply(b)
	m.check(s)
	m.check(ownReads{s})
}

// ownReads is a store whose every read is the log's own (tlog.OwnRead),
// which must answer as any other.
type ownReads struct{ tlog.Store }

func (o ownReads) Lookup(ctx context.Context, keys []string) ([]int64, error) {
	return o.Store.Lookup(tlog.OwnRead(ctx), keys)
}

func (o ownReads) ReadRecords(ctx context.Context, ids []int64) ([][]byte, error) {
	return o.Store.ReadRecords(tlog.OwnRead(ctx), ids)
}

func (o ownReads) ScanIndex(ctx context.Context, from string, limit int) ([]tlog.IndexEntry, error) {
	return o.Store.ScanIndex(tlog.OwnRead(ctx), from, limit)
}

func (o ownReads) ScanIndexBack(ctx context.Context, before string, limit int) ([]tlog.IndexEntry, error) {
	return o.Store.ScanIndexBack(tlog.OwnRead(ctx), before, limit)
}

func (o ownReads) ScanReleases(ctx context.Context, path, from string, limit int) ([]tlog.IndexEntry, error) {
	return o.Store.ScanReleases(tlog.OwnRead(ctx), path, from, limit)
}

func (o ownReads) ReadTiles(ctx context.Context, tiles []tlog.TileID) ([][]byte, error) {
	return o.Store.ReadTiles(tlog.OwnRead(ctx), tiles)
}

// testHeadMoved commits with stale and missing Prev heads: refused with
// ErrHeadMoved, nothing stored.
func testHeadMoved(t *testing.T, open Opener) {
	s := openClosed(t, open, "headmoved")
	m := newModel(t)
	m.create(s)
	first := m.head
	b := m.next(3)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	m.apply(b)
	for _, prev := range [][]byte{first, nil, append(bytes.Clone(m.head), '\n')} {
		stale := m.next(4)
		stale.Prev = prev
		err := s.Commit(ctx, stale)
		if !errors.Is(err, tlog.ErrHeadMoved) || !errors.Is(err, tlog.ErrNotPersisted) {
			t.Fatalf("Commit with Prev %.20q = %v, want ErrHeadMoved wrapping ErrNotPersisted", prev, err)
		}
		m.check(s) // nothing of it is visible
	}
}

// testRacingWriters commits different batches with the same Prev from
// several goroutines, as several sumd processes would: exactly one wins,
// the others get ErrHeadMoved, and the store holds the winner's batch.
func testRacingWriters(t *testing.T, open Opener) {
	s := openClosed(t, open, "racing")
	m := newModel(t)
	m.create(s)
	const writers = 8
	batches := make([]*tlog.Batch, writers)
	for i := range batches {
		batches[i] = m.fork(i).next(1 + i)
	}
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range batches {
		wg.Go(func() { errs[i] = s.Commit(ctx, batches[i]) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both committed on the same head", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, tlog.ErrHeadMoved):
			t.Fatalf("losing writer %d: %v, want ErrHeadMoved", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer committed")
	}
	w := m.fork(winner)
	w.apply(w.next(1 + winner))
	w.check(s)
}

// testReadsDuringCommits reads while batches commit: a read returns either
// nothing or exactly the committed bytes (tiles: a prefix of the final
// data), and never fails.
func testReadsDuringCommits(t *testing.T, open Opener) {
	s := openClosed(t, open, "reads")
	m := newModel(t)
	m.create(s)
	final := m.fork(0)
	var batches []*tlog.Batch
	for i := range 40 {
		b := final.next(1 + i*3%17)
		final.apply(b)
		batches = append(batches, b)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := final.checkPartial(s); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// Extent reads the head with the data, in one transaction: never a
	// commit's records without its head.
	sizes := map[string]int64{string(m.head): 0}
	for _, b := range batches {
		sizes[string(b.Head)] = b.Tree.N
	}
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			e, err := s.Extent(ctx)
			if err != nil {
				t.Errorf("Extent during commits: %v", err)
				return
			}
			n, ok := sizes[string(e.Head)]
			if !ok || e.Records != n || e.Indexed != n {
				t.Errorf("Extent during commits: records to %d, index to %d with the head of tree %d (known: %v): not one transaction", e.Records, e.Indexed, n, ok)
				return
			}
		}
	})
	for _, b := range batches {
		if err := s.Commit(ctx, b); err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
	final.check(s)
}

// testAliasing checks that a store keeps no slice it was given and
// returns none it keeps: it overwrites a created head and a committed
// batch's texts, tiles and head after the call returned, and every slice
// a read returned (twice: a caching store answers the second read from
// its cache), then expects the bytes committed.
func testAliasing(t *testing.T, open Opener) {
	s := openClosed(t, open, "aliasing")
	m := newModel(t)
	head := bytes.Clone(m.head)
	if err := s.Create(ctx, tlog.Meta{Name: m.name, VKeys: m.vkeys}, head); err != nil {
		t.Fatal(err)
	}
	scribble(head)
	m.check(s)
	for _, n := range []int{3, 300} {
		b := m.next(n)
		m.apply(cloneBatch(b))
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		scribble(b.Prev, b.Head)
		for _, r := range b.Records {
			scribble(r.Text)
		}
		for _, tile := range b.Tiles {
			scribble(tile.Data)
		}
		m.check(s)
		for range 2 {
			m.scribbleReads(s)
		}
		m.check(s)
	}
	if a, ok := s.(tlog.AuxStore); ok {
		v := []byte("aux value")
		if err := a.SetAux(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
		scribble(v)
		for range 3 {
			got, err := a.Aux(ctx, "k")
			if err != nil || string(got) != "aux value" {
				t.Fatalf("Aux after overwriting what SetAux was given and what Aux returned = %q, %v; want \"aux value\"", got, err)
			}
			scribble(got)
		}
	}
}

// scribble overwrites slices a store must not share with its callers.
func scribble(bufs ...[]byte) {
	for _, b := range bufs {
		for i := range b {
			b[i] = 'X'
		}
	}
}

// cloneBatch copies b's slices, for the model to keep.
func cloneBatch(b *tlog.Batch) *tlog.Batch {
	c := *b
	c.Prev, c.Head = bytes.Clone(b.Prev), bytes.Clone(b.Head)
	c.VKeys = slices.Clone(b.VKeys)
	c.Records = slices.Clone(b.Records)
	for i := range c.Records {
		c.Records[i].Text = bytes.Clone(b.Records[i].Text)
	}
	c.Tiles = slices.Clone(b.Tiles)
	for i := range c.Tiles {
		c.Tiles[i].Data = bytes.Clone(b.Tiles[i].Data)
	}
	return &c
}

// scribbleReads reads everything s holds of m, by every read it has, and
// overwrites what the reads returned.
func (m *model) scribbleReads(s tlog.Store) {
	m.t.Helper()
	ids := slices.Collect(maps.Keys(m.texts))
	tiles := slices.Collect(maps.Keys(m.tiles))
	keys := m.indexKeys()
	st, err := s.Load(ctx)
	if err != nil {
		m.t.Fatal(err)
	}
	scribble(st.Head)
	e, err := s.Extent(ctx)
	if err != nil {
		m.t.Fatal(err)
	}
	scribble(e.Head)
	texts, err := s.ReadRecords(ctx, ids)
	if err != nil {
		m.t.Fatal(err)
	}
	scribble(texts...)
	data, err := s.ReadTiles(ctx, tiles)
	if err != nil {
		m.t.Fatal(err)
	}
	scribble(data...)
	if f, ok := s.(tlog.RecordFinder); ok {
		_, texts, err := f.FindRecords(ctx, keys)
		if err != nil {
			m.t.Fatal(err)
		}
		scribble(texts...)
	}
	if lr, ok := s.(tlog.LeafReader); ok {
		texts, _, err := lr.ReadRecordLeaves(ctx, ids)
		if err != nil {
			m.t.Fatal(err)
		}
		scribble(texts...)
	}
}

// testRolledBack rolls the head back to an older one, as an UPDATE of a
// SQL store's head row behind the log's back would: the store keeps the
// records, index entries and tiles of the larger tree, and Extent must
// report them with the older head, so that Open can refuse to sign on top
// of it.
func testRolledBack(t *testing.T, open Opener) {
	s := openClosed(t, open, "rolledback")
	m := newModel(t)
	m.create(s)
	b := m.next(300)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	m.apply(b)
	old := m.head
	b = m.next(20)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	m.apply(b)
	if err := s.Commit(ctx, &tlog.Batch{Prev: m.head, Head: old}); err != nil {
		t.Fatalf("committing the older head: %v", err)
	}
	m.head = old
	for i := range 2 {
		if i == 1 {
			s = reopen(t, open, s, "rolledback")
		}
		e, err := s.Extent(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.Head, old) || e.Records != 320 || e.Indexed != 320 {
			t.Fatalf("Extent after a rollback to tree 300 = head %.30q, records to %d, index to %d; want the old head and 320, 320", e.Head, e.Records, e.Indexed)
		}
		m.checkExtent(s)
	}
}

// testKeys replaces the verifier keys with a batch that re-signs the head.
func testKeys(t *testing.T, open Opener) {
	s := openClosed(t, open, "keys")
	m := newModel(t)
	m.create(s)
	b := m.next(2)
	b.VKeys = []string{m.vkey, "storetest.example+01020304+AQIDBA=="}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	m.apply(b)
	m.check(s)
	resign := m.next(0)
	resign.VKeys = b.VKeys[1:]
	if err := s.Commit(ctx, resign); err != nil {
		t.Fatal(err)
	}
	m.apply(resign)
	s = reopen(t, open, s, "keys")
	m.check(s)
}

// testMirror stores a mirror: no head at first, then a head with only some
// records, one of them unindexed.
func testMirror(t *testing.T, open Opener) {
	s := openClosed(t, open, "mirror")
	m := newModel(t)
	m.mirror = true
	if err := s.Create(ctx, tlog.Meta{Name: m.name, VKeys: []string{m.vkey}, Mirror: true}, nil); err != nil {
		t.Fatal(err)
	}
	m.head = nil
	m.check(s)
	b := m.next(300)
	b.Prev = nil
	b.Records = slices.DeleteFunc(b.Records, func(r tlog.StoredRecord) bool { return r.ID%7 != 0 })
	b.Records[1].Key = ""
	// A staging commit (Log.Stage) stores tiles and records ahead of the
	// head, which stays: here, absent.
	stage := &tlog.Batch{Tiles: b.Tiles[:1], Records: b.Records[:3]}
	if err := s.Commit(ctx, stage); err != nil {
		t.Fatalf("staging commit: %v", err)
	}
	if st, err := s.Load(ctx); err != nil || len(st.Head) != 0 {
		t.Fatalf("after a staging commit with no head, Load = %q, %v; want no head", st.Head, err)
	}
	if got, err := s.ReadTiles(ctx, []tlog.TileID{b.Tiles[0].TileID}); err != nil || !bytes.Equal(got[0], b.Tiles[0].Data) {
		t.Fatalf("staged tile: %v, or not stored", err)
	}
	m.apply(b)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	m.check(s)
	s = reopen(t, open, s, "mirror")
	m.check(s)
}

// testRepoint: a mirror that learns an earlier record of a module version
// the origin logged twice moves its index entry to the smaller id (see
// Batch.Records).
func testRepoint(t *testing.T, open Opener) {
	s := openClosed(t, open, "repoint")
	if err := s.Create(ctx, tlog.Meta{Name: "repoint", VKeys: []string{"repoint+1+AAAA"}, Mirror: true}, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []tlog.StoredRecord{{ID: 5, Key: "k@v1", Text: []byte("five")}, {ID: 2, Key: "k@v1", Text: []byte("two")}} {
		if err := s.Commit(ctx, &tlog.Batch{Records: []tlog.StoredRecord{r}}); err != nil {
			t.Fatalf("commit of record %d indexed as k@v1: %v", r.ID, err)
		}
		if ids, err := s.Lookup(ctx, []string{"k@v1"}); err != nil || ids[0] != r.ID {
			t.Fatalf("Lookup(k@v1) after committing record %d = %v, %v", r.ID, ids, err)
		}
	}
	s = reopen(t, open, s, "repoint")
	if ids, err := s.Lookup(ctx, []string{"k@v1"}); err != nil || ids[0] != 2 {
		t.Fatalf("Lookup(k@v1) after reopening = %v, %v; want 2", ids, err)
	}
}

func testAux(t *testing.T, open Opener) {
	s := openClosed(t, open, "aux")
	a, ok := s.(tlog.AuxStore)
	if !ok {
		t.Fatal("the store does not implement tlog.AuxStore: sumd keeps OCI sync progress and its status history there")
	}
	m := newModel(t)
	m.create(s)
	if v, err := a.Aux(ctx, "k"); v != nil || err != nil {
		t.Fatalf("Aux of a missing key = %q, %v; want nil", v, err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	for _, v := range [][]byte{[]byte("one"), []byte("two"), big} {
		if err := a.SetAux(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
		if got, err := a.Aux(ctx, "k"); !bytes.Equal(got, v) || err != nil {
			t.Fatalf("Aux after SetAux = %.20q (%d bytes), %v", got, len(got), err)
		}
	}
	m.check(s) // the log is untouched
	s = reopen(t, open, s, "aux")
	if got, err := s.(tlog.AuxStore).Aux(ctx, "k"); !bytes.Equal(got, big) || err != nil {
		t.Fatalf("Aux after reopening: %d bytes, %v", len(got), err)
	}
}

// testLockHead checks a LockingStore: a Commit after LockHead stores its
// batch (or refuses a stale Prev), and UnlockHead leaves everything as it
// was.
func testLockHead(t *testing.T, open Opener) {
	s := openClosed(t, open, "lock")
	ls, ok := s.(tlog.LockingStore)
	if !ok {
		t.Log("the store takes no head lock ahead of Commit (tlog.LockingStore is optional): nothing to check")
		return
	}
	m := newModel(t)
	m.create(s)
	for range 2 {
		if err := ls.LockHead(ctx); err != nil {
			t.Fatalf("LockHead: %v", err)
		}
		ls.UnlockHead()
		ls.UnlockHead() // with nothing held: nothing happens
	}
	m.check(s)
	if err := ls.LockHead(ctx); err != nil {
		t.Fatal(err)
	}
	b := m.next(3)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("Commit after LockHead: %v", err)
	}
	m.apply(b)
	m.check(s)
	if err := ls.LockHead(ctx); err != nil {
		t.Fatal(err)
	}
	stale := m.next(1)
	stale.Prev = b.Prev
	if err := s.Commit(ctx, stale); !errors.Is(err, tlog.ErrHeadMoved) {
		t.Fatalf("Commit of a stale Prev after LockHead = %v, want ErrHeadMoved", err)
	}
	ls.UnlockHead()
	b = m.next(2)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatalf("Commit after a refused one: %v", err)
	}
	m.apply(b)
	m.check(s)
}

// A model is the log the suite expects a store to hold, computed with
// x/mod's tlog alone.
type model struct {
	t      *testing.T
	name   string
	vkey   string
	vkeys  []string
	signer note.Signer
	mirror bool

	hashes []xtlog.Hash // stored hashes, by stored-hash index
	n      int64        // tree size
	texts  map[int64][]byte
	keys   map[string]int64 // index
	tiles  map[tlog.TileID][]byte
	head   []byte
	salt   int // distinguishes the records of forks
}

func newModel(t *testing.T) *model {
	skey, vkey, err := note.GenerateKey(rand.Reader, "storetest.example")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	m := &model{t: t, name: "storetest.example", vkey: vkey, vkeys: []string{vkey}, signer: signer,
		texts: map[int64][]byte{}, keys: map[string]int64{}, tiles: map[tlog.TileID][]byte{}}
	m.head = m.sign(0, m.root(0))
	return m
}

func (m *model) create(s tlog.Store) {
	if err := s.Create(ctx, tlog.Meta{Name: m.name, VKeys: m.vkeys}, m.head); err != nil {
		m.t.Fatalf("Create: %v", err)
	}
}

// fork returns a copy of m whose records will differ from m's.
func (m *model) fork(salt int) *model {
	c := *m
	c.hashes = slices.Clone(m.hashes)
	c.texts, c.keys, c.tiles = maps.Clone(m.texts), maps.Clone(m.keys), maps.Clone(m.tiles)
	c.salt = salt + 1
	return &c
}

func (m *model) ReadHashes(indexes []int64) ([]xtlog.Hash, error) {
	out := make([]xtlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("model: no hash %d", x)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *model) root(n int64) xtlog.Hash {
	h, err := xtlog.TreeHash(n, m)
	if err != nil {
		m.t.Fatal(err)
	}
	return h
}

func (m *model) sign(n int64, root xtlog.Hash) []byte {
	head, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: n, Hash: root}))}, m.signer)
	if err != nil {
		m.t.Fatal(err)
	}
	return head
}

// record returns the text and key of record id: keys of several shapes,
// one of them long.
func (m *model) record(id int64) (string, []byte) {
	path := fmt.Sprintf("example.com/!storetest/m%d", id)
	if m.salt > 0 {
		path += fmt.Sprintf("/fork%d", m.salt)
	}
	if id%50 == 3 {
		path += "/" + strings.Repeat("long", 100)
	}
	version := fmt.Sprintf("v1.%d.0", id%5)
	switch id % 3 {
	case 1:
		version = "v2.0.0+incompatible"
	case 2:
		version = "v0.0.0-20200101000000-abcdef123456"
	}
	h := "h1:" + strings.Repeat("A", 43) + "="
	return path + "@" + version, fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod %s\n", path, version, h, path, version, h)
}

// next returns the batch that appends n records to m, without applying it.
func (m *model) next(n int) *tlog.Batch {
	c := m.fork(m.salt - 1)
	b := &tlog.Batch{Prev: m.head}
	for range n {
		id := c.n
		key, text := c.record(id)
		hs, err := xtlog.StoredHashes(id, text, c)
		if err != nil {
			m.t.Fatal(err)
		}
		c.hashes = append(c.hashes, hs...)
		c.n++
		b.Records = append(b.Records, tlog.StoredRecord{ID: id, Key: key, Text: text})
	}
	for _, tile := range xtlog.NewTiles(8, m.n, c.n) {
		data, err := xtlog.ReadTileData(tile, c)
		if err != nil {
			m.t.Fatal(err)
		}
		b.Tiles = append(b.Tiles, tlog.Tile{TileID: tlog.TileID{L: tile.L, N: tile.N}, Data: data})
	}
	b.Tree = xtlog.Tree{N: c.n, Hash: c.root(c.n)}
	b.Head = c.sign(c.n, b.Tree.Hash)
	if n == 0 {
		b.Head = append(bytes.Clone(b.Head), []byte("— resigned\n")...)
	}
	return b
}

// apply makes m hold b (computed by m.next).
func (m *model) apply(b *tlog.Batch) {
	for m.n < b.Tree.N {
		_, text := m.record(m.n)
		hs, err := xtlog.StoredHashes(m.n, text, m)
		if err != nil {
			m.t.Fatal(err)
		}
		m.hashes = append(m.hashes, hs...)
		m.n++
	}
	for _, r := range b.Records {
		m.texts[r.ID] = r.Text
		if r.Key != "" {
			m.keys[r.Key] = r.ID
		}
	}
	for _, tile := range b.Tiles {
		m.tiles[tile.TileID] = tile.Data
	}
	if b.VKeys != nil {
		m.vkeys = b.VKeys
	}
	m.head = b.Head
}

// check compares everything s holds with m.
func (m *model) check(s tlog.Store) {
	m.t.Helper()
	st, err := s.Load(ctx)
	if err != nil {
		m.t.Fatalf("Load: %v", err)
	}
	want := tlog.Meta{Name: m.name, VKeys: m.vkeys, Mirror: m.mirror}
	if st.Meta.Name != want.Name || !slices.Equal(st.Meta.VKeys, want.VKeys) || st.Meta.Mirror != want.Mirror {
		m.t.Fatalf("Load: meta %+v, want %+v", st.Meta, want)
	}
	if !bytes.Equal(st.Head, m.head) {
		m.t.Fatalf("Load: head\n%s\nwant\n%s", st.Head, m.head)
	}
	m.checkIndex(s)
	m.checkExtent(s)
	if err := m.checkRecords(s, false); err != nil {
		m.t.Fatal(err)
	}
	if err := m.checkTiles(s, false); err != nil {
		m.t.Fatal(err)
	}
}

// checkPartial checks that whatever s shows is some prefix of m: during
// commits, each read of a RecordFinder or LeafReader shows an index entry
// with its record, and a record with its leaf hash, or neither.
func (m *model) checkPartial(s tlog.Store) error {
	if err := m.checkFound(s, m.indexKeys(), true); err != nil {
		return err
	}
	if err := m.checkRecords(s, true); err != nil {
		return err
	}
	return m.checkTiles(s, true)
}

// indexKeys returns the key of every record of m, and one never stored.
func (m *model) indexKeys() []string {
	keys := []string{"example.com/none@v1.0.0"}
	for id := range m.n {
		key, _ := m.record(id)
		keys = append(keys, key)
	}
	return keys
}

func (m *model) checkIndex(s tlog.Store) {
	m.t.Helper()
	keys := m.indexKeys()
	want := m.ids(keys)
	got, err := s.Lookup(ctx, keys)
	if err != nil || !slices.Equal(got, want) {
		m.t.Fatalf("Lookup of %d keys: %v, %v; want %v", len(keys), got, err, want)
	}
	if err := m.checkFound(s, keys, false); err != nil {
		m.t.Fatal(err)
	}
	m.checkScan(s)
}

// ids returns the id m's index names for each key, or -1.
func (m *model) ids(keys []string) []int64 {
	ids := make([]int64, len(keys))
	for i, key := range keys {
		id, ok := m.keys[key]
		if !ok {
			id = -1
		}
		ids[i] = id
	}
	return ids
}

// checkFound checks a RecordFinder: each key's index entry with the
// record it names. During commits (partial) a key may be missing, but
// then with no record: FindRecords reads both in one transaction, so an
// entry never comes without its record, nor a record without its entry.
func (m *model) checkFound(s tlog.Store, keys []string, partial bool) error {
	f, ok := s.(tlog.RecordFinder)
	if !ok {
		return nil
	}
	want := m.ids(keys)
	got, texts, err := f.FindRecords(ctx, keys)
	if err != nil || len(got) != len(keys) || len(texts) != len(keys) {
		return fmt.Errorf("FindRecords of %d keys: %d ids, %d texts, %v", len(keys), len(got), len(texts), err)
	}
	for i, id := range got {
		switch {
		case partial && id < 0 && texts[i] == nil:
		case id != want[i]:
			return fmt.Errorf("FindRecords: %s names record %d, want %d", keys[i], id, want[i])
		case id < 0 && texts[i] != nil:
			return fmt.Errorf("FindRecords: %s has no index entry, but a record %q", keys[i], texts[i])
		case id >= 0 && !bytes.Equal(texts[i], m.texts[id]):
			return fmt.Errorf("FindRecords: %s: record %d = %q, want %q (an index entry without its record: not one transaction?)", keys[i], id, texts[i], m.texts[id])
		}
	}
	return nil
}

// checkScan lists the index whole, then from a key in the middle with a
// small limit, and past the last key; and the same backwards
// (ScanIndexBack).
func (m *model) checkScan(s tlog.Store) {
	m.t.Helper()
	keys := slices.Sorted(maps.Keys(m.keys))
	scan := func(from string, limit int) []string {
		got, err := s.ScanIndex(ctx, from, limit)
		if err != nil {
			m.t.Fatalf("ScanIndex(%q, %d): %v", from, limit, err)
		}
		return m.scanned("ScanIndex", got)
	}
	defer m.checkScanBack(s, keys)
	if got := scan("", len(keys)+10); !slices.Equal(got, keys) {
		m.t.Fatalf("ScanIndex of the whole index: %d keys, want %d in order", len(got), len(keys))
	}
	if len(keys) == 0 {
		return
	}
	mid := keys[len(keys)/2]
	if got, want := scan(mid, 3), keys[len(keys)/2:min(len(keys), len(keys)/2+3)]; !slices.Equal(got, want) {
		m.t.Fatalf("ScanIndex(%q, 3) = %q, want %q", mid, got, want)
	}
	if got := scan(keys[len(keys)-1]+"\x00", 5); len(got) != 0 {
		m.t.Fatalf("ScanIndex past the last key = %q", got)
	}
}

// checkScanBack lists the index whole backwards, then from a key in the
// middle (which it leaves out) with a small limit, and before the first
// key.
func (m *model) checkScanBack(s tlog.Store, keys []string) {
	m.t.Helper()
	scan := func(before string, limit int) []string {
		got, err := s.ScanIndexBack(ctx, before, limit)
		if err != nil {
			m.t.Fatalf("ScanIndexBack(%q, %d): %v", before, limit, err)
		}
		return m.scanned("ScanIndexBack", got)
	}
	back := slices.Clone(keys)
	slices.Reverse(back)
	if got := scan("\xff", len(keys)+10); !slices.Equal(got, back) {
		m.t.Fatalf("ScanIndexBack of the whole index: %d keys, want %d in descending order", len(got), len(keys))
	}
	if len(keys) == 0 {
		return
	}
	i := len(keys) / 2
	if got, want := scan(keys[i], 3), back[len(keys)-i:min(len(keys), len(keys)-i+3)]; !slices.Equal(got, want) {
		m.t.Fatalf("ScanIndexBack(%q, 3) = %q, want %q", keys[i], got, want)
	}
	if got, want := scan(keys[i]+"\x00", 2), back[len(keys)-i-1:min(len(keys), len(keys)-i+1)]; !slices.Equal(got, want) {
		m.t.Fatalf("ScanIndexBack(%q, 2) = %q, want %q", keys[i]+"\x00", got, want)
	}
	if got := scan(keys[0], 5); len(got) != 0 {
		m.t.Fatalf("ScanIndexBack before the first key = %q", got)
	}
}

// scanned checks that the entries a scan (op) returned name the records
// the model holds, and returns their keys.
func (m *model) scanned(op string, got []tlog.IndexEntry) []string {
	m.t.Helper()
	var out []string
	for _, e := range got {
		key := e.Path + "@" + e.Version
		if e.ID != m.keys[key] {
			m.t.Fatalf("%s: %s names record %d, want %d", op, key, e.ID, m.keys[key])
		}
		out = append(out, key)
	}
	return out
}

// checkExtent compares s's Extent with what m holds.
func (m *model) checkExtent(s tlog.Store) {
	m.t.Helper()
	e, err := s.Extent(ctx)
	if err != nil {
		m.t.Fatalf("Extent: %v", err)
	}
	want := tlog.Extent{Head: m.head}
	for id := range m.texts {
		want.Records = max(want.Records, id+1)
	}
	for _, id := range m.keys {
		want.Indexed = max(want.Indexed, id+1)
	}
	last := map[int]tlog.TileExtent{}
	for id, data := range m.tiles {
		if t, ok := last[id.L]; !ok || id.N > t.N {
			last[id.L] = tlog.TileExtent{TileID: id, W: len(data) / xtlog.HashSize}
		}
	}
	for _, l := range slices.Sorted(maps.Keys(last)) {
		want.Tiles = append(want.Tiles, last[l])
	}
	if !bytes.Equal(e.Head, want.Head) || e.Records != want.Records || e.Indexed != want.Indexed || !slices.Equal(e.Tiles, want.Tiles) {
		m.t.Fatalf("Extent = head %.30q, records to %d, index to %d, last tiles %v;\nwant head %.30q, %d, %d, %v",
			e.Head, e.Records, e.Indexed, e.Tiles, want.Head, want.Records, want.Indexed, want.Tiles)
	}
}

// checkRecords reads every record in runs of a data tile, then a scattered
// set, and a missing one beyond the tree.
func (m *model) checkRecords(s tlog.Store, partial bool) error {
	var ids []int64
	for id := range m.n + 2 {
		ids = append(ids, id)
	}
	scattered := []int64{m.n + 5, 0, m.n / 2, 3, 2, m.n - 1}
	for _, run := range append(slices.Collect(slices.Chunk(ids, 256)), scattered) {
		got, err := s.ReadRecords(ctx, run)
		if err != nil || len(got) != len(run) {
			return fmt.Errorf("ReadRecords(%d ids from %d): %d, %v", len(run), run[0], len(got), err)
		}
		for i, id := range run {
			want := m.texts[id]
			if !bytes.Equal(got[i], want) && !(partial && got[i] == nil) {
				return fmt.Errorf("record %d = %q, want %q", id, got[i], want)
			}
		}
		if err := m.checkLeaves(s, run, partial); err != nil {
			return err
		}
	}
	return nil
}

// checkLeaves checks a LeafReader's records and leaf hashes: each record
// as ReadRecords returns it, with the hash at its place in its level-0
// tile, zero where the tile does not reach it. The suite's batches store
// a record's tile with it, so a record read is never without its leaf,
// during commits too: ReadRecordLeaves reads both in one transaction.
func (m *model) checkLeaves(s tlog.Store, ids []int64, partial bool) error {
	lr, ok := s.(tlog.LeafReader)
	if !ok {
		return nil
	}
	texts, leaves, err := lr.ReadRecordLeaves(ctx, ids)
	if err != nil || len(texts) != len(ids) || len(leaves) != len(ids) {
		return fmt.Errorf("ReadRecordLeaves(%d ids from %d): %d texts, %d leaves, %v", len(ids), ids[0], len(texts), len(leaves), err)
	}
	for i, id := range ids {
		want := m.texts[id]
		if texts[i] == nil && (want == nil || partial) {
			if leaves[i] != (xtlog.Hash{}) {
				return fmt.Errorf("ReadRecordLeaves: record %d not returned, but a leaf hash is", id)
			}
			continue
		}
		if !bytes.Equal(texts[i], want) {
			return fmt.Errorf("ReadRecordLeaves: record %d = %q, want %q", id, texts[i], want)
		}
		tile := m.tiles[tlog.TileID{L: 0, N: id >> 8}]
		var leaf xtlog.Hash
		if off := int(id%256) * xtlog.HashSize; off+xtlog.HashSize <= len(tile) {
			copy(leaf[:], tile[off:])
		}
		if leaves[i] != leaf {
			return fmt.Errorf("ReadRecordLeaves: leaf hash of record %d = %v, want %v (a record without its leaf: not one transaction?)", id, leaves[i], leaf)
		}
	}
	return nil
}

func (m *model) checkTiles(s tlog.Store, partial bool) error {
	var ids []tlog.TileID
	for id := range m.tiles {
		ids = append(ids, id)
	}
	ids = append(ids, tlog.TileID{L: 0, N: m.n/256 + 1}, tlog.TileID{L: 5, N: 0})
	got, err := s.ReadTiles(ctx, ids)
	if err != nil || len(got) != len(ids) {
		return fmt.Errorf("ReadTiles(%d tiles): %d, %v", len(ids), len(got), err)
	}
	for i, id := range ids {
		want := m.tiles[id]
		if bytes.Equal(got[i], want) || partial && bytes.HasPrefix(want, got[i]) && len(got[i])%32 == 0 {
			continue
		}
		return fmt.Errorf("tile %d/%d: %d bytes, want %d (or a prefix, during commits: %v)", id.L, id.N, len(got[i]), len(want), partial)
	}
	return nil
}
