package oci

import (
	"context"
	"fmt"
	"io/fs"
	"sync"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

// fakeLog is an in-memory Recorder with the log's contract: one record per
// module version, the same hashes again a no-op, other hashes a
// *tlog.ConflictError, all or nothing per call.
type fakeLog struct {
	mu    sync.Mutex
	recs  []gosum.Record
	index map[string]int64
	// afterAdd, if set, runs after each successful Add.
	afterAdd func()
	aux      map[string][]byte // what SetAux stored
}

var _ Recorder = (*fakeLog)(nil)

func newFakeLog() *fakeLog { return &fakeLog{index: map[string]int64{}, aux: map[string][]byte{}} }

func (f *fakeLog) Aux(ctx context.Context, key string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.aux[key], nil
}

func (f *fakeLog) SetAux(ctx context.Context, key string, value []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aux[key] = append([]byte(nil), value...)
	return nil
}

// withoutRecords returns a log with f's auxiliary state and no records: a
// database whose sync state remembers versions the log lacks.
func (f *fakeLog) withoutRecords() *fakeLog {
	g := newFakeLog()
	for k, v := range f.aux {
		g.aux[k] = v
	}
	return g
}

func (f *fakeLog) Lookup(ctx context.Context, m module.Version) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.index[m.Path+"@"+m.Version]
	if !ok {
		return 0, fmt.Errorf("%s: %w", m, fs.ErrNotExist)
	}
	return id, nil
}

func (f *fakeLog) Add(ctx context.Context, recs ...gosum.Record) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]int64, len(recs))
	for i, r := range recs {
		if err := r.Check(); err != nil {
			return nil, err
		}
		if id, ok := f.index[r.Key()]; ok {
			if old := f.recs[id]; old != r {
				return nil, &tlog.ConflictError{ID: id, Recorded: old, Proposed: r}
			}
			ids[i] = id
			continue
		}
		ids[i] = -1
	}
	for i, r := range recs {
		if ids[i] < 0 {
			ids[i] = int64(len(f.recs))
			f.index[r.Key()] = ids[i]
			f.recs = append(f.recs, r)
		}
	}
	if f.afterAdd != nil {
		f.afterAdd()
	}
	return ids, nil
}

// get returns the record of path@version, if any.
func (f *fakeLog) get(key string) (gosum.Record, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.index[key]
	if !ok {
		return gosum.Record{}, false
	}
	return f.recs[id], true
}

func (f *fakeLog) size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.recs)
}

// Check is Add without recording: the log's contract for Check.
func (f *fakeLog) Check(ctx context.Context, recs []gosum.Record) ([]int64, []*tlog.ConflictError, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]int64, len(recs))
	var conflicts []*tlog.ConflictError
	for i, r := range recs {
		id, ok := f.index[r.Key()]
		switch {
		case !ok:
			ids[i] = -1
		case f.recs[id] != r:
			if conflicts == nil {
				conflicts = make([]*tlog.ConflictError, len(recs))
			}
			conflicts[i], ids[i] = &tlog.ConflictError{ID: id, Recorded: f.recs[id], Proposed: r}, id
		default:
			ids[i] = id
		}
	}
	return ids, conflicts, nil
}
