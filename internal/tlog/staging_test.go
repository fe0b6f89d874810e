package tlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// stagingParts reads from origin the staging of the extension from held
// to origin's head: the skeleton, then chunks of at most per level-0 tiles
// with the records of their range that want selects.
func stagingParts(t testing.TB, origin *Log, held int64, per int, want func(int64) bool) (head []byte, parts []Extension) {
	t.Helper()
	ctx := context.Background()
	head, _ = origin.Signed(ctx)
	tree := headTree(t, head)
	read := func(tiles []tlog.Tile) Extension {
		ext := Extension{Head: head, Tiles: map[tlog.Tile][]byte{}, Records: map[int64][]byte{}}
		for _, tile := range tiles {
			data, err := origin.ReadTileData(ctx, tile)
			if err != nil {
				t.Fatal(err)
			}
			ext.Tiles[tile] = data
			if tile.L != 0 {
				continue
			}
			for id := max(tile.N<<8, held); id < tile.N<<8+int64(tile.W); id++ {
				if want(id) {
					text, _ := origin.ReadRecords(ctx, id, 1)
					ext.Records[id] = text[0]
				}
			}
		}
		return ext
	}
	skeleton, leaves := StagingPlan(held, tree.N)
	parts = append(parts, read(skeleton))
	for chunk := range slices.Chunk(leaves, per) {
		parts = append(parts, read(chunk))
	}
	return head, parts
}

