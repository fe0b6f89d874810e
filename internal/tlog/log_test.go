package tlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testenv"
)

// testKey returns a fresh signing key for name.
func testKey(t testing.TB, name string) *Key {
	t.Helper()
	skey, _, err := GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t testing.TB, path string, k *Key, mode VerifyMode, more ...*Key) *Log {
	t.Helper()
	l, err := Open(path, Options{Keys: append([]*Key{k}, more...), Create: true, Verify: mode, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fakeHash returns a well-formed h1 hash derived from s.
func fakeHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
}

// record returns a distinct valid record for (module i, version j).
func record(i, j int) gosum.Record {
	path := fmt.Sprintf("example.com/mod%d", i)
	version := fmt.Sprintf("v1.%d.0", j)
	return gosum.Record{Path: path, Version: version, Hash: fakeHash(path + version), GoMod: fakeHash(path + version + "/go.mod")}
}

// reference is an in-memory log computed with x/mod alone.
type reference struct {
	hashes []tlog.Hash // stored hashes, by stored-hash index
	n      int64
}

func (r *reference) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(r.hashes)) {
			return nil, fmt.Errorf("reference: no hash %d", x)
		}
		out[i] = r.hashes[x]
	}
	return out, nil
}

func (r *reference) add(t testing.TB, text []byte) {
	hs, err := tlog.StoredHashes(r.n, text, r)
	if err != nil {
		t.Fatal(err)
	}
	r.hashes = append(r.hashes, hs...)
	r.n++
}

// TestRandomBatches is the property test: after random batches the signed
// root equals tlog.TreeHash over the reference, every inclusion and
// consistency proof verifies, and every tile at every width a client could
// ever have seen is served and equals the reference.
func TestRandomBatches(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	l := openTest(t, filepath.Join(t.TempDir(), "sumd.db"), k, VerifyTail)
	defer l.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	ref := &reference{}
	var trees []tlog.Tree
	next := 0
	for len(trees) < 40 {
		batch := make([]gosum.Record, rng.IntN(40)+1)
		for i := range batch {
			batch[i] = record(next, 0)
			next++
		}
		ids, err := l.Add(ctx, batch...)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range batch {
			if ids[i] != ref.n {
				t.Fatalf("record %s got id %d, want %d", r.Key(), ids[i], ref.n)
			}
			ref.add(t, r.Text())
		}
		tree := checkHead(t, l, ref)
		checkProofs(t, l, tree, trees)
		trees = append(trees, tree)
	}
	checkTiles(t, l, ref, trees)
	checkRecords(t, l, ref.n)
}

// checkHead checks the signed head against the reference.
func checkHead(t *testing.T, l *Log, ref *reference) tlog.Tree {
	t.Helper()
	tree, err := l.Tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, err := tlog.TreeHash(ref.n, ref)
	if err != nil {
		t.Fatal(err)
	}
	if tree.N != ref.n || tree.Hash != want {
		t.Fatalf("signed tree = %d %v, want %d %v", tree.N, tree.Hash, ref.n, want)
	}
	return tree
}

// checkProofs checks inclusion proofs of a sample of records and
// consistency proofs from every earlier tree, computed from the stored tiles.
func checkProofs(t *testing.T, l *Log, tree tlog.Tree, earlier []tlog.Tree) {
	t.Helper()
	r := l.HashReader()
	for id := int64(0); id < tree.N; id += 1 + tree.N/50 {
		p, err := tlog.ProveRecord(tree.N, id, r)
		if err != nil {
			t.Fatal(err)
		}
		text, err := l.ReadRecords(context.Background(), id, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, tree.N, tree.Hash, id, tlog.RecordHash(text[0])); err != nil {
			t.Fatalf("inclusion of record %d in tree %d: %v", id, tree.N, err)
		}
	}
	for _, old := range earlier {
		p, err := tlog.ProveTree(tree.N, old.N, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, tree.N, tree.Hash, old.N, old.Hash); err != nil {
			t.Fatalf("tree %d is not consistent with tree %d: %v", tree.N, old.N, err)
		}
	}
}

