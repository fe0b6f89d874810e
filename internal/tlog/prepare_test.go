package tlog

import (
	"context"
	"slices"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"
)

// dupOrigin is an origin computed with x/mod alone that logged some module
// versions more than once, as no sumd does but a misbehaving origin may: a
// mirror indexes each under its smallest id.
type dupOrigin struct {
	ref   reference
	texts [][]byte
	head  []byte
	tree  tlog.Tree
}

func newDupOrigin(t *testing.T, k *Key, n int, dupOf func(id int) int) *dupOrigin {
	o := &dupOrigin{}
	for id := range n {
		text := record(id, 1).Text()
		if d := dupOf(id); d >= 0 {
			text = o.texts[d]
		}
		o.texts = append(o.texts, text)
		o.ref.add(t, text)
	}
	root, err := tlog.TreeHash(o.ref.n, &o.ref)
	if err != nil {
		t.Fatal(err)
	}
	o.tree = tlog.Tree{N: o.ref.n, Hash: root}
	if o.head, err = (keySet{k}).signTree(o.tree); err != nil {
		t.Fatal(err)
	}
	return o
}

// parts returns the staging of the whole tree from empty: the skeleton,
// then level-0 tiles per tile, each with its records.
func (o *dupOrigin) parts(t *testing.T) []Extension {
	read := func(tiles []tlog.Tile) Extension {
		ext := Extension{Head: o.head, Tiles: map[tlog.Tile][]byte{}, Records: map[int64][]byte{}}
		for _, tile := range tiles {
			data, err := tlog.ReadTileData(tile, &o.ref)
			if err != nil {
				t.Fatal(err)
			}
			ext.Tiles[tile] = data
			for id := tile.N << 8; tile.L == 0 && id < tile.N<<8+int64(tile.W); id++ {
				ext.Records[id] = o.texts[id]
			}
		}
		return ext
	}
	skeleton, leaves := StagingPlan(0, o.tree.N)
	parts := []Extension{read(skeleton)}
	for _, leaf := range leaves {
		parts = append(parts, read([]tlog.Tile{leaf}))
	}
	return parts
}

// TestPrepareStage stages, with verifications prepared ahead of the
// commits before them (as a follower does), an origin that logged module
// versions again in later tiles: prepared before the skeleton is staged
// (it cannot verify then), one and several commits ahead (committed as
// prepared, with the keys the commits in between indexed), and more than
// maxPrepared commits ahead (verified again). Each version is indexed
// under its first id, and a tampered part prepared ahead is still refused.
func TestPrepareStage(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	const n = 12 * 256
	// In each tile i ≥ 2, record 256i+7 repeats record 256(i-1)+8 of the
	// tile before (a version first logged there), and record 256i+9
	// repeats record 9, in the skeleton; record 2571, in tile 10, repeats
	// record 780, in tile 3, more than maxPrepared commits before.
	o := newDupOrigin(t, k, n, func(id int) int {
		switch {
		case id == 10*256+11:
			return 3*256 + 12
		case id >= 512 && id%256 == 7:
			return id - 256 + 1
		case id >= 512 && id%256 == 9:
			return 9
		}
		return -1
	})
	parts := o.parts(t)
	if len(parts) != 1+10 { // the first and last tiles are in the skeleton
		t.Fatalf("%d parts, want 11", len(parts))
	}
	s := NewMemStore()
	m := openMirror(t, s, k.VerifierKey(), VerifyFull)
	defer m.Close()

	early := m.PrepareStage(ctx, parts[1]) // its parents are not staged yet
	if early.prep == nil || early.prep.err == nil {
		t.Fatalf("a leaf prepared before its parents: %+v, want a failed verification", early.prep)
	}
	if err := m.Stage(ctx, parts[0]); err != nil {
		t.Fatal(err)
	}
	// Tampered, prepared while nothing changes: refused all the same.
	bad := cloneExtension(parts[2])
	bad.Records[2*256+100] = record(9999, 9).Text()
	before := s.Commits()
	if err := m.Stage(ctx, m.PrepareStage(ctx, bad)); !isUnverified(err) || s.Commits() != before {
		t.Fatalf("Stage of a tampered part, prepared = %v (commits %d → %d), want it refused", err, before, s.Commits())
	}

	var prepared []Extension
	for _, p := range parts[2:] {
		prepared = append(prepared, m.PrepareStage(ctx, p))
	}
	if err := m.Stage(ctx, early); err != nil {
		t.Fatal(err)
	}
	for i, p := range prepared {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatalf("Stage of part %d, prepared ahead: %v", i+2, err)
		}
	}
	if err := m.Extend(ctx, Extension{Head: o.head}); err != nil {
		t.Fatal(err)
	}
	for id := range n {
		first := slices.IndexFunc(o.texts, func(text []byte) bool { return string(text) == string(o.texts[id]) })
		r := record(id, 1)
		if first != id {
			continue // a repeat: its first is checked
		}
		got, err := m.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version})
		if err != nil || got != int64(id) {
			t.Fatalf("Lookup(%s) = %d, %v; want %d, its first id", r.Key(), got, err, id)
		}
	}
	texts, err := m.ReadRecords(ctx, 0, n)
	if err != nil || !slices.EqualFunc(texts, o.texts, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatalf("ReadRecords after staging: %v, or not the origin's records", err)
	}
}
