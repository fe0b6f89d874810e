package tlog

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestCopy copies a log from bbolt to memory and back, in chunks smaller
// than a tile: the copy opens with the log's key, verifies in full and
// serves the same heads, tiles and records; a grown source brings the copy
// up to date; another log is refused.
func TestCopy(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	path := filepath.Join(t.TempDir(), "src.db")
	origin := openTest(t, path, k, VerifyTail)
	growOrigin(t, origin, 0, 700)
	origin.Close()

	src := mustBolt(t, path)
	mem := NewMemStore()
	var steps []int64
	st, _, err := Copy(ctx, mem, src, CopyOptions{Chunk: 100, Progress: func(done, total int64) { steps = append(steps, done) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 7 || steps[6] != 700 {
		t.Errorf("progress %v, want 7 steps to 700", steps)
	}
	if head, _ := src.Load(ctx); string(st.Head) != string(head.Head) {
		t.Fatalf("Copy returned head %q, want the source's", st.Head)
	}
	src.Close()
	origin = openTest(t, path, k, VerifyTail)
	copied := openMem(t, mem, k)
	sameAsOrigin(t, copied, origin, func(int64) bool { return true })
	copied.Close()

	// The source grows: copying again brings the copy up to date, with
	// the tiles it held widened, not rewritten.
	growOrigin(t, origin, 700, 300)
	origin.Close()
	src = mustBolt(t, path)
	if _, _, err := Copy(ctx, mem, src, CopyOptions{Chunk: 128}); err != nil {
		t.Fatal(err)
	}
	src.Close()
	origin = openTest(t, path, k, VerifyTail)
	defer origin.Close()
	copied = openMem(t, mem, k)
	sameAsOrigin(t, copied, origin, func(int64) bool { return true })

	// Back into bbolt, then refused into a database of another log.
	back, err := OpenBolt(filepath.Join(t.TempDir(), "back.db"), BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if _, _, err := Copy(ctx, back, mem, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  *Key
		grow func(l *Log)
		want string
	}{
		{"another key", testKey(t, "sum.example.com"), func(l *Log) { growOrigin(t, l, 0, 3) }, "signed with"},
		{"another name", testKey(t, "other.example.com"), func(*Log) {}, "holds another log: other.example.com"},
		{"a fork", k, func(l *Log) { l.Add(ctx, record(0, 9)) }, "its tree of 1 records is not the source's"},
		{"a larger tree", k, func(l *Log) { growOrigin(t, l, 0, 1001) }, "larger than the source's"},
	} {
		other := NewMemStore()
		o := openMem(t, other, tt.key)
		tt.grow(o)
		o.Close()
		before := other.Commits()
		if _, _, err := Copy(ctx, other, mem, CopyOptions{}); !errors.Is(err, ErrOtherLog) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Copy into %s = %v, want ErrOtherLog: %s", tt.name, err, tt.want)
		}
		if other.Commits() != before {
			t.Errorf("a refused copy into %s committed", tt.name)
		}
	}
}

// TestCopyInterrupted cuts a copy short: the destination has no signed
// head, which Open refuses saying why; copying again finishes it.
func TestCopyInterrupted(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	src := NewMemStore()
	l := openMem(t, src, k)
	growOrigin(t, l, 0, 500)
	l.Close()
	dst := NewMemStore()
	commits := 0
	dst.SetHooks(MemHooks{BeforeCommit: func(*Batch) error {
		if commits++; commits == 3 {
			return ErrNotPersisted
		}
		return nil
	}})
	if _, _, err := Copy(ctx, dst, src, CopyOptions{Chunk: 100}); !errors.Is(err, ErrNotPersisted) {
		t.Fatalf("Copy with a failing commit = %v", err)
	}
	dst.SetHooks(MemHooks{})
	if _, err := OpenStore(dst, Options{Keys: []*Key{k}, Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "sumd copy) did not finish") {
		t.Fatalf("Open of an unfinished copy = %v, want: did not finish", err)
	}
	if _, _, err := Copy(ctx, dst, src, CopyOptions{Chunk: 100}); err != nil {
		t.Fatal(err)
	}
	origin, copied := openMem(t, src, k), openMem(t, dst, k)
	defer origin.Close()
	defer copied.Close()
	sameAsOrigin(t, copied, origin, func(int64) bool { return true })
}

// TestCopyMirror copies a partial mirror, then again after the mirror
// learned older records and grew.
func TestCopyMirror(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 400)
	ms := NewMemStore()
	m := openMirror(t, ms, k.VerifierKey(), VerifyFull)
	odd := func(id int64) bool { return id%2 == 1 }
	if err := m.Extend(ctx, extensionFrom(t, origin, 0, odd)); err != nil {
		t.Fatal(err)
	}
	dst := NewMemStore()
	if _, _, err := Copy(ctx, dst, ms, CopyOptions{Chunk: 150}); err != nil {
		t.Fatal(err)
	}
	growOrigin(t, origin, 400, 100)
	if err := m.Extend(ctx, extensionFrom(t, origin, 400, func(id int64) bool { return id%2 == 0 || id >= 400 })); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if _, _, err := Copy(ctx, dst, ms, CopyOptions{Chunk: 150}); err != nil {
		t.Fatal(err)
	}
	copied := openMirror(t, dst, k.VerifierKey(), VerifyFull)
	defer copied.Close()
	sameAsOrigin(t, copied, origin, func(int64) bool { return true })
}

// TestCopyMirrorStaging copies a mirror part way through the staging of a
// newer head: the copy carries the staged head (its staged data is not
// copied: it stages again from its held tree), so that it too knows the
// origin signed that tree. Copy left it behind, and a copy then forgot a
// head the mirror had verified (Restore from it could roll a primary back
// behind that head).
func TestCopyMirrorStaging(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 400)
	ms := NewMemStore()
	m := openMirror(t, ms, k.VerifierKey(), VerifyFull)
	all := func(int64) bool { return true }
	if err := m.Extend(ctx, extensionFrom(t, origin, 0, all)); err != nil {
		t.Fatal(err)
	}
	growOrigin(t, origin, 400, 2000)
	head, parts := stagingParts(t, origin, 400, 1, all)
	for _, p := range parts[:3] {
		if err := m.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()
	dst := NewMemStore()
	if _, _, err := Copy(ctx, dst, ms, CopyOptions{Chunk: 150}); err != nil {
		t.Fatal(err)
	}
	copied := openMirror(t, dst, k.VerifierKey(), VerifyFull)
	defer copied.Close()
	st, err := copied.Staged(ctx)
	if err != nil || st == nil || !bytes.Equal(st.Head, head) || st.Size != 400 {
		t.Fatalf("the copy's staging: %+v, %v; want the source's staged head, staged up to 400", st, err)
	}
	for _, p := range parts {
		if err := copied.Stage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := copied.Extend(ctx, Extension{Head: head}); err != nil {
		t.Fatal(err)
	}
	sameAsOrigin(t, copied, origin, all)
}

// TestCopyDamagedGetsNoHead copies a source whose tile 0/1 is zeroed (off
// the root's path and not the last data tile, so only a full verification
// sees it): Copy fails with ErrCorrupt and the destination gets no signed
// head, so no Open, however cheap its verification, serves the damage.
func TestCopyDamagedGetsNoHead(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	src := NewMemStore()
	l := openMem(t, src, k)
	growOrigin(t, l, 0, 1024)
	l.Close()
	src.tiles[TileID{0, 1}] = make([]byte, 256*32)

	dst := NewMemStore()
	if _, _, err := Copy(ctx, dst, src, CopyOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Copy of a damaged source = %v, want ErrCorrupt", err)
	}
	if st, err := dst.Load(ctx); err != nil || len(st.Head) != 0 {
		t.Fatalf("after a failed copy the destination holds a %d-byte head (%v), want none", len(st.Head), err)
	}
	if c, err := OpenStore(dst, Options{Keys: []*Key{k}, Logger: quietLogger()}); err == nil {
		c.Close()
		t.Fatal("the destination of a copy that did not verify opens")
	}
}

// TestCopyAfterKeyRotation brings up to date a copy whose head is signed
// only with the key the source signed with before it added another: the
// head dst holds is checked with the keys dst lists, not the source's.
func TestCopyAfterKeyRotation(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := testKey(t, "sum.example.com"), testKey(t, "sum.example.com")
	src := NewMemStore()
	l := openMem(t, src, oldKey)
	growOrigin(t, l, 0, 300)
	dst := NewMemStore()
	if _, _, err := Copy(ctx, dst, src, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	growOrigin(t, l, 300, 10)
	l.Close()
	if _, _, err := Copy(ctx, dst, src, CopyOptions{}); err != nil {
		t.Fatalf("Copy into a copy made before a key rotation: %v", err)
	}
	copied := openMem(t, dst, oldKey, newKey)
	defer copied.Close()
	if tree, _ := copied.Tree(ctx); tree.N != 310 {
		t.Fatalf("copy holds %d records, want 310", tree.N)
	}
}

// TestCopyRetiredKeys: a copy of a log (sumd copy, the move of a bbolt
// file into PostgreSQL) keeps the record of the keys it retired, merged
// with any the destination records, so that the copy's AddKey still
// refuses them.
func TestCopyRetiredKeys(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := testKey(t, "sum.example.com"), testKey(t, "sum.example.com")
	src := NewMemStore()
	l := openMem(t, src, oldKey)
	growOrigin(t, l, 0, 10)
	if err := l.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	if err := l.RemoveKey(ctx, oldKey.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	l.Close()
	dst := NewMemStore()
	other := testKey(t, "sum.example.com").VerifierKey()
	if err := dst.SetAux(ctx, AuxRetiredKeys, []byte(other+"\n")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Copy(ctx, dst, src, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, _ := dst.Aux(ctx, AuxRetiredKeys); string(v) != other+"\n"+oldKey.VerifierKey()+"\n" {
		t.Errorf("the copy records as retired %q, want the destination's key then the source's", v)
	}
	copied := openMem(t, dst, newKey)
	defer copied.Close()
	if err := copied.AddKey(ctx, oldKey); err == nil || !strings.Contains(err.Error(), "was retired") {
		t.Errorf("AddKey of a key the source retired, on the copy = %v, want a refusal", err)
	}
}

// TestCopyLostHead: a primary's database whose head does not extend the
// head a stopped process recorded as lost (AuxLostHead: a failover that
// lost commits) is refused as a source, as Open refuses to serve it. The
// record is not copied, so a copy up to the head would be a clean
// database that opens and signs trees of the lost one's size with other
// records, the fork the record is there to prevent.
func TestCopyLostHead(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	published := openMem(t, NewMemStore(), k)
	growOrigin(t, published, 0, 3)
	lost := published.Published().Signed
	published.Close()

	src := NewMemStore()
	l := openMem(t, src, k)
	growOrigin(t, l, 0, 2)
	l.Close()
	if err := src.SetAux(ctx, AuxLostHead, lost); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(src, Options{Keys: []*Key{k}, Logger: quietLogger()}); !errors.As(err, new(*LostHeadError)) {
		t.Fatalf("Open of the source: %v, want a *LostHeadError", err)
	}
	dst := NewMemStore()
	_, _, err := Copy(ctx, dst, src, CopyOptions{})
	if !errors.As(err, new(*LostHeadError)) {
		t.Fatalf("Copy of a database that lost a published head: %v, want a *LostHeadError", err)
	}
	if st, err := dst.Load(ctx); !errors.Is(err, ErrNoLog) {
		t.Errorf("the destination holds %q (%v), want no log", st.Head, err)
	}
}

// TestCopyIntoLostHead: the documented recovery of a PostgreSQL database
// that lost a published head (docs/mirrors.md, "Restore from a mirror")
// copies a database restored from a mirror into it, emptied of its log
// where the copy refuses it as another log: the record of the lost head
// (AuxLostHead) was the only thing that stopped a restore from a mirror
// behind it, and Copy took any source, so the copied log opened and
// signed trees of the lost one's size with other records. A destination
// recording a lost head takes only a source whose tree extends it, and is
// left unchanged otherwise; the record stays.
func TestCopyIntoLostHead(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	src := NewMemStore()
	l := openMem(t, src, k)
	growOrigin(t, l, 0, 2)
	behind := NewMemStore()
	if _, _, err := Copy(ctx, behind, src, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	growOrigin(t, l, 2, 3)
	lost := l.Published().Signed
	growOrigin(t, l, 5, 1)
	l.Close()

	for _, tt := range []struct {
		name  string
		dst   func() *MemStore
		empty bool // dst holds no log when the copy is refused
	}{
		{"emptied", NewMemStore, true},
		{"the older copy", func() *MemStore {
			dst := NewMemStore()
			if _, _, err := Copy(ctx, dst, behind, CopyOptions{}); err != nil {
				t.Fatal(err)
			}
			return dst
		}, false},
	} {
		dst := tt.dst()
		if err := dst.SetAux(ctx, AuxLostHead, lost); err != nil {
			t.Fatal(err)
		}
		before, _ := dst.Load(ctx)
		_, _, err := Copy(ctx, dst, behind, CopyOptions{})
		if !errors.As(err, new(*LostHeadError)) || !strings.Contains(err.Error(), "tree of 5 records") {
			t.Fatalf("%s: Copy of a tree of 2 records into a database that lost the tree of 5: %v, want a *LostHeadError", tt.name, err)
		}
		if st, err := dst.Load(ctx); tt.empty && !errors.Is(err, ErrNoLog) || !tt.empty && !bytes.Equal(st.Head, before.Head) {
			t.Errorf("%s: the refused copy left the destination with head %q (%v)", tt.name, st.Head, err)
		}
		if _, tree, err := Copy(ctx, dst, src, CopyOptions{}); err != nil || tree.N != 6 {
			t.Fatalf("%s: Copy of a tree extending the lost one: %d, %v", tt.name, tree.N, err)
		}
		if v, _ := dst.Aux(ctx, AuxLostHead); !bytes.Equal(v, lost) {
			t.Errorf("%s: the record of the lost head is %q after the copy, want it kept", tt.name, v)
		}
		copied := openMem(t, dst, k)
		copied.Close()
	}
}

// TestCopyDestinationAuxUnreadable: a destination whose record of a lost
// head could not be read (the database out of reach) failed the copy
// saying that it records as lost a head the source does not hold, sending
// the operator after a lost head that may not exist. It says that the
// record could not be read now, and only a *LostHeadError says the other.
func TestCopyDestinationAuxUnreadable(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	src := NewMemStore()
	l := openMem(t, src, k)
	growOrigin(t, l, 0, 2)
	l.Close()
	down := errors.New("the database is out of reach")
	_, _, err := Copy(ctx, auxFails{NewMemStore(), down}, src, CopyOptions{})
	if !errors.Is(err, down) || strings.Contains(err.Error(), "records as lost") || errors.As(err, new(*LostHeadError)) {
		t.Fatalf("Copy into a destination whose auxiliary values cannot be read: %v, want the failure to read them, and no lost head", err)
	}
}

// auxFails is a store whose Aux fails with err.
type auxFails struct {
	*MemStore
	err error
}

func (a auxFails) Aux(ctx context.Context, key string) ([]byte, error) { return nil, a.err }

// TestCopyMirrorConfig: a copy of a mirror (sumd copy into another bbolt
// file) carries the mirror's configuration, before the head: its origin,
// its -modules, and the credentials its data was read with (ReadWith),
// without which sumd serve -mirror would serve the copy of a private
// mirror to anonymous clients. Copy left it behind.
func TestCopyMirrorConfig(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	origin := openMem(t, NewMemStore(), k)
	defer origin.Close()
	growOrigin(t, origin, 0, 10)
	ms := NewMemStore()
	m := openMirror(t, ms, k.VerifierKey(), VerifyFull)
	if err := m.Extend(ctx, extensionFrom(t, origin, 0, func(int64) bool { return true })); err != nil {
		t.Fatal(err)
	}
	m.Close()
	const conf = `{"url":"https://sumd.corp.example","read_with":"bearer:/etc/sumd/replica.token"}`
	if err := ms.SetAux(ctx, "mirror/config", []byte(conf)); err != nil {
		t.Fatal(err)
	}
	dst := NewMemStore()
	if _, _, err := Copy(ctx, dst, ms, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, _ := dst.Aux(ctx, "mirror/config"); string(v) != conf {
		t.Errorf("the copy's mirror configuration is %q, want the source's %q", v, conf)
	}
}
