package tlog

import (
	"context"
	"slices"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
)

// TestCheck finds, without adding anything, the records a log holds, those
// it does not, and every module version it holds with other hashes; a
// record another writer stored beyond the published head counts as new.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	s, k := NewMemStore(), testKey(t, "sum.example.com")
	l := openMem(t, s, k)
	if _, err := l.Add(ctx, record(0, 0), record(1, 0), record(2, 0)); err != nil {
		t.Fatal(err)
	}
	other1, other2 := record(1, 0), record(2, 0)
	other1.Hash, other2.GoMod = fakeHash("evil"), fakeHash("evil")
	recs := []gosum.Record{record(3, 0), other1, record(0, 0), other2, record(4, 0)}
	ids, conflicts, err := l.Check(ctx, recs)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{-1, 1, 0, 2, -1}; !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	if len(conflicts) != len(recs) || conflicts[0] != nil || conflicts[2] != nil || conflicts[4] != nil ||
		conflicts[1] == nil || conflicts[1].ID != 1 || conflicts[1].Proposed != other1 || conflicts[1].Recorded != record(1, 0) ||
		conflicts[3] == nil || conflicts[3].ID != 2 || conflicts[3].Proposed != other2 {
		t.Errorf("conflicts %v, want records 1 and 2 at 1 and 3", conflicts)
	}
	if _, conflicts, err := l.Check(ctx, recs[2:3]); err != nil || conflicts != nil {
		t.Errorf("Check without conflicts = %v, %v; want nil conflicts", conflicts, err)
	}
	if tree, _ := l.Tree(ctx); tree.N != 3 {
		t.Errorf("Check changed the tree: size %d", tree.N)
	}
	// Another writer of the store records 3: not in this log's published
	// tree yet, so new to Check (Add would catch up and find it).
	b := openMem(t, s, k)
	if _, err := b.Add(ctx, record(3, 0)); err != nil {
		t.Fatal(err)
	}
	if ids, _, err := l.Check(ctx, recs[:1]); err != nil || ids[0] != -1 {
		t.Errorf("Check of a record beyond the published head = %v, %v; want -1", ids, err)
	}
	if _, _, err := l.Check(ctx, make([]gosum.Record, MaxAddRecords+1)); err == nil {
		t.Error("Check of more than MaxAddRecords records succeeded")
	}
}
