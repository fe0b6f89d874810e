package storetest

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

// A LogOpener opens a log signing with k on the store under test, as one
// more sumd process would: on a store of its own on the same database if
// the store's writers are processes, or on the same store if they share
// it. It creates the log if there is none and verifies it in full
// (tlog.VerifyFull) when it opens it. Writers closes every log it opens.
type LogOpener func(t *testing.T, k *tlog.Key) *tlog.Log

// Writers checks a store that supports several writers: three logs on it,
// as three sumd processes, each add overlapping records from several
// callers. Every module version gets one id whichever log recorded it,
// every log sees the same tree after Refresh, and a log opened afterwards
// verifies the store in full.
func Writers(t *testing.T, open LogOpener) {
	const logs, callers, adds, distinct = 3, 12, 30, 120
	k := NewKey(t)
	var ls []*tlog.Log
	for range logs {
		l := open(t, k)
		t.Cleanup(func() { l.Close() })
		ls = append(ls, l)
	}
	var mu sync.Mutex
	ids := map[string]int64{}
	var wg sync.WaitGroup
	for w := range callers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range adds {
				r := Record(rng.IntN(distinct))
				id, err := addRetrying(ls[w%logs], r)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, ok := ids[r.Key()]; ok && prev != id {
					t.Errorf("%s got ids %d and %d", r.Key(), prev, id)
				}
				ids[r.Key()] = id
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, l := range ls {
		if err := l.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if tree, _ := l.Tree(ctx); tree.N != int64(len(ids)) {
			t.Fatalf("tree %d for %d distinct records", tree.N, len(ids))
		}
	}
	l := open(t, k) // tlog.VerifyFull: one index entry per record
	defer l.Close()
	if tree, _ := l.Tree(ctx); tree.N != int64(len(ids)) {
		t.Fatalf("reopened tree %d, want %d", tree.N, len(ids))
	}
}

// addRetrying adds r through l. A store without tlog.LockingStore lets a
// writer lose the compare-and-swap several times in a row and push back;
// callers retry then (an HTTP client gets 503 and Retry-After), and so does
// this one.
func addRetrying(l *tlog.Log, r gosum.Record) (int64, error) {
	ids, err := l.Add(ctx, r)
	for tries := 0; errors.Is(err, tlog.ErrPushback) && tries < 100; tries++ {
		time.Sleep(time.Millisecond)
		ids, err = l.Add(ctx, r)
	}
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// NewKey returns a new signing key for sum.example.com.
func NewKey(t testing.TB) *tlog.Key {
	t.Helper()
	skey, _, err := tlog.GenerateKey("sum.example.com")
	if err != nil {
		t.Fatal(err)
	}
	k, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Record returns a distinct valid record for module i: example.com/m<i>
// at v1.0.0.
func Record(i int) gosum.Record {
	h := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
	}
	path := fmt.Sprintf("example.com/m%d", i)
	return gosum.Record{Path: path, Version: "v1.0.0", Hash: h(path), GoMod: h(path + "/go.mod")}
}
