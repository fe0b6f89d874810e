package tlog

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
)

// TestCorruptRecord is the red team's finding: record 10 changed in the
// database (UPDATE sumd_records SET text = …) was served by a fresh process
// (open verifies only the last data tile), and the genuine lines were
// refused with 409 as a conflict. Every record read from the store is now
// checked against its leaf hash: lookups, data tiles, Add and Check fail
// with a *CorruptRecordError (500), counted, and the log carries on.
func TestCorruptRecord(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "example.com")
	s := NewMemStore()
	l := openMem(t, s, k)
	batch := make([]gosum.Record, 300) // record 10 is in the first data tile, not the last
	for i := range batch {
		batch[i] = record(i, 0)
	}
	if _, err := l.Add(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	genuine := record(10, 0)
	tampered := genuine
	tampered.Hash = fakeHash("tampered")
	l.Close()
	s.SetRecord(10, tampered.Text())

	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	l, err := OpenStore(s, Options{Keys: []*Key{k}, Logger: quietLogger(), Metrics: metrics})
	if err != nil {
		t.Fatalf("open (tail verification, which does not reach record 10): %v", err)
	}
	defer l.Close()
	corrupt := func(what string, err error) {
		t.Helper()
		var ce *CorruptRecordError
		if !errors.As(err, &ce) || ce.ID != 10 || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v; want a *CorruptRecordError for record 10", what, err)
		}
		var conflict *ConflictError
		if errors.As(err, &conflict) {
			t.Fatalf("%s: a conflict: %v", what, err)
		}
		if strings.Contains(err.Error(), tampered.Hash) {
			t.Fatalf("%s: the error shows the tampered hash: %v", what, err)
		}
	}
	id, err := l.Lookup(ctx, module.Version{Path: genuine.Path, Version: genuine.Version})
	if err != nil || id != 10 {
		t.Fatalf("Lookup = %d, %v", id, err)
	}
	_, err = l.ReadRecords(ctx, 10, 1)
	corrupt("reading record 10 for a lookup", err)
	_, err = l.ReadRecords(ctx, 0, 256)
	corrupt("reading data tile 0", err)
	_, err = l.Add(ctx, genuine)
	corrupt("adding the genuine record 10", err)
	_, err = l.Add(ctx, tampered)
	corrupt("adding the tampered record 10", err)
	_, _, err = l.Check(ctx, []gosum.Record{genuine})
	corrupt("checking the genuine record 10", err)
	if got := testutil.ToFloat64(metrics.corrupt); got != 5 {
		t.Errorf("sumd_log_corrupt_records_total = %v, want 5", got)
	}

	// The rest of the log serves, and takes additions.
	if texts, err := l.ReadRecords(ctx, 11, 1); err != nil || string(texts[0]) != string(record(11, 0).Text()) {
		t.Fatalf("record 11 = %q, %v", texts, err)
	}
	if _, err := l.ReadRecords(ctx, 256, 44); err != nil {
		t.Fatalf("data tile 1: %v", err)
	}
	if ids, err := l.Add(ctx, record(11, 0), record(300, 0)); err != nil || ids[0] != 11 || ids[1] != 300 {
		t.Fatalf("Add of a present and a new record = %v, %v", ids, err)
	}
	if l.Err() != nil {
		t.Fatalf("the log stopped: %v", l.Err())
	}
}

// TestDamageFailsOnlyItsRequest: an Add naming a damaged record, committed
// in one batch with an Add of a new version, fails alone: the other's
// record is committed, and the damaged version is not recorded again.
func TestDamageFailsOnlyItsRequest(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "example.com")
	s := NewMemStore()
	l := openMem(t, s, k)
	var recs []gosum.Record
	for i := range 300 {
		recs = append(recs, record(i, 0))
	}
	if _, err := l.Add(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	bad := record(5, 0)
	bad.Hash = fakeHash("tampered")
	s.SetRecord(5, bad.Text())
	l, err := OpenStore(s, Options{Keys: []*Key{k}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The first Add waits in its commit while the next two queue, so that
	// the sequencer takes them in one batch.
	gate, inCommit := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.SetHooks(MemHooks{BeforeCommit: func(b *Batch) error {
		once.Do(func() { close(inCommit); <-gate })
		return nil
	}})
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := l.Add(ctx, record(1000, 0)); err != nil {
			t.Errorf("first Add: %v", err)
		}
	})
	<-inCommit
	var errDamaged, errOther error
	var idsOther []int64
	wg.Go(func() { _, errDamaged = l.Add(ctx, record(5, 0), record(3000, 0)) })
	for len(l.queue) < 1 {
		time.Sleep(time.Millisecond)
	}
	wg.Go(func() { idsOther, errOther = l.Add(ctx, record(2000, 0)) })
	for len(l.queue) < 2 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	if errOther != nil || len(idsOther) != 1 || idsOther[0] != 301 {
		t.Errorf("Add of a new version batched with one naming a damaged record = %v, %v; want [301]", idsOther, errOther)
	}
	var cre *CorruptRecordError
	if !errors.As(errDamaged, &cre) || cre.ID != 5 {
		t.Errorf("Add naming the damaged record 5: %v; want a *CorruptRecordError of record 5", errDamaged)
	}
	if n := l.Published().Tree.N; n != 302 {
		t.Errorf("tree size %d after the batch, want 302 (nothing of the damaged request)", n)
	}
	if _, err := l.Add(ctx, record(5, 0)); !errors.As(err, &cre) {
		t.Errorf("Add of the damaged version alone: %v; want a *CorruptRecordError", err)
	}
	if n := l.Published().Tree.N; n != 302 {
		t.Errorf("tree size %d after an Add of the damaged version, want 302: recorded again", n)
	}
}
