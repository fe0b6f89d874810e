package sumdbclient

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// signedHead signs a head of a tree of n records (any hash) with skey.
func signedHead(t testing.TB, skey string, n int64) []byte {
	t.Helper()
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: n}))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestOpenTreeSize: a head signed by the right key is still refused when
// its tree is larger than x/mod's tlog can prove (2^62-1), or than the limit
// a reader set; the explanation names the size and the suspicion.
func TestOpenTreeSize(t *testing.T) {
	skey, vkey, err := note.GenerateKey(nil, "size.example")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := ParseVerifiers(vkey)
	if err != nil {
		t.Fatal(err)
	}
	limited := vs.Limit(1000)
	for _, c := range []struct {
		vs   *Verifiers
		n    int64
		fail bool
	}{
		{vs, MaxTreeSize, false},
		{vs, MaxTreeSize + 1, true},
		{vs, 1 << 62, true}, // x/mod's maxpow2(2^62+1) never returns
		{vs, 1<<63 - 1, true},
		{limited, 1000, false},
		{limited, 1001, true},
		{vs.Limit(1<<63 - 1), MaxTreeSize + 1, true}, // never above MaxTreeSize
	} {
		tree, err := c.vs.Open(signedHead(t, skey, c.n))
		var tse *TreeSizeError
		switch {
		case c.fail && !errors.As(err, &tse):
			t.Errorf("Open of a tree of %d: %v, %v; want a *TreeSizeError", c.n, tree, err)
		case c.fail && !strings.Contains(c.vs.Explain("/latest", "-key", err), "broken or compromised origin"):
			t.Errorf("Explain: %s", c.vs.Explain("/latest", "-key", err))
		case !c.fail && (err != nil || tree.N != c.n):
			t.Errorf("Open of a tree of %d: %v, %v", c.n, tree, err)
		}
	}
	if _, err := vs.Open(signedHead(t, skey, 1001)); err != nil {
		t.Errorf("Limit changed the keys it was called on: %v", err)
	}
}

// TestCheckTreeSize: the heads inside answers that x/mod's client verifies
// itself (lookups, /latest) are refused over MaxTreeSize, before it.
func TestCheckTreeSize(t *testing.T) {
	skey, _, err := note.GenerateKey(nil, "size.example")
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(n int64) []byte {
		return append([]byte("7\nexample.com/m v1.0.0 h1:x\n\n"), signedHead(t, skey, n)...)
	}
	for _, c := range []struct {
		data []byte
		ok   bool
	}{
		{signedHead(t, skey, MaxTreeSize), true},
		{signedHead(t, skey, MaxTreeSize+1), false},
		{signedHead(t, skey, 1<<62), false},
		{lookup(1 << 62), false},
		{lookup(12), true},
		{lookup(1<<63 - 1), false},
		// A record whose text holds a line like a small head's.
		{append([]byte("7\nexample.com/m v1.0.0 h1:x\ngo.sum database tree\n1\n\n"), signedHead(t, skey, 1<<63-1)...), false},
		{[]byte("not a head at all"), true}, // x/mod's client refuses it
	} {
		if err := CheckTreeSize(c.data); (err == nil) != c.ok {
			t.Errorf("CheckTreeSize(%.60q) = %v", c.data, err)
		}
	}
}

// TestMaxTreeSizeReturns: x/mod's tlog returns from the maths of a tree of
// MaxTreeSize records, which every head Open accepts may reach. The hash
// reader fails at once, so only the index maths (maxpow2) runs.
func TestMaxTreeSizeReturns(t *testing.T) {
	fail := tlog.HashReaderFunc(func([]int64) ([]tlog.Hash, error) { return nil, errors.New("no hashes") })
	done := make(chan struct{})
	go func() {
		defer close(done)
		tlog.TreeHash(MaxTreeSize, fail)
		tlog.ProveTree(MaxTreeSize, MaxTreeSize-1, fail)
		tlog.ProveRecord(MaxTreeSize, MaxTreeSize-1, fail)
		tlog.TileHashReader(tlog.Tree{N: MaxTreeSize}, noTiles{}).ReadHashes([]int64{0})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("x/mod's tlog has not returned from a tree of %d records in 10 s", int64(MaxTreeSize))
	}
}

// noTiles is a tlog.TileReader that reads no tile.
type noTiles struct{}

func (noTiles) Height() int                             { return TileHeight }
func (noTiles) ReadTiles([]tlog.Tile) ([][]byte, error) { return nil, errors.New("no tiles") }
func (noTiles) SaveTiles([]tlog.Tile, [][]byte)         {}
