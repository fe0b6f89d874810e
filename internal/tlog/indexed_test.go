package tlog

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
)

// TestIndexedExtent: the index's extent is kept in the meta bucket, so that
// opening a log reads one key instead of every index entry. A file written
// before it (testdata/format1.db, 302 records) is scanned while opened
// read-only, and left unchanged; a writable open stores the extent once,
// and again over one left behind by an older sumd; commits then keep it in
// the transaction of their entries; a new log starts at 0.
func TestIndexedExtent(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile("testdata/format1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sumd.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
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
	if v := stored(s); !bytes.Equal(v, idKey(302)) {
		t.Fatalf("after a writable open the stored extent is %x, want 302", v)
	}
	// The scan is not what answers now: a stored value, even a wrong one,
	// is what Extent reports, if it covers the records.
	put := func(n int64) {
		s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyIndexed, idKey(n)) })
	}
	put(400)
	if e, _ := s.Extent(ctx); e.Indexed != 400 {
		t.Fatalf("Extent.Indexed = %d with 400 stored; want the stored value", e.Indexed)
	}
	// Below the records' extent (an older sumd added records since), it
	// is not trusted: Extent scans, and the next writable open stores the
	// scan's answer.
	put(7)
	if e, _ := s.Extent(ctx); e.Indexed != 302 {
		t.Fatalf("Extent.Indexed = %d with a stale 7 stored; want 302 from a scan", e.Indexed)
	}
	s.Close()
	if s, err = OpenBolt(path, BoltOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := stored(s); !bytes.Equal(v, idKey(302)) {
		t.Fatalf("after a writable open over a stale extent the stored one is %x, want 302", v)
	}
	s.Close()

	keys := format1Keys(t)
	l, err := Open(path, Options{Keys: keys, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(ctx, record(3000, 9), record(3001, 9)); err != nil {
		t.Fatal(err)
	}
	if v := stored(l.store.(*BoltStore)); !bytes.Equal(v, idKey(304)) {
		t.Errorf("after two adds the stored extent is %x, want 304", v)
	}
	l.Close()

	fresh := openTest(t, filepath.Join(t.TempDir(), "new.db"), testKey(t, "sum.example.com"), VerifyTail)
	defer fresh.Close()
	if v := stored(fresh.store.(*BoltStore)); !bytes.Equal(v, idKey(0)) {
		t.Errorf("a new log's stored extent is %x, want 0", v)
	}
}
