package tlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/sumd-project/sumd/internal/gosum"
)

// Check compares recs with the published tree and adds nothing: what Add
// would do with them, found before anything is committed. ids[i] is the id
// of recs[i]'s module version if the tree holds it, and -1 if it does not
// (Add would append it). If the tree holds any of the module versions with
// other hashes, conflicts has an entry per record: a *ConflictError for
// each of those, nil for the others; otherwise conflicts is nil. Records
// are compared with the log only, not with each other. An error is a
// failure to read, or more than MaxAddRecords records.
//
// Bulk imports check every chunk before they commit the first; records
// another writer of a shared store adds meanwhile are found by Add.
func (l *Log) Check(ctx context.Context, recs []gosum.Record) (ids []int64, conflicts []*ConflictError, err error) {
	if len(recs) > MaxAddRecords {
		return nil, nil, fmt.Errorf("refusing to check %d records in one call: the limit is %d (split the input)", len(recs), MaxAddRecords)
	}
	n := l.pub.Load().Tree.N // read first: what is indexed later lies beyond it
	if n == 0 {
		// A new log holds nothing (the usual start of a bulk import).
		ids = make([]int64, len(recs))
		for i := range ids {
			ids[i] = -1
		}
		return ids, nil, nil
	}
	keys := make([]string, len(recs))
	for i, r := range recs {
		keys[i] = r.Key()
	}
	// What another writer indexed beyond the published tree is new to
	// Check; Add would catch up and find it.
	kr, _, err := l.lookupKnown(ctx, keys, n, storeTiles(ctx, l.store, n).tile)
	if err != nil {
		return nil, nil, err
	}
	ids = make([]int64, len(recs))
	for i, r := range recs {
		id, ok, err := kr.existing(r, keys[i], r.Text())
		var conflict *ConflictError
		switch {
		case errors.As(err, &conflict):
			if conflicts == nil {
				conflicts = make([]*ConflictError, len(recs))
			}
			conflicts[i], ids[i] = conflict, conflict.ID
		case err != nil:
			return nil, nil, err
		case ok:
			ids[i] = id
		default:
			ids[i] = -1
		}
	}
	return ids, conflicts, nil
}
