package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testlog"
)

// growOrigin adds n records (from first) to the primary log l.
func growOrigin(t testing.TB, l *Log, first, n int) {
	t.Helper()
	var recs []gosum.Record
	for i := range n {
		recs = append(recs, record(first+i, 3))
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

// extensionFrom reads from origin what a mirror holding a tree of size
// held needs to reach origin's head: the tiles, and the records wanted.
func extensionFrom(t testing.TB, origin *Log, held int64, want func(id int64) bool) Extension {
	t.Helper()
	ctx := context.Background()
	head, err := origin.Signed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tree := headTree(t, head)
	ext := Extension{Head: head, Tiles: map[tlog.Tile][]byte{}, Records: map[int64][]byte{}}
	for _, tile := range tlog.NewTiles(tileHeight, held, tree.N) {
		if ext.Tiles[tile], err = origin.ReadTileData(ctx, tile); err != nil {
			t.Fatal(err)
		}
	}
	for id := range tree.N {
		if want(id) {
			text, err := origin.ReadRecords(ctx, id, 1)
			if err != nil {
				t.Fatal(err)
			}
			ext.Records[id] = text[0]
		}
	}
	return ext
}

func openMirror(t testing.TB, s Store, vkey string, mode VerifyMode) *Log {
	t.Helper()
	m, err := OpenStore(s, Options{VerifierKeys: []string{vkey}, Create: true, Verify: mode, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sameAsOrigin checks that m serves origin's head, every tile at every
// width, and the records m should hold, byte for byte.
func sameAsOrigin(t *testing.T, m, origin *Log, holds func(id int64) bool) {
	t.Helper()
	testlog.SameAs(t, m, origin, holds)
}

// TestMirror extends a full and a partial mirror of a primary in several
// steps: each serves the origin's heads, tiles and (its) records byte for
// byte, reopens with full verification, and refuses to sign.
func TestMirror(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	all := func(int64) bool { return true }
	some := func(id int64) bool { return id%5 == 1 }
	full := openMirror(t, NewMemStore(), k.VerifierKey(), VerifyFull)
	defer full.Close()
	path := filepath.Join(t.TempDir(), "mirror.db")
	bs, err := OpenBolt(path, BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	partial := openMirror(t, bs, k.VerifierKey(), VerifyFull)

	// An fs.ErrNotExist (a 404 at /latest) that /healthz shows as it is:
	// it must say what is missing, not "file does not exist".
	if _, err := full.Signed(ctx); !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "file does not exist") {
		t.Fatalf("Signed of an empty mirror = %v, want fs.ErrNotExist saying the mirror holds no head", err)
	}
	for step, n := range []int{3, 300, 1, 0, 700} {
		growOrigin(t, origin, step*1000, n)
		for _, mc := range []struct {
			m     *Log
			holds func(int64) bool
		}{{full, all}, {partial, some}} {
			held, _ := mc.m.Tree(ctx)
			if err := mc.m.Extend(ctx, extensionFrom(t, origin, held.N, mc.holds)); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			sameAsOrigin(t, mc.m, origin, mc.holds)
		}
	}
	// A partial mirror adds an old record it did not hold.
	tree, _ := partial.Tree(ctx)
	more := func(id int64) bool { return some(id) || id == 2 }
	if err := partial.Extend(ctx, extensionFrom(t, origin, tree.N, func(id int64) bool { return id == 2 })); err != nil {
		t.Fatal(err)
	}
	sameAsOrigin(t, partial, origin, more)
	partial.Close()
	partial = openMirror(t, mustBolt(t, path), k.VerifierKey(), VerifyFull)
	defer partial.Close()
	sameAsOrigin(t, partial, origin, more)

	if _, err := full.Add(ctx, record(1, 1)); !errors.Is(err, ErrVerifierOnly) {
		t.Errorf("Add to a mirror = %v, want ErrVerifierOnly", err)
	}
	if err := full.AddKey(ctx, k); !errors.Is(err, ErrVerifierOnly) {
		t.Errorf("AddKey to a mirror = %v, want ErrVerifierOnly", err)
	}
	if err := origin.Extend(ctx, Extension{}); err == nil {
		t.Error("Extend of a primary succeeded")
	}
}

func mustBolt(t *testing.T, path string) *BoltStore {
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMirrorOpenRefuses: a mirror's store does not open with a signing
// key, nor a primary's with verifier keys only, nor with another log's.
func TestMirrorOpenRefuses(t *testing.T) {
	k := testKey(t, "sum.example.com")
	primary, mirror := NewMemStore(), NewMemStore()
	openMem(t, primary, k).Close()
	openMirror(t, mirror, k.VerifierKey(), VerifyTail).Close()
	other := testKey(t, "other.example.com")
	for _, tc := range []struct {
		s    Store
		opts Options
		want string
	}{
		{mirror, Options{Keys: []*Key{k}}, "holds a mirror"},
		{primary, Options{VerifierKeys: []string{k.VerifierKey()}}, "not a mirror"},
		{mirror, Options{VerifierKeys: []string{other.VerifierKey()}}, `mirror of "sum.example.com" but the verifier keys are for "other.example.com"`},
		{mirror, Options{Keys: []*Key{k}, VerifierKeys: []string{k.VerifierKey()}}, "or a mirror with verifier keys only"},
	} {
		tc.opts.Logger = quietLogger()
		if _, err := OpenStore(tc.s, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenStore = %v, want %q", err, tc.want)
		}
	}
}

// TestMirrorRefuses offers a mirror bad extensions: a head signed by
// another key, tampered, missing and extra tiles, a tampered record, a
// fork (same size and larger) and a rollback. Each is refused and stores
// nothing; an honest extension then goes through.
func TestMirrorRefuses(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 200)
	head200, _ := origin.Signed(ctx)
	growOrigin(t, origin, 200, 100)
	s := NewMemStore()
	m := openMirror(t, s, k.VerifierKey(), VerifyTail)
	defer m.Close()
	all := func(int64) bool { return true }
	old := extensionFrom(t, origin, 0, all)
	if err := m.Extend(ctx, old); err != nil {
		t.Fatal(err)
	}
	growOrigin(t, origin, 1000, 300)
	good := extensionFrom(t, origin, 300, all)

	// A fork signed with the origin's key: the same first 290 records,
	// then others, to 300 records and to 600.
	forkAt := func(n int) Extension {
		f := openMem(t, NewMemStore(), k)
		defer f.Close()
		growOrigin(t, f, 0, 290)
		growOrigin(t, f, 5000, n-290)
		return extensionFrom(t, f, 300, all)
	}
	impostor := openMem(t, NewMemStore(), testKey(t, "sum.example.com"))
	defer impostor.Close()
	growOrigin(t, impostor, 0, 600)

	tamper := func(change func(e *Extension)) Extension {
		e := Extension{Head: good.Head, Tiles: map[tlog.Tile][]byte{}, Records: map[int64][]byte{}}
		for t, d := range good.Tiles {
			e.Tiles[t] = bytes.Clone(d)
		}
		for id, r := range good.Records {
			e.Records[id] = bytes.Clone(r)
		}
		change(&e)
		return e
	}
	someTile := func(e *Extension) tlog.Tile {
		for t := range e.Tiles {
			if t.L == 0 && t.W == 256 {
				return t
			}
		}
		panic("no full tile")
	}
	rollback := Extension{Head: head200}
	for _, tc := range []struct {
		name string
		ext  Extension
		want func(error) bool
	}{
		{"bad signature", extensionFrom(t, impostor, 300, all), isUnverified},
		{"tampered tile", tamper(func(e *Extension) { e.Tiles[someTile(e)][40] ^= 1 }), isUnverified},
		{"missing tile", tamper(func(e *Extension) { delete(e.Tiles, someTile(e)) }), isUnverified},
		{"extra tile", tamper(func(e *Extension) {
			e.Tiles[tlog.Tile{H: 8, L: 0, N: 0, W: 256}] = old.Tiles[tlog.Tile{H: 8, L: 0, N: 0, W: 256}]
		}), isUnverified},
		{"tampered record", tamper(func(e *Extension) { e.Records[310] = record(9, 9).Text() }), isUnverified},
		{"record beyond the tree", tamper(func(e *Extension) { e.Records[600] = record(9, 9).Text() }), isUnverified},
		{"fork of the same size", forkAt(300), isFork},
		{"fork", forkAt(600), isFork},
		{"rollback", rollback, isRollback},
	} {
		before := s.Commits()
		err := m.Extend(ctx, tc.ext)
		if !tc.want(err) {
			t.Errorf("%s: Extend = %v", tc.name, err)
		}
		if s.Commits() != before {
			t.Errorf("%s: refused, but stored", tc.name)
		}
		if head, _ := m.Signed(ctx); !bytes.Equal(head, old.Head) {
			t.Errorf("%s: the published head changed", tc.name)
		}
	}
	var ie *InconsistentError
	if err := m.Extend(ctx, forkAt(600)); !errors.As(err, &ie) || !bytes.Equal(ie.Held, old.Head) || ie.OfferedTree.N != 600 {
		t.Errorf("fork: %v does not carry both heads", err)
	}
	if err := m.Extend(ctx, good); err != nil {
		t.Fatal(err)
	}
	sameAsOrigin(t, m, origin, all)
}

func isUnverified(err error) bool { return errors.Is(err, ErrUnverified) }

func isFork(err error) bool {
	var ie *InconsistentError
	return errors.As(err, &ie) && !ie.Rollback()
}

func isRollback(err error) bool {
	var ie *InconsistentError
	return errors.As(err, &ie) && ie.Rollback()
}

// FuzzExtend offers a mirror an extension whose head, level-0 tile and
// record the fuzzer chooses. Nothing unverified may be stored: Extend
// refuses, or what the mirror then holds is exactly the origin's.
func FuzzExtend(f *testing.F) {
	ctx := context.Background()
	k := testKey(f, "sum.example.com")
	origin := openMem(f, NewMemStore(), k)
	defer origin.Close()
	growOrigin(f, origin, 0, 256)
	base := NewMemStore()
	m := openMirror(f, base, k.VerifierKey(), VerifyTail)
	if err := m.Extend(ctx, extensionFrom(f, origin, 0, func(int64) bool { return false })); err != nil {
		f.Fatal(err)
	}
	m.Close()
	growOrigin(f, origin, 1000, 44)
	good := extensionFrom(f, origin, 256, func(id int64) bool { return id == 280 })
	leaf := tlog.Tile{H: 8, L: 0, N: 1, W: 44}
	if good.Tiles[leaf] == nil {
		f.Fatalf("no tile %s in the extension", leaf.Path())
	}
	check := openMirror(f, base.Clone(), k.VerifierKey(), VerifyTail)
	if err := check.Extend(ctx, good); err != nil { // the seed passes
		f.Fatal(err)
	}
	check.Close()
	f.Add(good.Head, good.Tiles[leaf], good.Records[280], int64(280))
	f.Add(good.Head, good.Tiles[leaf], good.Records[280], int64(281))
	f.Add([]byte("go.sum database tree\n300\nAAAA\n\n— sum.example.com AAAA\n"), good.Tiles[leaf], []byte("x"), int64(0))
	f.Fuzz(func(t *testing.T, head, tile, rec []byte, id int64) {
		m := openMirror(t, base.Clone(), k.VerifierKey(), VerifyTail)
		defer m.Close()
		ext := Extension{Head: head, Tiles: maps.Clone(good.Tiles), Records: map[int64][]byte{id: rec}}
		ext.Tiles[leaf] = tile
		if err := m.Extend(ctx, ext); err != nil {
			return
		}
		if got, _ := m.Signed(ctx); !bytes.Equal(got, good.Head) {
			t.Fatalf("stored a head the origin did not publish:\n%s", got)
		}
		want, _ := origin.ReadRecords(ctx, id, 1)
		if got, err := m.ReadRecords(ctx, id, 1); err != nil || !bytes.Equal(got[0], want[0]) {
			t.Fatalf("stored record %d %q, the origin's is %q", id, got, want)
		}
		for t2 := range good.Tiles {
			got, _ := m.ReadTileData(ctx, t2)
			if !bytes.Equal(got, good.Tiles[t2]) {
				t.Fatalf("stored tile %s differs from the origin's", t2.Path())
			}
		}
	})
}

// TestInExtension holds inExtension to the list tlog.NewTiles makes.
func TestInExtension(t *testing.T) {
	for _, c := range [][2]int64{{0, 1}, {0, 256}, {1, 257}, {255, 256}, {256, 65536}, {1000, 70000}, {65535, 65537}, {70000, 70000}} {
		held, target := c[0], c[1]
		want := map[tlog.Tile]bool{}
		for _, tile := range tlog.NewTiles(tileHeight, held, target) {
			want[tile] = true
		}
		for l := range 4 {
			for n := range int64(300) {
				for _, w := range []int{1, 2, 255, 256, int(target % 256), int(held % 256), int((target >> 8) % 256)} {
					for _, h := range []int{tileHeight, 4} {
						tile := tlog.Tile{H: h, L: l, N: n, W: w}
						if got := inExtension(tile, held, target); got != want[tile] {
							t.Fatalf("inExtension(%v, %d, %d) = %v, want %v", tile, held, target, got, want[tile])
						}
					}
				}
			}
		}
	}
}

// TestMirrorLargeRecord extends a mirror with an origin's record larger
// than a primary's gosum.MaxRecordSize (a 1,217-byte module path: x/mod
// and the go command have no limit): it hashes to its leaf, so it is the
// origin's data, stored, indexed and served back byte for byte. Only a
// record beyond MaxMirroredRecord is refused, and not as unverified data.
func TestMirrorLargeRecord(t *testing.T) {
	ctx := context.Background()
	skey, vkey, err := GenerateKey("sum.example.com")
	if err != nil {
		t.Fatal(err)
	}
	long := "example.com/" + strings.Repeat("a", 1205)
	huge := "example.com/" + strings.Repeat("b", MaxMirroredRecord)
	origin := sumdb.NewTestServer(skey, func(path, vers string) ([]byte, error) {
		return []byte(fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, vers, fakeHash(path), path, vers, fakeHash(path+"/go.mod"))), nil
	})
	lookup := func(path string) int64 {
		t.Helper()
		id, err := origin.Lookup(ctx, module.Version{Path: path, Version: "v1.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for i := range 300 {
		lookup(fmt.Sprintf("example.com/mod%d", i))
	}
	big := lookup(long)
	extension := func(held int64) Extension {
		t.Helper()
		head, err := origin.Signed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tree := headTree(t, head)
		ext := Extension{Head: head, Tiles: map[tlog.Tile][]byte{}, Records: map[int64][]byte{}}
		for _, tile := range tlog.NewTiles(tileHeight, held, tree.N) {
			if ext.Tiles[tile], err = origin.ReadTileData(ctx, tile); err != nil {
				t.Fatal(err)
			}
		}
		texts, err := origin.ReadRecords(ctx, held, tree.N-held)
		if err != nil {
			t.Fatal(err)
		}
		for i, text := range texts {
			ext.Records[held+int64(i)] = text
		}
		return ext
	}
	s := NewMemStore()
	m := openMirror(t, s, vkey, VerifyFull)
	defer m.Close()
	if err := m.Extend(ctx, extension(0)); err != nil {
		t.Fatalf("Extend with a large record: %v", err)
	}
	want, _ := origin.ReadRecords(ctx, big, 1)
	if len(want[0]) <= gosum.MaxRecordSize {
		t.Fatalf("the test's record is %d bytes, no more than gosum.MaxRecordSize", len(want[0]))
	}
	if got, err := m.ReadRecords(ctx, big, 1); err != nil || !bytes.Equal(got[0], want[0]) {
		t.Errorf("record %d: %v, or differs from the origin's", big, err)
	}
	if id, err := m.Lookup(ctx, module.Version{Path: long, Version: "v1.0.0"}); err != nil || id != big {
		t.Errorf("lookup of the long path = %d, %v; want %d", id, err, big)
	}
	tile := tlog.TileForIndex(tileHeight, tlog.StoredHashIndex(0, big))
	if got, err := m.ReadTileData(ctx, tile); err != nil {
		t.Error(err)
	} else if want, _ := origin.ReadTileData(ctx, tile); !bytes.Equal(got, want) {
		t.Errorf("tile %s differs from the origin's", tile.Path())
	}
	m.Close()
	m = openMirror(t, s, vkey, VerifyFull) // full verification on open accepts it too
	defer m.Close()

	held := lookup("example.com/after") // the mirror holds the records before it
	lookup(huge)
	before := s.Commits()
	err = m.Extend(ctx, extension(held))
	if err == nil || errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "more than the 1048576 bytes a mirror stores") {
		t.Errorf("Extend with a record over MaxMirroredRecord = %v; want a refusal naming the size, not ErrUnverified", err)
	}
	if s.Commits() != before {
		t.Error("refused, but stored")
	}
}

// TestMirrorFollowsOriginKeys: once the origin rotates its key and the
// mirror is opened with the new verifier key, the mirror's store lists the
// keys it verifies with, so that what checks a store by those (a backup,
// CheckStore) accepts heads signed by the new key alone.
func TestMirrorFollowsOriginKeys(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := testKey(t, "sum.example.com"), testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), oldKey)
	defer origin.Close()
	ms := NewMemStore()
	m := openMirror(t, ms, oldKey.VerifierKey(), VerifyFull)
	growOrigin(t, origin, 0, 3)
	if err := m.Extend(ctx, extensionFrom(t, origin, 0, func(int64) bool { return true })); err != nil {
		t.Fatal(err)
	}
	m.Close()

	if err := origin.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	if err := origin.RemoveKey(ctx, oldKey.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	growOrigin(t, origin, 3, 5)
	vkeys := []string{oldKey.VerifierKey(), newKey.VerifierKey()}
	m, err := OpenStore(ms, Options{VerifierKeys: vkeys, Verify: VerifyFull, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Extend(ctx, extensionFrom(t, origin, 3, func(int64) bool { return true })); err != nil {
		t.Fatal(err)
	}
	st, err := ms.Load(ctx)
	if err != nil || !slices.Equal(st.Meta.VKeys, vkeys) {
		t.Fatalf("the store lists keys %q (%v), want %q", st.Meta.VKeys, err, vkeys)
	}
	if _, tree, err := CheckStore(ctx, ms, nil); err != nil || tree.N != 8 {
		t.Fatalf("CheckStore with the keys the store lists: tree %d, %v; want 8, nil", tree.N, err)
	}
}
