package tlog

import (
	"bytes"
	"context"
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
	ids, err = l.store.Lookup(ctx, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to look up %d module versions: %w", len(keys), err)
	}
	var found []int64
	var at []int // index in recs of each found id
	for i, id := range ids {
		if id < 0 || id >= n {
			ids[i] = -1
			continue
		}
		found, at = append(found, id), append(at, i)
	}
	if len(found) == 0 {
		return ids, nil, nil
	}
	texts, err := l.store.ReadRecords(ctx, found)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read %d records: %w", len(found), err)
	}
	for j, text := range texts {
		r := recs[at[j]]
		if text == nil {
			return nil, nil, fmt.Errorf("index names record %d for %s, which is not stored", found[j], r.Key())
		}
		if bytes.Equal(text, r.Text()) {
			continue
		}
		recorded, err := gosum.Parse(text)
		if err != nil {
			return nil, nil, fmt.Errorf("record %d is malformed: %w", found[j], err)
		}
		if conflicts == nil {
			conflicts = make([]*ConflictError, len(recs))
		}
		conflicts[at[j]] = &ConflictError{ID: found[j], Recorded: recorded, Proposed: r}
	}
	return ids, conflicts, nil
}
