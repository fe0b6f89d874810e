package pgstore

import (
	"context"
	"errors"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestCopyOverDamagedCopy: a copy that did not verify leaves its records
// in the destination; copying the sound log into it again met a record
// stored with another text, and failed as any refused write does
// (ErrNotPersisted), which sumd copy answered with "run sumd copy again":
// a loop. The refusal is now tlog.ErrUnexplainedData.
func TestCopyOverDamagedCopy(t *testing.T) {
	ctx := context.Background()
	k := testKey(t)
	good := tlog.NewMemStore()
	l, err := tlog.OpenStore(good, tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]gosum.Record, 600)
	for i := range recs {
		recs[i] = record(i)
	}
	if _, err := l.Add(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	bad := good.Clone()
	bad.SetRecord(5, record(999).Text())

	dst := openDB(t, pgtest.Shared(t).NewDatabase(t))
	if _, _, err := tlog.Copy(ctx, dst, bad, tlog.CopyOptions{}); !errors.Is(err, tlog.ErrCorrupt) {
		t.Fatalf("copy of a damaged log = %v, want ErrCorrupt", err)
	}
	_, _, err = tlog.Copy(ctx, dst, good, tlog.CopyOptions{})
	if !errors.Is(err, tlog.ErrUnexplainedData) || !errors.Is(err, tlog.ErrNotPersisted) {
		t.Fatalf("copy of the sound log over the damaged copy = %v, want ErrUnexplainedData (and ErrNotPersisted)", err)
	}
}