// TestStage stages a mirror from empty to 3,000 records in chunks, with a
// reopen in between, checks that nothing staged is served before Extend
// publishes the head, then stages a second extension from there.
func TestStage(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 3000)
	path := filepath.Join(t.TempDir(), "mirror.db")
	m := openMirror(t, mustCreateBolt(t, path), k.VerifierKey(), VerifyFull)
	all := func(int64) bool { return true }

	head, parts := stagingParts(t, origin, 0, 3, all)
	if st, err := m.Staged(ctx); st != nil || err != nil {
		t.Fatalf("Staged before staging = %+v, %v", st, err)
	}
	for i, p := range parts[:3] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatalf("Stage part %d: %v", i, err)
		}
	}
	st, err := m.Staged(ctx)
	if err != nil || st == nil || !bytes.Equal(st.Head, head) || st.Size != 7*256 {
		t.Fatalf("Staged after the skeleton and two chunks = %+v, %v; want size %d", st, err, 7*256)
	}
	// Nothing staged is visible.
	if _, err := m.Signed(ctx); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Signed while staging = %v, want no head", err)
	}
	if _, err := m.ReadTileData(ctx, tlog.Tile{H: 8, L: 0, N: 1, W: 256}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a staged tile is served: %v", err)
	}
	if _, err := m.ReadRecords(ctx, 300, 1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a staged record is served: %v", err)
	}
	r, _ := gosum.Parse(parts[1].Records[300])
	if _, err := m.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a staged record is looked up: %v", err)
	}
	// Another head is refused while this one is staged.
	growOrigin(t, origin, 10000, 10)
	other, _ := origin.Signed(ctx)
	var pe *PendingError
	if err := m.Stage(ctx, Extension{Head: other}); !errors.As(err, &pe) || pe.Staged.N != 3000 {
		t.Errorf("Stage of another head = %v, want a PendingError", err)
	}
	if err := m.Extend(ctx, Extension{Head: other}); !errors.As(err, &pe) {
		t.Errorf("Extend to another head = %v, want a PendingError", err)
	}
	// A crash: the staging survives a reopen.
	m.Close()
	m = openMirror(t, mustBolt(t, path), k.VerifierKey(), VerifyFull)
	defer func() { m.Close() }()
	if st, err := m.Staged(ctx); err != nil || st == nil || st.Size != 7*256 {
		t.Fatalf("Staged after a reopen = %+v, %v", st, err)
	}
	for _, p := range parts[3:] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := m.Staged(ctx); st.Size != 3000 {
		t.Fatalf("Staged after every part: size %d, want 3000", st.Size)
	}
	if err := m.Extend(ctx, Extension{Head: head}); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Staged(ctx); st != nil || err != nil {
		t.Fatalf("Staged after Extend = %+v, %v", st, err)
	}
	at3000 := NewMemStore()
	ref := openMem(t, at3000, k)
	growOrigin(t, ref, 0, 3000)
	sameAsOrigin(t, m, ref, all)
	ref.Close()

	// A second staging, partial this time, from 3,000 on.
	growOrigin(t, origin, 20000, 1000)
	some := func(id int64) bool { return id < 3000 || id%3 == 0 }
	head, parts = stagingParts(t, origin, 3000, 1, some)
	for _, p := range parts {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Extend(ctx, Extension{Head: head}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m = openMirror(t, mustBolt(t, path), k.VerifierKey(), VerifyFull)
	sameAsOrigin(t, m, origin, some)
}

// TestStageRefuses offers a staging mirror bad parts: a tampered tile, a
// leaf before its parent is staged, a tampered record, a fork of the held
// head. Each is refused and stores nothing.
func TestStageRefuses(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 300)
	s := NewMemStore()
	m := openMirror(t, s, k.VerifierKey(), VerifyTail)
	defer m.Close()
	all := func(int64) bool { return true }
	if err := m.Extend(ctx, extensionFrom(t, origin, 0, all)); err != nil {
		t.Fatal(err)
	}
	growOrigin(t, origin, 1000, 2000)
	_, parts := stagingParts(t, origin, 300, 2, all)
	fork := openMem(t, NewMemStore(), k)
	defer fork.Close()
	growOrigin(t, fork, 0, 290)
	growOrigin(t, fork, 5000, 2010)
	_, forked := stagingParts(t, fork, 300, 2, all)

	leaf := parts[1]
	tampered := cloneExtension(leaf)
	for tile := range tampered.Tiles {
		tampered.Tiles[tile][7] ^= 1
		break
	}
	badRecord := cloneExtension(leaf)
	for id := range badRecord.Records {
		badRecord.Records[id] = record(9, 9).Text()
		break
	}
	for _, tc := range []struct {
		name string
		ext  Extension
		want func(error) bool
	}{
		{"leaf before its parent", leaf, isUnverified},
		{"fork", forked[0], isFork},
	} {
		before := s.Commits()
		if err := m.Stage(ctx, tc.ext); !tc.want(err) {
			t.Errorf("%s: Stage = %v", tc.name, err)
		}
		if s.Commits() != before {
			t.Errorf("%s: refused, but stored", tc.name)
		}
	}
	if err := m.Stage(ctx, parts[0]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ext  Extension
		want func(error) bool
	}{
		{"tampered tile", tampered, isUnverified},
		{"tampered record", badRecord, isUnverified},
		{"extend before every leaf is staged", Extension{Head: leaf.Head}, isUnverified},
	} {
		before := s.Commits()
		err := m.Stage(ctx, tc.ext)
		if tc.ext.Tiles == nil {
			err = m.Extend(ctx, tc.ext)
		}
		if !tc.want(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if s.Commits() != before {
			t.Errorf("%s: refused, but stored", tc.name)
		}
	}
	for _, p := range parts[1:] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Extend(ctx, Extension{Head: leaf.Head}); err != nil {
		t.Fatal(err)
	}
	sameAsOrigin(t, m, origin, all)
}

func cloneExtension(e Extension) Extension {
	c := Extension{Head: e.Head, Tiles: map[tlog.Tile][]byte{}, Records: map[int64][]byte{}}
	for t, d := range e.Tiles {
		c.Tiles[t] = bytes.Clone(d)
	}
	for id, r := range e.Records {
		c.Records[id] = bytes.Clone(r)
	}
	return c
}

func mustCreateBolt(t *testing.T, path string) *BoltStore {
	s, err := OpenBolt(path, BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReplaceStaging replaces a staging part way with a larger head whose
// tree contains it, staged from the held tree: the staged data of the
// first is overwritten or verified again, and the mirror ends as the
// origin. The replaced head is never forgotten without the larger one in
// its place.
func TestReplaceStaging(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 3000)
	path := filepath.Join(t.TempDir(), "mirror.db")
	m := openMirror(t, mustCreateBolt(t, path), k.VerifierKey(), VerifyFull)
	all := func(int64) bool { return true }
	head, parts := stagingParts(t, origin, 0, 3, all)
	for _, p := range parts[:3] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	growOrigin(t, origin, 10000, 1000)
	other, others := stagingParts(t, origin, 0, 4, all)
	if err := m.ReplaceStaging(ctx, other, other); err == nil {
		t.Fatal("ReplaceStaging of a head not staged succeeded")
	}
	if st, err := m.Staged(ctx); err != nil || st == nil || !bytes.Equal(st.Head, head) {
		t.Fatalf("after replacing a head not staged: staged %+v, %v; want the staging kept", st, err)
	}
	if err := m.ReplaceStaging(ctx, head, head); err == nil {
		t.Fatal("ReplaceStaging replaced a staged head with itself")
	}
	if err := m.ReplaceStaging(ctx, head, other); err != nil {
		t.Fatal(err)
	}
	m.Close()
	m = openMirror(t, mustBolt(t, path), k.VerifierKey(), VerifyFull)
	defer func() { m.Close() }()
	if st, err := m.Staged(ctx); err != nil || st == nil || !bytes.Equal(st.Head, other) || st.Size != 0 {
		t.Fatalf("after ReplaceStaging and a reopen: staged %+v, %v; want the larger head, staged up to 0", st, err)
	}
	if m.Published().Tree.N != 0 {
		t.Fatalf("ReplaceStaging published tree %d", m.Published().Tree.N)
	}
	for _, p := range others {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Extend(ctx, Extension{Head: other}); err != nil {
		t.Fatal(err)
	}
	sameAsOrigin(t, m, origin, all)
}

// TestStagedAfterReplaces stages three heads in turn from an empty mirror,
// replacing the first two part way (as an import of a newer bundle does):
// 2,304 records (a multiple of 256) up to 1,024, 3,072 records the skeleton
// only, then 4,000 records the skeleton and tile 1. The dropped stagings'
// last level-0 tiles (8 and 11) are full and lie beyond tiles 4–7 that no
// staging stored; Staged must say 512 (the replaced stagings' tiles 1–3,
// though correct, are not counted: staging them again is harmless), where
// searching the store said 2,304, so that the staging resumed from there
// skipped tiles 4–7 and could never be extended. Resumed from what Staged
// says after a reopen, the staging reaches the origin's head.
func TestStagedAfterReplaces(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	path := filepath.Join(t.TempDir(), "mirror.db")
	m := openMirror(t, mustCreateBolt(t, path), k.VerifierKey(), VerifyFull)
	defer func() { m.Close() }()
	all := func(int64) bool { return true }
	stage := func(parts []Extension) {
		t.Helper()
		for i, p := range parts {
			if err := m.Stage(ctx, p); err != nil {
				t.Fatalf("Stage part %d: %v", i, err)
			}
		}
	}
	staged := func(head []byte, want int64) {
		t.Helper()
		st, err := m.Staged(ctx)
		if err != nil || st == nil || !bytes.Equal(st.Head, head) {
			t.Fatalf("Staged = %+v, %v; want the staging of %q", st, err, head)
		}
		if st.Size != want {
			t.Fatalf("Staged: tree %d staged up to %d; want %d", st.Tree.N, st.Size, want)
		}
	}

	growOrigin(t, origin, 0, 2304)
	h1, parts := stagingParts(t, origin, 0, 1, all)
	stage(parts[:4]) // the skeleton (tiles 0 and 8), tiles 1–3
	staged(h1, 1024)
	growOrigin(t, origin, 10000, 3072-2304)
	h2, parts := stagingParts(t, origin, 0, 1, all)
	if err := m.ReplaceStaging(ctx, h1, h2); err != nil {
		t.Fatal(err)
	}
	staged(h2, 0)
	stage(parts[:1]) // the skeleton (tiles 0 and 11)
	growOrigin(t, origin, 20000, 4000-3072)
	h3, parts := stagingParts(t, origin, 0, 1, all)
	if err := m.ReplaceStaging(ctx, h2, h3); err != nil {
		t.Fatal(err)
	}
	stage(parts[:2]) // the skeleton (tiles 0 and 15), tile 1
	staged(h3, 512)

	m.Close()
	m = openMirror(t, mustBolt(t, path), k.VerifierKey(), VerifyFull)
	staged(h3, 512)
	st, _ := m.Staged(ctx)
	stage(parts[st.Size>>8:]) // parts[i] is tile i
	staged(h3, 4000)
	if err := m.Extend(ctx, Extension{Head: h3}); err != nil {
		t.Fatalf("Extend after resuming where Staged said: %v", err)
	}
	sameAsOrigin(t, m, origin, all)
}

// TestStagedWithoutRecordedSize resumes a staging begun before the staged
// size was recorded (auxStagedSize), as an older sumd left it: Staged says
// the held size, the skeleton and tiles are staged again (recorded from
// then on), and the extension completes.
func TestStagedWithoutRecordedSize(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 3000)
	m := openMirror(t, NewMemStore(), k.VerifierKey(), VerifyFull)
	defer m.Close()
	head, parts := stagingParts(t, origin, 0, 3, func(int64) bool { return true })
	for _, p := range parts[:3] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.SetAux(ctx, auxStagedSize, []byte{}); err != nil { // as before the record
		t.Fatal(err)
	}
	// Its tiles cannot be told from a dropped staging's: it resumes from
	// the held tree, staging the skeleton again, and is recorded from then.
	if st, err := m.Staged(ctx); err != nil || st == nil || st.Size != 0 {
		t.Fatalf("Staged without a recorded size = %+v, %v; want size 0 (the held tree)", st, err)
	}
	for i, p := range parts {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if v, _ := m.Aux(ctx, auxStagedSize); len(v) == 0 {
				t.Fatal("staging the skeleton again recorded no size")
			}
		}
	}
	if err := m.Extend(ctx, Extension{Head: head}); err != nil {
		t.Fatal(err)
	}
}

// TestStagedSizeLags fails the write of the staged size after a Stage
// commit, with nothing stored: the Stage succeeds (its tiles are stored),
// Staged says the size before it, which is safe, and staging the same part
// again, then the rest, reaches the head.
func TestStagedSizeLags(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 3000)
	s := NewMemStore()
	m := openMirror(t, s, k.VerifierKey(), VerifyFull)
	defer m.Close()
	all := func(int64) bool { return true }
	head, parts := stagingParts(t, origin, 0, 3, all)
	if err := m.Stage(ctx, parts[0]); err != nil {
		t.Fatal(err)
	}
	// A Stage after the first writes one auxiliary value: the size.
	s.SetHooks(MemHooks{BeforeCommit: func(b *Batch) error {
		if b == nil {
			return fmt.Errorf("%w: disk full", ErrNotPersisted)
		}
		return nil
	}})
	if err := m.Stage(ctx, parts[1]); err != nil {
		t.Fatalf("Stage whose size was not recorded: %v; want success", err)
	}
	s.SetHooks(MemHooks{})
	if st, err := m.Staged(ctx); err != nil || st == nil || st.Size != 256 {
		t.Fatalf("Staged after a size not recorded = %+v, %v; want size 256, the size before", st, err)
	}
	for _, p := range parts[1:] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := m.Staged(ctx); err != nil || st == nil || st.Size != 3000 {
		t.Fatalf("Staged after every part = %+v, %v; want size 3000", st, err)
	}
	if err := m.Extend(ctx, Extension{Head: head}); err != nil {
		t.Fatal(err)
	}
	sameAsOrigin(t, m, origin, all)
}

