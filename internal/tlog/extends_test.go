package tlog

import (
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestProveExtends: a tree extends its prefixes, itself and the empty
// tree; not a tree of other records, nor another tree of its size, nor a
// larger tree; and a proof that cannot be read is the reader's error, not
// a fork.
func TestProveExtends(t *testing.T) {
	trees := func(from int) (r *reference, small, big tlog.Tree) {
		r = &reference{}
		tree := func() tlog.Tree {
			h, err := tlog.TreeHash(r.n, r)
			if err != nil {
				t.Fatal(err)
			}
			return tlog.Tree{N: r.n, Hash: h}
		}
		for i := from; i < from+20; i++ {
			r.add(t, record(i, 1).Text())
			if i == from+6 {
				small = tree()
			}
		}
		return r, small, tree()
	}
	a, small, big := trees(0)
	b, other, otherBig := trees(1000)
	failed := errors.New("unreadable")
	unreadable := tlog.HashReaderFunc(func([]int64) ([]tlog.Hash, error) { return nil, &readError{failed} })

	for _, tc := range []struct {
		name       string
		big, small tlog.Tree
		hashes     tlog.HashReader
		fork       bool // a *ForkError
		proof      bool // ... from a failed consistency proof
		fails      bool // any other error
	}{
		{"prefix", big, small, a, false, false, false},
		{"itself", big, big, a, false, false, false},
		{"empty", big, emptyTree(), a, false, false, false},
		{"empty, no hash", big, tlog.Tree{}, a, false, false, false},
		{"empty itself", emptyTree(), emptyTree(), a, false, false, false},
		{"other history", big, other, a, true, true, false},
		{"other history, its hashes", otherBig, small, b, true, true, false},
		{"same size", big, otherBig, a, true, false, false},
		{"same size, small", small, other, a, true, false, false},
		{"two empty trees", emptyTree(), tlog.Tree{}, a, false, false, false},
		{"smaller", small, big, a, true, false, false},
		{"unreadable", big, small, unreadable, false, false, true},
	} {
		err := ProveExtends(tc.big, tc.small, tc.hashes)
		var fork *ForkError
		isFork := errors.As(err, &fork)
		switch {
		case isFork != tc.fork || isFork && (fork.Proof != nil) != tc.proof:
			t.Errorf("%s: %v (fork %v), want fork %v (from a proof %v)", tc.name, err, isFork, tc.fork, tc.proof)
		case !isFork && (err != nil) != tc.fails:
			t.Errorf("%s: %v, want an error %v", tc.name, err, tc.fails)
		case isFork && (fork.Big != tc.big || fork.Small != tc.small):
			t.Errorf("%s: the fork names trees %d and %d, want %d and %d", tc.name, fork.Big.N, fork.Small.N, tc.big.N, tc.small.N)
		}
	}

	// The sequencer retries on a *readError and stops on anything else: a
	// reader's failure must reach it as it was.
	var re *readError
	if err := ProveExtends(big, small, unreadable); !errors.As(err, &re) || !errors.Is(err, failed) {
		t.Errorf("an unreadable proof: %v, want the reader's *readError", err)
	}
}
