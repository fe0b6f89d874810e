package tlog

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
)

// TestReadRecordsByID: scattered ids are read in order, each checked
// against its leaf hash; one beyond the tree is not found.
func TestReadRecordsByID(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "example.com")
	s := NewMemStore()
	l := openMem(t, s, k)
	batch := make([]gosum.Record, 600)
	for i := range batch {
		batch[i] = record(i, 0)
	}
	if _, err := l.Add(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	ids := []int64{599, 3, 300, 3}
	texts, err := l.ReadRecordsByID(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if !bytes.Equal(texts[i], batch[id].Text()) {
			t.Errorf("record %d = %q, want %q", id, texts[i], batch[id].Text())
		}
	}
	for _, ids := range [][]int64{{3, 600}, {-1}} {
		if _, err := l.ReadRecordsByID(ctx, ids); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadRecordsByID(%v) = %v, want fs.ErrNotExist", ids, err)
		}
	}
	tampered := batch[300]
	tampered.Hash = fakeHash("tampered")
	s.SetRecord(300, tampered.Text())
	var ce *CorruptRecordError
	if _, err := l.ReadRecordsByID(ctx, []int64{5, 300}); !errors.As(err, &ce) || ce.ID != 300 {
		t.Errorf("ReadRecordsByID of a tampered record = %v, want a *CorruptRecordError for record 300", err)
	}
}