// TestReplaceStagingResigned replaces a staging part way with the same
// tree re-signed by the origin's next key (sumd key rotate, retire): the
// new head takes the staged one's place, the staging keeps its progress
// and reaches the origin's head. A head of another tree of the same size
// (a fork) never takes its place.
func TestReplaceStagingResigned(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := testKey(t, "sum.example.com"), testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), oldKey)
	defer origin.Close()
	growOrigin(t, origin, 0, 1000)
	m, err := OpenStore(NewMemStore(), Options{VerifierKeys: []string{oldKey.VerifierKey(), newKey.VerifierKey()},
		Create: true, Verify: VerifyFull, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	all := func(int64) bool { return true }
	head, parts := stagingParts(t, origin, 0, 1, all)
	for _, p := range parts[:3] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	before, err := m.Staged(ctx)
	if err != nil || before == nil {
		t.Fatalf("Staged = %+v, %v", before, err)
	}

	fork := openMem(t, NewMemStore(), oldKey)
	defer fork.Close()
	growOrigin(t, fork, 50000, 1000)
	forked, _ := fork.Signed(ctx)
	if err := m.ReplaceStaging(ctx, head, forked); err == nil {
		t.Fatal("ReplaceStaging put another tree of the same size in the place of the staged one")
	}

	if err := origin.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	if err := origin.RemoveKey(ctx, oldKey.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	resigned, others := stagingParts(t, origin, 0, 1, all)
	if bytes.Equal(resigned, head) || headTree(t, resigned) != headTree(t, head) {
		t.Fatalf("the origin's head after the rotation is not the same tree re-signed:\n%s\n%s", head, resigned)
	}
	if err := m.ReplaceStaging(ctx, head, resigned); err != nil {
		t.Fatal(err)
	}
	st, err := m.Staged(ctx)
	if err != nil || st == nil || !bytes.Equal(st.Head, resigned) || st.Size != before.Size {
		t.Fatalf("after ReplaceStaging with the same tree re-signed: staged %+v, %v; want the new head, staged up to %d", st, err, before.Size)
	}
	for _, p := range others[st.Size>>8:] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Extend(ctx, Extension{Head: resigned}); err != nil {
		t.Fatal(err)
	}
	sameAsOrigin(t, m, origin, all)
}

// TestReplaceStagingRefusals: ReplaceStaging of a head that is not the one
// staged fails, and a head of a fork or a rollback at the staged tree is
// an *InconsistentError, as Extend refuses them: a security event.
func TestReplaceStagingRefusals(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 500)
	smaller, _ := origin.Signed(ctx)
	growOrigin(t, origin, 500, 500)
	m := openMirror(t, NewMemStore(), k.VerifierKey(), VerifyFull)
	defer m.Close()
	all := func(int64) bool { return true }
	head, parts := stagingParts(t, origin, 0, 1, all)
	if err := m.ReplaceStaging(ctx, head, head); err == nil {
		t.Fatal("ReplaceStaging with nothing staged succeeded")
	}
	for _, p := range parts[:2] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.ReplaceStaging(ctx, smaller, head); err == nil {
		t.Fatal("ReplaceStaging of a head not staged succeeded")
	}
	var ie *InconsistentError
	if err := m.ReplaceStaging(ctx, head, smaller); !errors.As(err, &ie) || !ie.Rollback() {
		t.Errorf("ReplaceStaging with a smaller tree: %v; want an *InconsistentError, a rollback", err)
	}
	fork := openMem(t, NewMemStore(), k)
	defer fork.Close()
	growOrigin(t, fork, 50000, 1000)
	forked, _ := fork.Signed(ctx)
	if err := m.ReplaceStaging(ctx, head, forked); !errors.As(err, &ie) || ie.Rollback() {
		t.Errorf("ReplaceStaging with another tree of the staged size: %v; want an *InconsistentError, a fork", err)
	}
	if st, err := m.Staged(ctx); err != nil || st == nil || !bytes.Equal(st.Head, head) {
		t.Fatalf("after the refusals: staged %+v, %v; want the staging kept", st, err)
	}
}

// TestStagedHeadOldKey: a mirror whose staged head (or held head) its
// origin signed with a key since retired, opened with the origin's new key
// alone, reports the key missing (*OriginKeyError), not ErrCorrupt: the
// database is sound, and the older key makes it usable.
func TestStagedHeadOldKey(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := testKey(t, "sum.example.com"), testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), oldKey)
	defer origin.Close()
	growOrigin(t, origin, 0, 1000)
	ms := NewMemStore()
	m := openMirror(t, ms, oldKey.VerifierKey(), VerifyFull)
	all := func(int64) bool { return true }
	_, parts := stagingParts(t, origin, 0, 1, all)
	for _, p := range parts[:3] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	if err := origin.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	if err := origin.RemoveKey(ctx, oldKey.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	m, err := OpenStore(ms, Options{VerifierKeys: []string{newKey.VerifierKey()}, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("reopen with the new key: %v", err)
	}
	var ke *OriginKeyError
	_, err = m.Staged(ctx)
	if !errors.As(err, &ke) || errors.Is(err, ErrCorrupt) {
		t.Errorf("Staged with the staged head's key not given: %v; want an *OriginKeyError, not ErrCorrupt", err)
	}
	m.Close()

	// The same of the held head, at open.
	hs := NewMemStore()
	held := openMirror(t, hs, oldKey.VerifierKey(), VerifyFull)
	old := openMem(t, NewMemStore(), oldKey)
	defer old.Close()
	growOrigin(t, old, 0, 10)
	if err := held.Extend(ctx, extensionFrom(t, old, 0, all)); err != nil {
		t.Fatal(err)
	}
	held.Close()
	_, err = OpenStore(hs, Options{VerifierKeys: []string{newKey.VerifierKey()}, Logger: quietLogger()})
	if !errors.As(err, &ke) || errors.Is(err, ErrCorrupt) {
		t.Errorf("open with the held head's key not given: %v; want an *OriginKeyError, not ErrCorrupt", err)
	}
}
