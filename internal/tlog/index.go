package tlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
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
// beyond the signed tree are left out, so a caller never shows a record
// that no signed tree head covers yet.
//
// It serves listings by module path (the status page's search): the
// versions of path are the keys starting with path+"@", and the module
// after path is at path+"@\xff". A store other than bbolt serves it as an
// ordered range scan (SQL: WHERE key >= $1 ORDER BY key LIMIT $2).
func (l *Log) ScanIndex(ctx context.Context, from string, limit int) ([]IndexEntry, error) {
	limit = min(limit, MaxScanIndex)
	if limit <= 0 {
		return nil, nil
	}
	tree, err := l.Tree(ctx) // read first: what is indexed later lies beyond it
	if err != nil {
		return nil, err
	}
	var out []IndexEntry
	err = l.view(func(b buckets) error {
		c := b.index.Cursor()
		for k, v := c.Seek([]byte(from)); k != nil && len(out) < limit; k, v = c.Next() {
			path, version, ok := bytes.Cut(k, []byte("@"))
			if !ok || len(v) != 8 {
				return fmt.Errorf("malformed index entry %q", k)
			}
			id := int64(binary.BigEndian.Uint64(v))
			if id >= tree.N {
				continue
			}
			out = append(out, IndexEntry{Path: string(path), Version: string(version), ID: id})
		}
		return nil
	})
	return out, err
}
