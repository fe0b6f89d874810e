package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// A frontier is the right edge of a tree being rebuilt from its records:
// the roots of its maximal complete subtrees, one per set bit of its size.
// That is all tlog.StoredHashesForRecordHash reads to append a record and
// all tlog.TreeHash reads to compute the root, so an audit of any size
// keeps at most 64 hashes however large the log, and the state directory
// can resume from them.
type frontier struct {
	size  int64
	nodes [64]tlog.Hash // nodes[l]: the level-l subtree ending at size, if bit l of size is set
}

var _ tlog.HashReader = (*frontier)(nil)

// ReadHashes serves the stored hashes on the right edge and fails for any
// other: the tlog maths never asks for one when used as above.
func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		level, n := tlog.SplitStoredHashIndex(x)
		if f.size>>level&1 == 0 || n != f.size>>level-1 {
			return nil, fmt.Errorf("audit: hash (%d, %d) is not on the right edge of a tree of size %d", level, n, f.size)
		}
		out[i] = f.nodes[level]
	}
	return out, nil
}

// append adds the record with hash h (tlog.RecordHash of its text).
func (f *frontier) append(h tlog.Hash) error {
	hashes, err := tlog.StoredHashesForRecordHash(f.size, h, f)
	if err != nil {
		return err
	}
	// Record n completes one subtree per trailing one bit of n, hashes[l]
	// being the level-l one. Of these only the highest is on the right
	// edge of the tree of size n+1; the lower levels are inside it.
	top := len(hashes) - 1
	f.nodes[top] = hashes[top]
	clear(f.nodes[:top])
	f.size++
	return nil
}

// root is the hash of the tree of size f.size.
func (f *frontier) root() tlog.Hash {
	h, err := tlog.TreeHash(f.size, f)
	if err != nil {
		// ReadHashes cannot fail for the indexes TreeHash asks for.
		panic(err)
	}
	return h
}

// edgeIndexes are the stored-hash indexes of the right edge of a tree of
// size n, as seedFrontier reads them.
func edgeIndexes(n int64) (levels []int, indexes []int64) {
	for l := 63; l >= 0; l-- {
		if n>>l&1 == 1 {
			levels = append(levels, l)
			indexes = append(indexes, tlog.StoredHashIndex(l, n>>l-1))
		}
	}
	return levels, indexes
}

// seedFrontier reads the right edge of the tree of size n from r, usually
// a tlog.TileHashReader, so that an audit can start at n without the
// records before it.
func seedFrontier(n int64, r tlog.HashReader) (*frontier, error) {
	levels, indexes := edgeIndexes(n)
	hashes, err := r.ReadHashes(indexes)
	if err != nil {
		return nil, err
	}
	f := &frontier{size: n}
	for i, l := range levels {
		f.nodes[l] = hashes[i]
	}
	return f, nil
}

// marshal encodes f as its size (8 bytes, big-endian) followed by the
// hashes of its set bits, highest level first.
func (f *frontier) marshal() []byte {
	out := binary.BigEndian.AppendUint64(nil, uint64(f.size))
	levels, _ := edgeIndexes(f.size)
	for _, l := range levels {
		out = append(out, f.nodes[l][:]...)
	}
	return out
}

func unmarshalFrontier(data []byte) (*frontier, error) {
	if len(data) < 8 {
		return nil, errors.New("frontier too short")
	}
	f := &frontier{size: int64(binary.BigEndian.Uint64(data))}
	if f.size < 0 || len(data) != 8+bits.OnesCount64(uint64(f.size))*tlog.HashSize {
		return nil, fmt.Errorf("frontier of size %d has %d bytes", f.size, len(data))
	}
	levels, _ := edgeIndexes(f.size)
	for i, l := range levels {
		copy(f.nodes[l][:], data[8+i*tlog.HashSize:])
	}
	return f, nil
}
