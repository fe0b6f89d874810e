package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"sync"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const testName = "sum.example.test"

// fakeOps is a real, tiny checksum database in memory: all records and
// their stored hashes are computed up front, and publish(n) makes the first
// n of them visible with a freshly signed tree head, as a growing log would.
type fakeOps struct {
	records [][]byte
	mods    []module.Version
	hashes  []tlog.Hash // stored hashes of all records
	signer  note.Signer
	errs    map[module.Version]error // Lookup errors to inject

	mu     sync.Mutex // guards the fields below
	size   int64
	signed []byte
}

var _ sumdb.ServerOps = (*fakeOps)(nil)

// newFakeOps builds a database of n records, publishes all of them, and
// returns it with the verifier key clients need.
func newFakeOps(t testing.TB, n int) (*fakeOps, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testName)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeOps{signer: signer, errs: map[module.Version]error{}}
	for i := range n {
		f.add(t, testModule(i))
	}
	f.publish(t, int64(n))
	return f, vkey
}

// testModule returns the i'th module of the fake database; a few exercise
// case escaping, +incompatible, major version suffixes and pseudo-versions.
func testModule(i int) module.Version {
	switch i {
	case 1:
		return module.Version{Path: "example.com/Upper/Case", Version: "v1.0.0-RC.1"}
	case 2:
		return module.Version{Path: "example.com/old", Version: "v2.0.0+incompatible"}
	case 3:
		return module.Version{Path: "example.com/new/v3", Version: "v3.1.0"}
	case 4:
		return module.Version{Path: "example.com/pseudo", Version: "v0.0.0-20240102030405-abcdefabcdef"}
	}
	return module.Version{Path: fmt.Sprintf("example.com/m%d", i), Version: fmt.Sprintf("v1.%d.0", i)}
}

// add appends a record for m with made-up (but well-formed) hashes.
func (f *fakeOps) add(t testing.TB, m module.Version) {
	t.Helper()
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return "h1:" + base64.StdEncoding.EncodeToString(h[:])
	}
	rec := fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod %s\n",
		m.Path, m.Version, sum(m.String()), m.Path, m.Version, sum(m.String()+"/go.mod"))
	hashes, err := tlog.StoredHashes(int64(len(f.records)), rec, hashReader(f.hashes))
	if err != nil {
		t.Fatal(err)
	}
	f.records = append(f.records, rec)
	f.mods = append(f.mods, m)
	f.hashes = append(f.hashes, hashes...)
}

// publish makes the first n records visible and signs the tree of size n.
func (f *fakeOps) publish(t testing.TB, n int64) {
	t.Helper()
	h, err := tlog.TreeHash(n, hashReader(f.hashes))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: n, Hash: h}))}, f.signer)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.size, f.signed = n, signed
}

func (f *fakeOps) visible() (int64, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size, f.signed
}

func (f *fakeOps) Signed(ctx context.Context) ([]byte, error) {
	_, signed := f.visible()
	return signed, nil
}

func (f *fakeOps) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	size, _ := f.visible()
	if id < 0 || n < 0 || id > size-n {
		return nil, fmt.Errorf("records %d+%d beyond tree of size %d: %w", id, n, size, fs.ErrNotExist)
	}
	return f.records[id : id+n], nil
}

func (f *fakeOps) Lookup(ctx context.Context, m module.Version) (int64, error) {
	if err := f.errs[m]; err != nil {
		return 0, err
	}
	size, _ := f.visible()
	for id := range size {
		if f.mods[id] == m {
			return id, nil
		}
	}
	return 0, fmt.Errorf("lookup %v: %w", m, fs.ErrNotExist)
}

func (f *fakeOps) ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error) {
	size, _ := f.visible()
	return tlog.ReadTileData(t, hashReader(f.hashes[:tlog.StoredHashCount(size)]))
}

// hashReader serves stored hashes from memory; an index past the end is
// fs.ErrNotExist, as the ops contract requires for tiles beyond the tree.
type hashReader []tlog.Hash

func (h hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(h)) {
			return nil, fmt.Errorf("stored hash %d: %w", x, fs.ErrNotExist)
		}
		out[i] = h[x]
	}
	return out, nil
}