// checkTiles checks every tile of every tree ever signed (old partial widths
// included) against tiles computed from the reference, and that a tile
// wider than the tree is not served.
func checkTiles(t *testing.T, l *Log, ref *reference, trees []tlog.Tree) {
	t.Helper()
	ctx := context.Background()
	seen := 0
	for _, tree := range trees {
		for _, tile := range tlog.NewTiles(tileHeight, 0, tree.N) {
			got, err := l.ReadTileData(ctx, tile)
			if err != nil {
				t.Fatalf("tile %s of tree %d: %v", tile.Path(), tree.N, err)
			}
			want, err := tlog.ReadTileData(tile, ref)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("tile %s differs from the reference", tile.Path())
			}
			seen++
		}
	}
	// Every width of every tile of the final tree, whether or not a tree of
	// that size was signed: narrower tiles are prefixes of wider ones.
	for _, tile := range tlog.NewTiles(tileHeight, 0, ref.n) {
		for w := 1; w <= tile.W; w++ {
			tile.W = w
			got, err := l.ReadTileData(ctx, tile)
			want, _ := tlog.ReadTileData(tile, ref)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("tile %s: %v, or differs from the reference", tile.Path(), err)
			}
			seen++
		}
	}
	last := tlog.TileForIndex(tileHeight, tlog.StoredHashIndex(0, ref.n-1))
	if last.W < 1<<tileHeight {
		last.W++
		if _, err := l.ReadTileData(ctx, last); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("tile %s beyond the tree: err = %v, want fs.ErrNotExist", last.Path(), err)
		}
	}
	t.Logf("checked %d tiles over %d trees", seen, len(trees))
}

// checkRecords checks that every record is looked up by its module version.
func checkRecords(t *testing.T, l *Log, n int64) {
	t.Helper()
	ctx := context.Background()
	texts, err := l.ReadRecords(ctx, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	for id, text := range texts {
		r, err := gosum.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version})
		if err != nil || got != int64(id) {
			t.Fatalf("Lookup(%s) = %d, %v; want %d", r.Key(), got, err, id)
		}
	}
	if _, err := l.ReadRecords(ctx, n-1, 2); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadRecords past the end: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := l.Lookup(ctx, module.Version{Path: "example.com/none", Version: "v1.0.0"}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lookup of unknown version: err = %v, want fs.ErrNotExist", err)
	}
}

// TestLargeTree crosses 65536 records so that level-2 tiles exist.
func TestLargeTree(t *testing.T) {
	testenv.SkipShort(t, "70,000 records")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sumd.db")
	k := testKey(t, "sum.example.com")
	l := openTest(t, path, k, VerifyTail)
	ref := &reference{}
	var trees []tlog.Tree
	for b := 0; ref.n < 70000; b++ {
		batch := make([]gosum.Record, 2000+b)
		for i := range batch {
			batch[i] = record(int(ref.n)+i, 1)
		}
		if _, err := l.Add(ctx, batch...); err != nil {
			t.Fatal(err)
		}
		for _, r := range batch {
			ref.add(t, r.Text())
		}
		trees = append(trees, checkHead(t, l, ref))
	}
	checkProofs(t, l, trees[len(trees)-1], trees)
	l.Close()
	l = openTest(t, path, k, VerifyFull)
	defer l.Close()
	tree := checkHead(t, l, ref)
	for _, tile := range tlog.NewTiles(tileHeight, 0, tree.N) {
		if tile.L == 0 && tile.N%64 != 0 {
			continue // level 0 is covered by TestRandomBatches
		}
		got, err := l.ReadTileData(ctx, tile)
		want, _ := tlog.ReadTileData(tile, ref)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("tile %s: %v or differs from the reference", tile.Path(), err)
		}
	}
}

