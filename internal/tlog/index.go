package tlog

import (
	"context"
)

// An IndexEntry is one entry of the log's index: a module version and the
// id of its record.
type IndexEntry struct {
	Path, Version string
	ID            int64
}

// MaxScanIndex caps one ScanIndex call.
const MaxScanIndex = 1000

// ScanIndex returns up to limit (at most MaxScanIndex) entries of the index
// in the order of their keys "<path>@<version>", compared bytewise,
// starting with the first key not less than from. Entries whose records lie
// beyond the published tree are left out, so a caller never shows a record
// that no published tree head covers yet.
//
// It serves listings by module path (the status page's search): the
// versions of path are the keys starting with path+"@", and the module
// after path is at path+"@\xff".
//
// Entries beyond the published tree are many where a mirror stages a large
// extension (or other processes on a shared store commit quickly), and
// anyone may search: once it meets one, it reads on MaxScanIndex entries at
// a time, and past maxScanBeyond of them it answers what it found, fewer
// than limit entries though the index may hold more.
func (l *Log) ScanIndex(ctx context.Context, from string, limit int) ([]IndexEntry, error) {
	limit = min(limit, MaxScanIndex)
	n := l.pub.Load().Tree.N // read first: what is indexed later lies beyond it
	var out []IndexEntry
	skipped := 0
	for len(out) < limit && skipped < maxScanBeyond {
		want := limit - len(out)
		if skipped > 0 {
			want = MaxScanIndex
		}
		entries, err := l.store.ScanIndex(ctx, from, want)
		if err != nil || len(entries) == 0 {
			return out, err
		}
		for _, e := range entries {
			switch {
			case e.ID >= n:
				skipped++
			case len(out) < limit:
				out = append(out, e)
			}
		}
		last := entries[len(entries)-1]
		from = last.Path + "@" + last.Version + "\x00" // the next key after it
	}
	return out, nil
}

// maxScanBeyond bounds how many index entries beyond the published tree one
// ScanIndex call reads past.
const maxScanBeyond = 4 * MaxScanIndex
