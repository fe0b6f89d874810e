package sumdbclient

import (
	"errors"
	"strings"
	"testing"

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
// its tree is larger than x/mod's tlog can prove (2^62), or than the limit
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
