package tlog

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// failingReads is a store whose record reads fail with err once fail is
// set.
type failingReads struct {
	*MemStore
	fail bool
	err  error
}

func (s *failingReads) ReadRecords(ctx context.Context, ids []int64) ([][]byte, error) {
	if s.fail {
		return nil, s.err
	}
	return s.MemStore.ReadRecords(ctx, ids)
}

// failAfterRecords starts failing reads once records have been committed:
// a destination lost while Copy verifies it.
type failAfterRecords struct{ *failingReads }

func (s *failAfterRecords) Commit(ctx context.Context, b *Batch) error {
	err := s.failingReads.Commit(ctx, b)
	if len(b.Records) > 0 {
		s.fail = true
	}
	return err
}

// TestVerifyReadFailure: a store that fails to read during a verification
// (VerifyFull at Open, VerifyStore, Copy's verification of its copy) said
// "database does not match its signed tree head", an ErrCorrupt, whatever
// the failure: a PostgreSQL outage was reported as a damaged database to
// restore from a backup, with the outage's cause dropped, and a bbolt
// *DamagedError lost its type. A failure to read, or a context ended, is
// passed on as it is; only a mismatch is ErrCorrupt.
func TestVerifyReadFailure(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	m := NewMemStore()
	l := openMem(t, m, k)
	growOrigin(t, l, 0, 300)
	l.Close()

	dial := errors.New("dial tcp 10.0.0.5:5432: connection refused")
	down := &failingReads{MemStore: m, fail: true, err: &UnavailableError{Err: dial}}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCorrupt) || !errors.Is(err, dial) {
			t.Errorf("%s with the store unreachable = %v (ErrUnavailable %v, ErrCorrupt %v), want ErrUnavailable with its cause, not ErrCorrupt",
				what, err, errors.Is(err, ErrUnavailable), errors.Is(err, ErrCorrupt))
		}
	}
	_, err := OpenStore(down, Options{Keys: []*Key{k}, Logger: quietLogger(), Verify: VerifyFull})
	check("OpenStore(VerifyFull)", err)
	check("VerifyStore(VerifyFull)", VerifyStore(ctx, down, VerifyFull))
	dst := &failAfterRecords{&failingReads{MemStore: NewMemStore(), err: &UnavailableError{Err: dial}}}
	_, _, err = Copy(ctx, dst, m, CopyOptions{})
	check("Copy whose destination is lost while it verifies", err)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := VerifyStore(cancelled, &failingReads{MemStore: m, fail: true, err: context.Canceled}, VerifyFull); !errors.Is(err, context.Canceled) || errors.Is(err, ErrCorrupt) {
		t.Errorf("VerifyStore with its context cancelled = %v, want context.Canceled, not ErrCorrupt", err)
	}

	damaged := &failingReads{MemStore: m, fail: true, err: &DamagedError{Path: "sumd.db", What: "a page is not a page"}}
	var de *DamagedError
	if err := VerifyStore(ctx, damaged, VerifyFull); !errors.As(err, &de) {
		t.Errorf("VerifyStore of a damaged file = %v, want its *DamagedError", err)
	}
	_, err = OpenStore(damaged, Options{Keys: []*Key{k}, Logger: quietLogger(), Verify: VerifyFull})
	if !errors.As(err, &de) {
		t.Errorf("OpenStore(VerifyFull) of a damaged file = %v, want its *DamagedError", err)
	}

	// A mismatch is still ErrCorrupt.
	m.SetRecord(5, record(999, 1).Text())
	if err := VerifyStore(ctx, m, VerifyFull); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "record 5") {
		t.Errorf("VerifyStore of a changed record = %v, want ErrCorrupt naming record 5", err)
	}
}
