package main

import (
	"log/slog"
	"testing"
	"time"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// sharedMem is a MemStore that says other processes write it too, as a
// PostgreSQL database does.
type sharedMem struct{ *itlog.MemStore }

func (sharedMem) Shared() bool { return true }

// TestAddCountsOwnRecords: on a database another sumd writes, sumd add
// says "recorded" or "already recorded" of its own record, not of whether
// the tree grew: the log adopts the other writer's records while it adds.
func TestAddCountsOwnRecords(t *testing.T) {
	skey, _, err := itlog.GenerateKey(e2eName)
	if err != nil {
		t.Fatal(err)
	}
	key, err := itlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	store := sharedMem{itlog.NewMemStore()}
	open := func() *itlog.Log {
		l, err := itlog.OpenStore(store, itlog.Options{Keys: []*itlog.Key{key}, Create: true, RefreshInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	ours, other := open(), open()
	recs := syntheticRecords(0, 3)
	if _, err := addTo(ours, recs[:1]); err != nil {
		t.Fatal(err)
	}
	addN(t, other, 10, 2) // two versions this process has not seen
	got, err := addTo(ours, recs[:1])
	if err != nil || got.new != 0 || got.ids[0] != 0 {
		t.Errorf("adding a recorded version again = %+v, %v; want 0 new (already recorded), id 0", got, err)
	}
	got, err = addTo(ours, recs[1:2])
	if err != nil || got.new != 1 || got.size != 4 {
		t.Errorf("adding a new version = %+v, %v; want 1 new, tree size 4", got, err)
	}
}
