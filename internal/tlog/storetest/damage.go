package storetest

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

// A Tamperer changes the data of the store called name behind the log's
// back, as a damaged disk or an operator's edit would, while no store of
// that name is open. A store's test implements it with the store's own
// means: SQL for PostgreSQL, a bbolt transaction for a file.
type Tamperer interface {
	// SetIndex points the index entry of key (path@version) at id.
	SetIndex(t *testing.T, name, key string, id int64)
	// SetRecord replaces the text of record id.
	SetRecord(t *testing.T, name string, id int64, text []byte)
	// SetTile replaces the data of a hash tile.
	SetTile(t *testing.T, name string, id tlog.TileID, data []byte)
}

// Damage checks, through a tlog.Log, that the log finds damage in the
// store: a wrong index entry (VerifyFull refuses it, Add and Lookup fail
// with a *WrongIndexError rather than a false conflict), a changed record
// (VerifyFull, and a *CorruptRecordError when read), a changed tile
// (VerifyFull), a wrong entry on a later page of VerifyFull's index scan
// (ScanIndex's order and continuation), and Copy verifying a copy into the
// store before it stores the head.
func Damage(t *testing.T, open Opener, tamper Tamperer) {
	t.Run("WrongIndex", func(t *testing.T) { testWrongIndex(t, open, tamper) })
	t.Run("Record", func(t *testing.T) { testDamagedRecord(t, open, tamper) })
	t.Run("Tile", func(t *testing.T) { testDamagedTile(t, open, tamper) })
	t.Run("IndexPages", func(t *testing.T) { testIndexPages(t, open, tamper) })
	t.Run("CopyVerifiesFirst", func(t *testing.T) { testCopyVerifiesFirst(t, open) })
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// grow creates a log in the store name holding recs, and closes it.
func grow(t *testing.T, open Opener, name string, k *tlog.Key, recs []gosum.Record) {
	t.Helper()
	l, err := tlog.OpenStore(open(t, name), tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Add(ctx, recs...); err != nil {
		t.Fatal(err)
	}
}

func records(n int) []gosum.Record {
	recs := make([]gosum.Record, n)
	for i := range recs {
		recs[i] = Record(i)
	}
	return recs
}

// verifyFull runs VerifyStore(VerifyFull) on the store name.
func verifyFull(t *testing.T, open Opener, name string) error {
	s := open(t, name)
	defer s.Close()
	return tlog.VerifyStore(ctx, s, tlog.VerifyFull)
}

// openTail opens a log on the store name with Open's default check.
func openTail(t *testing.T, open Opener, name string, k *tlog.Key) *tlog.Log {
	t.Helper()
	l, err := tlog.OpenStore(open(t, name), tlog.Options{Keys: []*tlog.Key{k}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func wantCorrupt(t *testing.T, what string, err error, names string) {
	t.Helper()
	if !errors.Is(err, tlog.ErrCorrupt) || !strings.Contains(err.Error(), names) {
		t.Errorf("%s = %v, want ErrCorrupt naming %s", what, err, names)
	}
}

func testWrongIndex(t *testing.T, open Opener, tamper Tamperer) {
	k := NewKey(t)
	grow(t, open, "wrongindex", k, records(300))
	r := Record(999) // not recorded
	tamper.SetIndex(t, "wrongindex", r.Key(), 3)
	wantCorrupt(t, "VerifyFull with a wrong index entry", verifyFull(t, open, "wrongindex"), "names record 3")

	l := openTail(t, open, "wrongindex", k)
	var wrong *tlog.WrongIndexError
	var conflict *tlog.ConflictError
	if _, err := l.Add(ctx, r); !errors.As(err, &wrong) || errors.As(err, &conflict) {
		t.Errorf("Add of a version the index wrongly names = %v, want a *WrongIndexError, not a conflict", err)
	}
	if _, err := l.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); !errors.As(err, &wrong) {
		t.Errorf("Lookup of a version the index wrongly names = %v, want a *WrongIndexError", err)
	}
	if ids, err := l.Add(ctx, Record(300)); err != nil || ids[0] != 300 {
		t.Errorf("Add of another version = %v, %v; want id 300", ids, err)
	}
}

func testDamagedRecord(t *testing.T, open Opener, tamper Tamperer) {
	k := NewKey(t)
	grow(t, open, "record", k, records(300))
	tamper.SetRecord(t, "record", 5, Record(999).Text())
	wantCorrupt(t, "VerifyFull with a changed record", verifyFull(t, open, "record"), "record 5")

	// Record 5 is not in the tail that VerifyTail checks.
	l := openTail(t, open, "record", k)
	var damaged *tlog.CorruptRecordError
	if _, err := l.ReadRecords(ctx, 5, 1); !errors.As(err, &damaged) {
		t.Errorf("ReadRecords of a changed record = %v, want a *CorruptRecordError", err)
	}
	var conflict *tlog.ConflictError
	if _, err := l.Add(ctx, Record(5)); !errors.As(err, &damaged) || errors.As(err, &conflict) {
		t.Errorf("Add of the version of a changed record = %v, want a *CorruptRecordError, not a conflict", err)
	}
}

func testDamagedTile(t *testing.T, open Opener, tamper Tamperer) {
	k := NewKey(t)
	grow(t, open, "tile", k, records(300))
	s := open(t, "tile")
	data, err := s.ReadTiles(ctx, []tlog.TileID{{L: 0, N: 0}})
	if err != nil || len(data[0]) != 256*32 {
		t.Fatalf("ReadTiles(0/0) = %d bytes, %v", len(data[0]), err)
	}
	s.Close()
	data[0][100] ^= 1
	tamper.SetTile(t, "tile", tlog.TileID{L: 0, N: 0}, data[0])
	wantCorrupt(t, "VerifyFull with a changed tile", verifyFull(t, open, "tile"), "tile/8/0/000")
}

// testIndexPages: VerifyFull's index pass reads the index a page
// (tlog.MaxScanIndex entries) at a time, each from the key after the last
// one it got. Keys differing in case and punctuation are ordered bytewise
// (a store that ordered them by a collation would page wrongly), and the
// wrong entry sorts after every other, on the last page.
func testIndexPages(t *testing.T, open Opener, tamper Tamperer) {
	k := NewKey(t)
	recs := records(2*tlog.MaxScanIndex + 100)
	for i, p := range []string{"example.com/M", "example.com/m-x", "example.com/m.x", "example.com/m/x", "example.com/m_x", "example.com/m~x"} {
		r := Record(100000 + i)
		r.Path = p
		recs = append(recs, r)
	}
	grow(t, open, "pages", k, recs)
	if err := verifyFull(t, open, "pages"); err != nil {
		t.Fatalf("VerifyFull of a sound log of %d records: %v", len(recs), err)
	}
	tamper.SetIndex(t, "pages", "example.com/zz@v1.0.0", 3)
	wantCorrupt(t, "VerifyFull with a wrong index entry on its last page", verifyFull(t, open, "pages"), "example.com/zz@v1.0.0")
}

// testCopyVerifiesFirst: a copy of a damaged source into the store does
// not verify, and the store gets no head: it serves nothing.
func testCopyVerifiesFirst(t *testing.T, open Opener) {
	k := NewKey(t)
	src := tlog.NewMemStore()
	l, err := tlog.OpenStore(src, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(ctx, records(600)...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	src.SetRecord(5, Record(999).Text())

	dst := openClosed(t, open, "copy")
	_, _, err = tlog.Copy(ctx, dst, src, tlog.CopyOptions{Chunk: 256})
	wantCorrupt(t, "Copy of a source with a changed record", err, "record 5")
	if st, err := dst.Load(ctx); err != nil || len(st.Head) != 0 {
		t.Errorf("after a copy that does not verify, the destination holds head %q (%v), want none", st.Head, err)
	}
}