func TestDuplicatesAndConflicts(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, filepath.Join(t.TempDir(), "sumd.db"), testKey(t, "sum.example.com"), VerifyTail)
	defer l.Close()
	a, b := record(1, 0), record(2, 0)
	ids, err := l.Add(ctx, a, b, a)
	if err != nil || fmt.Sprint(ids) != "[0 1 0]" {
		t.Fatalf("Add(a, b, a) = %v, %v; want [0 1 0]", ids, err)
	}
	head, _ := l.Signed(ctx)

	// The same hashes again: the existing id, and no new tree head.
	ids, err = l.Add(ctx, b)
	if err != nil || fmt.Sprint(ids) != "[1]" {
		t.Fatalf("Add(b) again = %v, %v; want [1]", ids, err)
	}

	// Other hashes for a recorded version: refused, showing both; and the
	// new record c in the same call is not recorded either.
	evil := a
	evil.Hash = fakeHash("evil")
	c := record(3, 0)
	_, err = l.Add(ctx, c, evil)
	var conflict *ConflictError
	if !errors.As(err, &conflict) || conflict.ID != 0 {
		t.Fatalf("Add(conflicting) error = %v, want *ConflictError for record 0", err)
	}
	for _, want := range []string{a.Key(), a.Hash, evil.Hash, "record 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("conflict error %q does not mention %q", err, want)
		}
	}
	// Two different hashes within one call.
	c2 := c
	c2.GoMod = fakeHash("other")
	if _, err := l.Add(ctx, c, c2); !errors.As(err, &conflict) || conflict.ID != -1 {
		t.Fatalf("Add(c, c') error = %v, want *ConflictError within the request", err)
	}
	if after, _ := l.Signed(ctx); !bytes.Equal(head, after) {
		t.Errorf("tree head changed after refused additions:\n%s\nthen\n%s", head, after)
	}
	if _, err := l.Lookup(ctx, module.Version{Path: c.Path, Version: c.Version}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("record from a refused call was stored: %v", err)
	}
	// Malformed records are refused before they reach the sequencer.
	bad := a
	bad.Version = "v1.0"
	if _, err := l.Add(ctx, bad); err == nil || !strings.Contains(err.Error(), "not canonical") {
		t.Errorf("Add(malformed) = %v", err)
	}
}

// TestConcurrentAdd runs many appenders at once: every record gets one id,
// every acknowledged record is in the signed tree, and duplicate additions
// racing each other agree on the id.
func TestConcurrentAdd(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, filepath.Join(t.TempDir(), "sumd.db"), testKey(t, "sum.example.com"), VerifyTail)
	defer l.Close()
	const workers, each = 16, 50
	got := make([][]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Workers w and w^1 add the same records, racing.
				ids, err := l.Add(ctx, record(w/2*each+i, 7))
				if err != nil {
					t.Error(err)
					return
				}
				got[w] = append(got[w], ids[0])
			}
		})
	}
	wg.Wait()
	tree, _ := l.Tree(ctx)
	if tree.N != workers/2*each {
		t.Fatalf("tree has %d records, want %d", tree.N, workers/2*each)
	}
	for w := 0; w < workers; w += 2 {
		if fmt.Sprint(got[w]) != fmt.Sprint(got[w+1]) {
			t.Fatalf("racing duplicates got different ids: %v vs %v", got[w], got[w+1])
		}
	}
}

func TestReopenKeepsHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sumd.db")
	k := testKey(t, "sum.example.com")
	l := openTest(t, path, k, VerifyTail)
	ref := &reference{}
	for i := range 300 {
		r := record(i, 2)
		if _, err := l.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
		ref.add(t, r.Text())
	}
	old := checkHead(t, l, ref)
	l.Close()

	l = openTest(t, path, k, VerifyFull)
	defer l.Close()
	if tree := checkHead(t, l, ref); tree != old {
		t.Fatalf("tree changed across reopen: %v then %v", old, tree)
	}
	r := record(1000, 2)
	if _, err := l.Add(ctx, r); err != nil {
		t.Fatal(err)
	}
	ref.add(t, r.Text())
	checkProofs(t, l, checkHead(t, l, ref), []tlog.Tree{old})
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sumd.db")
	k := testKey(t, "sum.example.com")
	if _, err := Open(path, Options{Keys: []*Key{k}, Logger: quietLogger()}); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing database without Create = %v, want fs.ErrNotExist", err)
	}
	nokey := filepath.Join(dir, "nokey.db")
	if _, err := Open(nokey, Options{Create: true, Logger: quietLogger()}); err == nil {
		t.Error("Open without a key succeeded")
	}
	if _, err := os.Stat(nokey); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open without a key created the file: %v", err)
	}
	l := openTest(t, path, k, VerifyTail)
	if _, err := Open(path, Options{Keys: []*Key{k}, Logger: quietLogger()}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v, want ErrLocked", err)
	}
	l.Close()
	for _, tc := range []struct {
		key  *Key
		want string
	}{
		{testKey(t, "sum.example.com"), "is not one of the log's keys"},
		{testKey(t, "other.example.com"), `holds the log "sum.example.com"`},
	} {
		if _, err := Open(path, Options{Keys: []*Key{tc.key}, Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open with another key = %v, want error containing %q", err, tc.want)
		}
	}
}

