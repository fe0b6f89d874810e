package tlog

import (
	"context"
	"strings"
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
// than limit entries though the index may hold more after them, and says
// so (cut): a short answer that is not cut reached the end of the index.
func (l *Log) ScanIndex(ctx context.Context, from string, limit int) (entries []IndexEntry, cut bool, err error) {
	return l.scanIndex(ctx, from, limit, l.store.ScanIndex, func(key string) string {
		return key + "\x00" // the next key after it
	})
}

// ScanIndexBack is ScanIndex walking the other way: up to limit entries in
// descending key order, starting with the last key less than before. The
// newest versions of a module with many (its newest pseudo-versions) sort
// last among its keys: the module after path is at path+"@\xff".
func (l *Log) ScanIndexBack(ctx context.Context, before string, limit int) (entries []IndexEntry, cut bool, err error) {
	return l.scanIndex(ctx, before, limit, l.store.ScanIndexBack, func(key string) string {
		return key // before is left out
	})
}

// scanIndex is ScanIndex and ScanIndexBack: scan reads the store from key
// at, and next is where the read after the one that ended at a key starts.
func (l *Log) scanIndex(ctx context.Context, at string, limit int,
	scan func(ctx context.Context, at string, limit int) ([]IndexEntry, error), next func(key string) string) ([]IndexEntry, bool, error) {
	limit = min(limit, MaxScanIndex)
	n := l.pub.Load().Tree.N // read first: what is indexed later lies beyond it
	var out []IndexEntry
	skipped := 0
	for len(out) < limit {
		if skipped >= maxScanBeyond {
			return out, true, nil
		}
		want := limit - len(out)
		if skipped > 0 {
			want = MaxScanIndex
		}
		entries, err := scan(ctx, at, want)
		if err != nil || len(entries) == 0 {
			return out, false, err
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
		at = next(last.Path + "@" + last.Version)
	}
	return out, false, nil
}

// maxScanBeyond bounds how many index entries beyond the published tree one
// ScanIndex call reads past.
const maxScanBeyond = 4 * MaxScanIndex

// ScanReleases returns up to limit (at most MaxScanIndex) entries of module
// path from key from: the first entry of each release vX.Y.Z within the
// published tree (see Store.ScanReleases), in key order, in one store read
// however many releases (on a database, one statement).
//
// A release whose first key lies beyond the published tree may have keys
// within it after that: the next read starts just after it. After
// maxReleaseReads reads it answers what it found, and says so (cut), as
// ScanIndex does.
func (l *Log) ScanReleases(ctx context.Context, path, from string, limit int) (entries []IndexEntry, cut bool, err error) {
	limit = min(limit, MaxScanIndex)
	n := l.pub.Load().Tree.N // read first: what is indexed later lies beyond it
	var out []IndexEntry
	for reads := 0; len(out) < limit; reads++ {
		if reads == maxReleaseReads {
			return out, true, nil
		}
		entries, err := l.store.ScanReleases(ctx, path, from, limit-len(out))
		if err != nil || len(entries) == 0 {
			return out, false, err
		}
		for _, e := range entries {
			key := e.Path + "@" + e.Version
			if e.ID >= n {
				from = key + "\x00"
				break
			}
			out, from = append(out, e), releaseEnd(key)
		}
	}
	return out, false, nil
}

// maxReleaseReads bounds the store reads of one ScanReleases call: one,
// and one after each release key beyond the published tree.
const maxReleaseReads = 5

// releaseEnd returns the key after every key of the release of key
// "path@version" (Store.ScanReleases).
func releaseEnd(key string) string {
	at := strings.IndexByte(key, '@') + 1
	if i := strings.IndexAny(key[at:], "-+"); i >= 0 {
		return key[:at+i] + "."
	}
	return key + "."
}
