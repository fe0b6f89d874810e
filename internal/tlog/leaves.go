package tlog

import (
	"cmp"
	"fmt"
	"log/slog"

	"golang.org/x/mod/sumdb/tlog"
)

// A CorruptRecordError says a record read from the store does not hash to
// its leaf in the published tree: the record was changed in the database
// (damaged, or tampered with behind sumd's back). The log never serves
// such a record, nor compares a proposed one with it (which would refuse
// the genuine hashes as a conflict): the request fails with it, a 500.
type CorruptRecordError struct {
	ID int64
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("record %d as stored does not hash to its leaf in the signed tree: the database was damaged or changed behind sumd's back", e.ID)
}

// Is makes it an ErrCorrupt.
func (e *CorruptRecordError) Is(target error) bool { return target == ErrCorrupt }

// checkLeaves compares each record read from the store, texts[i] of id
// ids[i] (nil: not held, skipped), with its leaf hash in the level-0 tile
// that tile returns (of the published tree, cut to its width). A mismatch
// is logged as corruption, counted, and answered with a
// *CorruptRecordError.
func (l *Log) checkLeaves(ids []int64, texts [][]byte, tile func(TileID) ([]byte, error)) error {
	tiles := map[int64][]byte{} // level-0 tiles read, by N
	for i, id := range ids {
		if texts[i] == nil {
			continue
		}
		n := id >> tileHeight
		data, ok := tiles[n]
		if !ok {
			var err error
			if data, err = tile(TileID{0, n}); err != nil {
				return fmt.Errorf("failed to read the leaf hash of record %d: %w", id, err)
			}
			tiles[n] = data
		}
		off := int(id-n<<tileHeight) * tlog.HashSize
		if off+tlog.HashSize > len(data) {
			return fmt.Errorf("the leaf hash of record %d is not stored (tile 0/%d has %d hashes)", id, n, len(data)/tlog.HashSize)
		}
		if tlog.RecordHash(texts[i]) != tlog.Hash(data[off:off+tlog.HashSize]) {
			cmp.Or(l.log, slog.Default()).Error("a record in the database does not hash to its leaf in the signed tree: the database was damaged or tampered with; it is not served",
				"id", id, "stored_text", string(texts[i]))
			l.metrics.corruptRecord()
			return &CorruptRecordError{ID: id}
		}
	}
	return nil
}