func TestParseKey(t *testing.T) {
	skey, vkey, err := GenerateKey("corp.example/sumdb")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(skey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if k.VerifierKey() != vkey || k.Name() != "corp.example/sumdb" {
		t.Errorf("ParseKey derived %q (%q), want %q", k.VerifierKey(), k.Name(), vkey)
	}
	head, err := (keySet{k}).signTree(tlog.Tree{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(vkey)
	if _, err := note.Open(head, note.VerifierList(v)); err != nil {
		t.Errorf("head signed by parsed key does not verify with keygen's vkey: %v", err)
	}
	for _, bad := range []string{"", vkey, "PRIVATE+KEY+x+00000000+AAAA"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
		}
	}
}

// TestDuplicatesDoNotCommit: a batch whose records are all present answers
// with their ids without a commit (no fsync, no new transaction).
func TestDuplicatesDoNotCommit(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, filepath.Join(t.TempDir(), "sumd.db"), testKey(t, "sum.example.com"), VerifyTail)
	defer l.Close()
	if _, err := l.Add(ctx, record(0, 0), record(1, 0)); err != nil {
		t.Fatal(err)
	}
	txid := func() (id int) {
		l.store.(*BoltStore).db.View(func(tx *bbolt.Tx) error { id = tx.ID(); return nil })
		return id
	}
	before := txid()
	ids, err := l.Add(ctx, record(1, 0), record(0, 0))
	if err != nil || fmt.Sprint(ids) != "[1 0]" {
		t.Fatalf("Add of present records = %v, %v; want [1 0]", ids, err)
	}
	if after := txid(); after != before {
		t.Errorf("adding present records committed a transaction (txid %d -> %d)", before, after)
	}
	if _, err := l.Add(ctx, record(2, 0)); err != nil || txid() == before {
		t.Errorf("a new record after a no-op batch: %v, txid %d (was %d)", err, txid(), before)
	}
}

// readSpy is a MemStore that remembers the ids it was asked to read.
type readSpy struct {
	*MemStore
	mu  sync.Mutex
	ids []int64
}

func (s *readSpy) ReadRecords(ctx context.Context, ids []int64) ([][]byte, error) {
	s.mu.Lock()
	s.ids = append(s.ids, ids...)
	s.mu.Unlock()
	return s.MemStore.ReadRecords(ctx, ids)
}

// TestReadRecordsOverflow: a range whose end overflows int64 is beyond
// the tree, refused before the store is read.
func TestReadRecordsOverflow(t *testing.T) {
	ctx := context.Background()
	s := &readSpy{MemStore: NewMemStore()}
	l, err := OpenStore(s, Options{Keys: []*Key{testKey(t, "sum.example.com")}, Create: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Add(ctx, record(0, 0), record(1, 0)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 - maxReadRecords + 1} {
		s.ids = nil
		if _, err := l.ReadRecords(ctx, id, maxReadRecords); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadRecords(%d, %d): err = %v, want fs.ErrNotExist", id, maxReadRecords, err)
		}
		if len(s.ids) != 0 {
			t.Errorf("ReadRecords(%d, %d) read %d ids from the store, from %d", id, maxReadRecords, len(s.ids), s.ids[0])
		}
	}
}

// TestOpenFailedAfterCreateRemovesFile: an Open with Create that made the
// file and wrote the new log in it, then failed (a commit that failed but
// persisted), removes the file and the directories it made, as it does
// when the log was not written: the file holds only this open's empty log,
// which no one has read. The next Open with Create starts cleanly.
func TestOpenFailedAfterCreateRemovesFile(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "sum.example.com")
	opts := Options{Keys: []*Key{k}, Create: true, MinFree: -1, Logger: slog.New(slog.DiscardHandler)}
	made := filepath.Join(dir, "new", "dir", "sumd.db")
	s, err := OpenBolt(made, BoltOptions{Create: true, MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	fault := errors.New("injected: the commit failed, but persisted")
	s.afterCreate = func() error { return fault }
	if _, err := openBoltLog(s, made, opts); !errors.Is(err, fault) {
		t.Fatalf("Open whose create failed but persisted = %v, want the fault", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed Open left the file or the directories it made (%v)", err)
	}
	l, err := Open(made, opts)
	if err != nil {
		t.Fatalf("Open after the failed one: %v", err)
	}
	if !l.Created() {
		t.Error("Open after the failed one found a log there")
	}
	l.Close()
}

// TestOpenFailedCreateRemovesFile: an Open with Create that made the
// file and then failed to create the log in it (a MinFree above the free
// space) removes the file and the directories it made; a file that was
// there before, holding no log, is kept, and so is its directory.
func TestOpenFailedCreateRemovesFile(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, "sum.example.com")
	opts := Options{Keys: []*Key{k}, Create: true, MinFree: math.MaxInt64 / 2, Logger: slog.New(slog.DiscardHandler)}
	made := filepath.Join(dir, "new", "dir", "sumd.db")
	if _, err := Open(made, opts); !errors.As(err, new(*LowDiskError)) {
		t.Fatalf("Open with a floor above the free space = %v, want a *LowDiskError", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed Open left the directories it made (%v)", err)
	}
	old := filepath.Join(dir, "old.db")
	s, err := OpenBolt(old, BoltOptions{Create: true}) // a file with no log
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(old, opts); !errors.As(err, new(*LowDiskError)) {
		t.Fatalf("Open with a floor above the free space = %v, want a *LowDiskError", err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Errorf("the failed Open removed a file it did not create: %v", err)
	}
	opts.MinFree = -1
	l, err := Open(made, opts)
	if err != nil {
		t.Fatalf("Open after the failed one: %v", err)
	}
	l.Close()
}

// TestAddNew: AddNew reports the records its call appended, not those the
// log held or a repeat of one in the same call.
func TestAddNew(t *testing.T) {
	ctx := context.Background()
	l := openMem(t, NewMemStore(), testKey(t, "sum.example.com"))
	defer l.Close()
	for _, step := range []struct {
		recs  []gosum.Record
		added []bool
	}{
		{[]gosum.Record{record(0, 0), record(1, 0), record(0, 0)}, []bool{true, true, false}},
		{[]gosum.Record{record(1, 0), record(2, 0)}, []bool{false, true}},
	} {
		_, added, err := l.AddNew(ctx, step.recs...)
		if err != nil || !slices.Equal(added, step.added) {
			t.Fatalf("AddNew of %d records: %v, %v; want %v", len(step.recs), added, err, step.added)
		}
	}
}
