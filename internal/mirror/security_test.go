package mirror

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestProveExtends: a tree extends its prefixes, itself and the empty
// tree; not a tree of other records, nor another tree of its size; and a
// proof that cannot be read is an error, not a fork.
func TestProveExtends(t *testing.T) {
	ctx := context.Background()
	skey, _, err := itlog.GenerateKey(testName)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := itlog.ParseKey(skey)
	trees := func(l *itlog.Log, from int) (small, big tlog.Tree) {
		addRecords(t, l, from, 7)
		small, _ = l.Tree(ctx)
		addRecords(t, l, from+7, 13)
		big, _ = l.Tree(ctx)
		return small, big
	}
	a, b := openPrimary(t, key), openPrimary(t, key)
	small, big := trees(a, 0)
	other, otherBig := trees(b, 1000)
	unreadable := tlog.HashReaderFunc(func([]int64) ([]tlog.Hash, error) { return nil, errors.New("unreadable") })

	for _, tc := range []struct {
		name       string
		big, small tlog.Tree
		hashes     tlog.HashReader
		fork       bool // a *forkError
		proof      bool // ... from a failed consistency proof
		fails      bool // any other error
	}{
		{"prefix", big, small, a.HashReader(), false, false, false},
		{"itself", big, big, a.HashReader(), false, false, false},
		{"empty", big, tlog.Tree{}, a.HashReader(), false, false, false},
		{"other history", big, other, a.HashReader(), true, true, false},
		{"other history, its hashes", otherBig, small, b.HashReader(), true, true, false},
		{"same size", big, otherBig, a.HashReader(), true, false, false},
		{"same size, small", small, other, a.HashReader(), true, false, false},
		{"unreadable", big, small, unreadable, false, false, true},
	} {
		err := proveExtends(tc.big, tc.small, tc.hashes)
		var fork *forkError
		isFork := errors.As(err, &fork)
		switch {
		case isFork != tc.fork || isFork && (fork.proof != nil) != tc.proof:
			t.Errorf("%s: %v (fork %v), want fork %v (from a proof %v)", tc.name, err, isFork, tc.fork, tc.proof)
		case !isFork && (err != nil) != tc.fails:
			t.Errorf("%s: %v, want an error %v", tc.name, err, tc.fails)
		}
	}
}
