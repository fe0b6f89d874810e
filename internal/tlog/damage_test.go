package tlog

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// TestTruncatedTile: the published tree's level-0 tile 0/0 cut to 100
// hashes in a log of 300 records, and an index entry that is not an id,
// are damage (ErrCorrupt, a *CorruptDataError), logged and counted as a
// damaged record is, for a read of a record, a proof's hashes, an Add and
// a lookup; before, a plain error (a 500 "internal error").
func TestTruncatedTile(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "example.com")
	path := filepath.Join(t.TempDir(), "t.db")
	l, err := Open(path, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger(), MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	var recs []gosum.Record
	for i := range 300 {
		recs = append(recs, record(i, 0))
	}
	if _, err := l.Add(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	s, err := OpenBolt(path, BoltOptions{MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTiles)
		v := bytes.Clone(b.Get(tileKey(TileID{0, 0})))
		if err := b.Put(tileKey(TileID{0, 0}), v[:100*tlog.HashSize]); err != nil {
			return err
		}
		return tx.Bucket(bucketIndex).Put([]byte(record(7, 0).Key()), []byte{1, 2, 3})
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	reg := prometheus.NewRegistry()
	l, err = Open(path, Options{Keys: []*Key{k}, Logger: quietLogger(), MinFree: -1, Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatalf("open (tail): %v", err)
	}
	defer l.Close()
	var de *CorruptDataError
	if _, err := l.ReadRecords(ctx, 150, 1); !errors.As(err, &de) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadRecords(150): %v; want a *CorruptDataError", err)
	}
	if _, err := l.HashReader().ReadHashes([]int64{tlog.StoredHashIndex(0, 150)}); !errors.As(err, &de) {
		t.Errorf("ReadHashes of record 150's leaf: %v; want a *CorruptDataError", err)
	}
	if _, err := l.Add(ctx, record(150, 0)); !errors.As(err, &de) {
		t.Errorf("Add(record 150 again): %v; want a *CorruptDataError", err)
	}
	r7 := record(7, 0)
	if _, err := l.Lookup(ctx, module.Version{Path: r7.Path, Version: r7.Version}); !errors.As(err, &de) {
		t.Errorf("Lookup of a version whose index entry is 3 bytes: %v; want a *CorruptDataError", err)
	}
	if got := testutil.ToFloat64(l.metrics.corrupt); got != 4 {
		t.Errorf("sumd_log_corrupt_records_total = %v after four reads of damage, want 4", got)
	}
}
