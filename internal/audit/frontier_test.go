package audit

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// refHashes is a tree's every stored hash, built with x/mod alone.
type refHashes []tlog.Hash

func (r refHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x >= int64(len(r)) {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = r[x]
	}
	return out, nil
}

// TestFrontier checks the right edge against x/mod's full tree at every
// size up to 1100 (several level-8 boundaries): the root, the edge read
// back from the full tree, and the encoding.
func TestFrontier(t *testing.T) {
	var ref refHashes
	f := &frontier{}
	for n := range int64(1100) {
		if got, want := f.root(), mustTreeHash(t, n, ref); got != want {
			t.Fatalf("size %d: root %v, want %v", n, got, want)
		}
		seeded, err := seedFrontier(n, ref)
		if err != nil || *seeded != *f {
			t.Fatalf("size %d: seedFrontier = %v, %v; want the appended edge", n, seeded, err)
		}
		back, err := unmarshalFrontier(f.marshal())
		if err != nil || *back != *f {
			t.Fatalf("size %d: encoding round trip = %v, %v", n, back, err)
		}
		h := tlog.RecordHash([]byte(fmt.Sprintf("record %d\n", n)))
		hashes, err := tlog.StoredHashesForRecordHash(n, h, ref)
		if err != nil {
			t.Fatal(err)
		}
		ref = append(ref, hashes...)
		if err := f.append(h); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFrontierLarge checks sizes far beyond what the test can build, with
// random edges: seeding and encoding agree whatever the bits of the size.
func TestFrontierLarge(t *testing.T) {
	for range 200 {
		n := rand.Int64N(1 << 62)
		levels, _ := edgeIndexes(n)
		f := &frontier{size: n}
		for _, l := range levels {
			f.nodes[l][0] = byte(l + 1)
		}
		back, err := unmarshalFrontier(f.marshal())
		if err != nil || *back != *f {
			t.Fatalf("size %d: round trip = %v, %v", n, back, err)
		}
		seeded, err := seedFrontier(n, f)
		if err != nil || *seeded != *f {
			t.Fatalf("size %d: seedFrontier from itself = %v, %v", n, seeded, err)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 7), make([]byte, 9), append(make([]byte, 7), 1)} {
		if _, err := unmarshalFrontier(bad); err == nil {
			t.Errorf("unmarshalFrontier(%x) succeeded", bad)
		}
	}
}

func mustTreeHash(t *testing.T, n int64, r tlog.HashReader) tlog.Hash {
	t.Helper()
	h, err := tlog.TreeHash(n, r)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
