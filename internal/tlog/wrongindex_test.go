package tlog

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// TestWrongIndexEntry: an index entry naming another module's record (a
// damaged or edited database) was not caught by VerifyFull, which checked
// each record's entry but not each entry's record, and made Add refuse the
// genuine record as a conflict with that other record. VerifyFull now
// refuses it, and Add and Check fail with ErrCorrupt, not a conflict;
// VerifyTail stays cheap and does not look.
func TestWrongIndexEntry(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	s := NewMemStore()
	l := openMem(t, s, k)
	growOrigin(t, l, 0, 300)
	l.Close()
	r := record(999, 3) // not recorded
	s.SetIndex(r.Key(), 3)

	if err := VerifyStore(ctx, s, VerifyFull); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "names record 3") {
		t.Errorf("VerifyStore(VerifyFull) with a wrong index entry = %v, want ErrCorrupt: names record 3", err)
	}
	l, err := OpenStore(s, Options{Keys: []*Key{k}, Logger: quietLogger()}) // VerifyTail
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = l.Add(ctx, r)
	var conflict *ConflictError
	if !errors.Is(err, ErrCorrupt) || errors.As(err, &conflict) {
		t.Errorf("Add of a version the index wrongly names = %v, want ErrCorrupt, not a conflict", err)
	}
	if _, _, err := l.Check(ctx, []gosum.Record{r}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Check of a version the index wrongly names = %v, want ErrCorrupt", err)
	}
	// The rest of the log still takes records.
	if _, err := l.Add(ctx, record(1000, 1)); err != nil {
		t.Errorf("Add of another version: %v", err)
	}
}

// TestWrongIndexEntryMirror: a mirror indexes a version its origin logged
// twice under the first id, whose record holds the same version: that
// passes VerifyFull; an entry naming a record of another version does not.
func TestWrongIndexEntryMirror(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	o := newDupOrigin(t, k, 300, func(id int) int {
		if id == 280 {
			return 5
		}
		return -1
	})
	s := NewMemStore()
	m := openMirror(t, s, k.VerifierKey(), VerifyFull)
	ext := Extension{Head: o.head, Tiles: map[tlog.Tile][]byte{}, Records: map[int64][]byte{}}
	for _, p := range o.parts(t) {
		for tile, data := range p.Tiles {
			ext.Tiles[tile] = data
		}
		for id, text := range p.Records {
			ext.Records[id] = text
		}
	}
	if err := m.Extend(ctx, ext); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if err := VerifyStore(ctx, s, VerifyFull); err != nil {
		t.Fatalf("VerifyStore(VerifyFull) of a mirror holding a version twice: %v", err)
	}
	r := record(7, 1)
	s.SetIndex(r.Key(), 6)
	if err := VerifyStore(ctx, s, VerifyFull); !errors.Is(err, ErrCorrupt) {
		t.Errorf("VerifyStore(VerifyFull) of a mirror with an entry naming another version's record = %v, want ErrCorrupt", err)
	}
}
