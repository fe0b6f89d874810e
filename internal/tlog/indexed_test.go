package tlog

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/sumd-project/sumd/internal/testenv"
)

// TestIndexedExtent: the index's extent is kept in the meta bucket, so that
// opening a log reads one key instead of every index entry. A file written
// before it (testdata/format1.db, 302 records) is scanned while opened as
// a store, read-only or not (a copy's source), and left without the key;
// opening it as a primary's log stores the extent once, and again over one
// that is stale (an older sumd wrote since) or malformed; commits keep it
// in the transaction of their entries; a new log starts at 0.
func TestIndexedExtent(t *testing.T) {
	ctx := context.Background()
	path := format1Copy(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stored := func(s *BoltStore) []byte {
		var v []byte
		s.db.View(func(tx *bbolt.Tx) error { v = bytes.Clone(tx.Bucket(bucketMeta).Get(keyIndexed)); return nil })
		return v
	}

	ro, err := OpenBolt(path, BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := ro.Extent(ctx); err != nil || e.Indexed != 302 || stored(ro) != nil {
		t.Fatalf("read-only open of a file without the extent: Indexed %d, %v, stored %x; want 302 by a scan, nothing stored", e.Indexed, err, stored(ro))
	}
	ro.Close()
	if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
		t.Fatal("a read-only open changed the file")
	}
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.Extent(ctx); err != nil || e.Indexed != 302 || stored(s) != nil {
		t.Fatalf("writable store open (a copy's source): Indexed %d, %v, stored %x; want 302 by a scan, nothing stored", e.Indexed, err, stored(s))
	}
	s.Close()

	keys := format1Keys(t)
	openLog := func() *Log {
		t.Helper()
		l, err := Open(path, Options{Keys: keys, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := openLog()
	s = l.store.(*BoltStore)
	if v := stored(s); !bytes.Equal(v, idKey(302)) {
		t.Fatalf("after opening the log the stored extent is %x, want 302", v)
	}
	put := func(v []byte) {
		s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyIndexed, v) })
	}
	// The scan is not what answers now: a stored value, even a wrong one,
	// is what Extent reports, if it covers the records.
	put(idKey(400))
	if e, _ := s.Extent(ctx); e.Indexed != 400 {
		t.Fatalf("Extent.Indexed = %d with 400 stored; want the stored value", e.Indexed)
	}
	// Below the records' extent (an older sumd added records since) or
	// malformed, it is not trusted: Extent scans, and opening the log
	// stores the scan's answer.
	for _, bad := range [][]byte{idKey(7), []byte("xyz")} {
		put(bad)
		if e, err := s.Extent(ctx); err != nil || e.Indexed != 302 {
			t.Fatalf("Extent with %x stored = %d, %v; want 302 from a scan", bad, e.Indexed, err)
		}
		l.Close()
		l = openLog()
		s = l.store.(*BoltStore)
		if v := stored(s); !bytes.Equal(v, idKey(302)) {
			t.Fatalf("after opening the log over %x the stored extent is %x, want 302", bad, v)
		}
	}
	if _, err := l.Add(ctx, record(3000, 9), record(3001, 9)); err != nil {
		t.Fatal(err)
	}
	if v := stored(s); !bytes.Equal(v, idKey(304)) {
		t.Errorf("after two adds the stored extent is %x, want 304", v)
	}
	l.Close()

	fresh := openTest(t, filepath.Join(t.TempDir(), "new.db"), testKey(t, "sum.example.com"), VerifyTail)
	defer fresh.Close()
	if v := stored(fresh.store.(*BoltStore)); !bytes.Equal(v, idKey(0)) {
		t.Errorf("a new log's stored extent is %x, want 0", v)
	}
}

// TestIndexedExtentMirror: a mirror's records come out of order (an old
// version looked up after newer ones) and some have no index entry (an
// origin's duplicates): the stored extent is the highest indexed id plus
// one, kept as a maximum, and not lowered by an older id or raised by an
// unindexed one.
func TestIndexedExtentMirror(t *testing.T) {
	ctx := context.Background()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "mirror.db"), BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := testKey(t, "sum.example.com")
	if err := s.Create(ctx, Meta{Name: "sum.example.com", VKeys: []string{k.VerifierKey()}, Mirror: true}, nil); err != nil {
		t.Fatal(err)
	}
	rec := func(id int64, key string) StoredRecord {
		return StoredRecord{ID: id, Key: key, Text: []byte("example.com/m v1.0.0 h1:x=\n")}
	}
	for _, c := range []struct {
		recs []StoredRecord
		want int64
	}{
		{[]StoredRecord{rec(500, "example.com/a@v1.0.0")}, 501},
		{[]StoredRecord{rec(100, "example.com/b@v1.0.0")}, 501},
		{[]StoredRecord{rec(550, "example.com/c@v1.0.0"), rec(600, "")}, 551},
	} {
		if err := s.Commit(ctx, &Batch{Records: c.recs}); err != nil {
			t.Fatal(err)
		}
		var v []byte
		s.db.View(func(tx *bbolt.Tx) error { v = bytes.Clone(tx.Bucket(bucketMeta).Get(keyIndexed)); return nil })
		if !bytes.Equal(v, idKey(c.want)) {
			t.Fatalf("after committing ids %v the stored extent is %x, want %d", c.recs, v, c.want)
		}
	}
	// The records reach 601, beyond the stored 551: Extent scans, and
	// finds the same.
	if e, err := s.Extent(ctx); err != nil || e.Records != 601 || e.Indexed != 551 {
		t.Errorf("Extent = records %d, indexed %d, %v; want 601 and 551", e.Records, e.Indexed, err)
	}
}

// TestIndexedStoreFails: the extent Open stores in a file written before
// it is a commit like any other. Refused before it wrote anything (a low
// disk), it is only logged: the next open scans again. Failed in doubt
// (every fdatasync fails, under strace), Open fails: bbolt may keep the
// unsynced meta page visible (PROTOCOL.md §6), and a log serving and
// committing on top of it would lose what it acknowledged in a power loss.
func TestIndexedStoreFails(t *testing.T) {
	path := format1Copy(t)
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.free = func(string) (int64, bool) { return 0, true }
	var logged bytes.Buffer
	l, err := OpenStore(s, Options{Keys: format1Keys(t), Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatalf("Open with no room to store the extent = %v, want it opened", err)
	}
	l.Close()
	if !strings.Contains(logged.String(), "failed to store the index's extent") {
		t.Errorf("no warning logged for the extent not stored:\n%s", logged.String())
	}

	strace := testenv.LookPath(t, "strace")
	cmd := exec.Command(strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync", "-e", "inject=fdatasync:error=EIO",
		os.Args[0], "-test.run=^TestIndexedStoreFailsChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SUMD_INDEXED_DB="+path)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "failed to store the index's extent: failed to commit") {
		t.Fatalf("Open whose fdatasync fails: %v, want it to fail:\n%.2000s", err, out)
	}
}

// TestIndexedStoreFailsChild opens the log TestIndexedStoreFails names, and
// says whether it opened.
func TestIndexedStoreFailsChild(t *testing.T) {
	path := os.Getenv("SUMD_INDEXED_DB")
	if path == "" {
		t.Skip("run by TestIndexedStoreFails")
	}
	l, err := Open(path, Options{Keys: format1Keys(t), Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: Open:", err)
		os.Exit(1)
	}
	l.Close()
	fmt.Println("child: opened")
}
