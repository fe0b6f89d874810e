package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/mod/sumdb/tlog"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// bundleFill is Import's third pass, for a full mirror and a full bundle
// that starts below the tree the mirror held: it stores the bundle's
// records of that tree the mirror lacks, as the follower's addOld does,
// with Extend to the published head, which verifies each against its
// leaf in the mirror's own tiles (the first pass proved the bundle's tree
// consistent with them). A full mirror lacks records only if something
// lost them: a bundle stripped of records, imported before Import refused
// those.
type bundleFill struct {
	ctx     context.Context
	l       *itlog.Log
	below   int64 // the tree size the mirror held: the records to fill are below it
	step    int   // records per Extend
	batch   map[int64][]byte
	filled  int // records stored
	commits int
	// verified is the first pass's header and head: the third pass reads
	// the same file, which may have been changed in place since.
	verified     BundleHeader
	verifiedHead []byte
	// first, if set, runs once before the first records are stored
	// (Import's markPrivate).
	first func() error
}

func (f *bundleFill) header(h BundleHeader, head []byte, _ tlog.Tree) error {
	if !bytes.Equal(h.marshal(), f.verified.marshal()) || !bytes.Equal(head, f.verifiedHead) {
		return errChanged
	}
	return nil
}

func (f *bundleFill) skeleton(map[tlog.Tile][]byte) error { return nil }
func (f *bundleFill) leaf(tlog.Tile, []byte) error        { return nil }

func (f *bundleFill) records(n int64, recs map[int64][]byte, ids []int64) error {
	if len(ids) == 0 {
		// The first pass refused a full bundle's records entry without
		// the records of its tile.
		return fmt.Errorf("%w (entry %s holds no record)", errChanged, recordsEntry(n))
	}
	lo, hi := ids[0], min(ids[len(ids)-1]+1, f.below)
	if lo >= hi {
		return nil
	}
	// The common case, every one held, in one read.
	_, err := f.l.ReadRecords(f.ctx, lo, hi-lo)
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, id := range ids {
		if id >= hi {
			break
		}
		_, err := f.l.ReadRecords(f.ctx, id, 1)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			f.batch[id] = recs[id]
		case err != nil:
			return err
		}
	}
	if len(f.batch) >= f.step {
		return f.flush()
	}
	return nil
}

// flush stores the records gathered.
func (f *bundleFill) flush() error {
	if len(f.batch) == 0 {
		return nil
	}
	if f.first != nil {
		if err := f.first(); err != nil {
			return err
		}
		f.first = nil
	}
	if err := f.l.Extend(f.ctx, itlog.Extension{Head: f.l.Published().Signed, Records: f.batch}); err != nil {
		return err
	}
	f.filled += len(f.batch)
	f.commits++
	f.batch = map[int64][]byte{}
	return nil
}
