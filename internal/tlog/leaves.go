package tlog

import (
	"cmp"
	"errors"
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

// A CorruptDataError says the store holds less than, or other than, what
// the published tree requires, where no record's hash can show it: a hash
// tile shorter than its width in the tree, a record's leaf hash missing,
// an index entry that is not an id. The database was damaged or changed
// behind sumd's back. Like a *CorruptRecordError it fails the request (a
// 500), is logged and counted (noteDamage), and the log carries on.
type CorruptDataError struct {
	What string
}

func (e *CorruptDataError) Error() string {
	return e.What + ": the database was damaged or changed behind sumd's back"
}

// Is makes it an ErrCorrupt.
func (e *CorruptDataError) Is(target error) bool { return target == ErrCorrupt }

// corruptData returns a *CorruptDataError of what format and args say.
func corruptData(format string, args ...any) error {
	return &CorruptDataError{What: fmt.Sprintf(format, args...)}
}

// noteDamage logs and counts err if it is a *CorruptDataError, as
// checkLeaf does a damaged record, and returns it. The Log calls it where
// such an error leaves it: a store or a tile reader has neither its logger
// nor its metrics.
func (l *Log) noteDamage(err error) error {
	var de *CorruptDataError
	if errors.As(err, &de) {
		cmp.Or(l.log, slog.Default()).Error("the database lacks, or holds malformed, data of the signed tree: it was damaged or tampered with", "err", err)
		l.metrics.corruptRecord()
	}
	return err
}

// checkLeaves compares each record read from the store, texts[i] of id
// ids[i] (nil: not held, skipped), with its leaf hash in the level-0 tile
// that tile returns (of the published tree, cut to its width). A mismatch
// is logged as corruption, counted, and answered with a
// *CorruptRecordError.
func (l *Log) checkLeaves(ids []int64, texts [][]byte, tile func(TileID) ([]byte, error)) error {
	return l.checkEachLeaf(ids, texts, tile, func(_ int, err error) error { return err })
}

// checkEachLeaf is checkLeaves that hands each record's damage to damaged,
// with its place in ids, and stops only if that returns an error; a
// failure to read a tile stops it at once.
func (l *Log) checkEachLeaf(ids []int64, texts [][]byte, tile func(TileID) ([]byte, error), damaged func(i int, err error) error) error {
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
			return corruptData("the leaf hash of record %d is not stored (tile 0/%d has %d hashes)", id, n, len(data)/tlog.HashSize)
		}
		if err := l.checkLeaf(id, texts[i], tlog.Hash(data[off:off+tlog.HashSize])); err != nil {
			if err := damaged(i, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkLeafHashes is checkLeaves for records read with their leaf hashes
// (LeafReader): leaves[i] is texts[i]'s, the zero hash if not stored.
func (l *Log) checkLeafHashes(ids []int64, texts [][]byte, leaves []tlog.Hash) error {
	for i, id := range ids {
		if texts[i] == nil {
			continue
		}
		if leaves[i] == (tlog.Hash{}) {
			// No record hashes to the zero hash: SHA-256 has no known
			// preimage of it.
			return corruptData("the leaf hash of record %d is not stored (tile 0/%d)", id, id>>tileHeight)
		}
		if err := l.checkLeaf(id, texts[i], leaves[i]); err != nil {
			return err
		}
	}
	return nil
}

// checkLeaf compares record id's text with its leaf hash.
func (l *Log) checkLeaf(id int64, text []byte, leaf tlog.Hash) error {
	if tlog.RecordHash(text) == leaf {
		return nil
	}
	cmp.Or(l.log, slog.Default()).Error("a record in the database does not hash to its leaf in the signed tree: the database was damaged or tampered with; it is not served",
		"id", id, "stored_text", string(text))
	l.metrics.corruptRecord()
	l.forget(nil, []int64{id}, nil)
	return &CorruptRecordError{ID: id}
}

// A WrongIndexError says the index names, for a module version, a record
// of another one: the index was damaged or edited behind sumd's back. The
// record itself may be sound. Like a *CorruptRecordError it fails the
// request (a 500): serving that record for the version, or comparing a
// proposed record with it (a false conflict), would be wrong, and the rest
// of the log is still sound. A full verification (VerifyFull) finds every
// such entry.
type WrongIndexError struct {
	Key string // the module version looked up, path@version
	ID  int64  // the record its index entry names
	Has string // the module version that record is of
}

func (e *WrongIndexError) Error() string {
	return fmt.Sprintf("the index names record %d for %s, a record of %s: the database was damaged or changed behind sumd's back", e.ID, e.Key, e.Has)
}

// Is makes it an ErrCorrupt.
func (e *WrongIndexError) Is(target error) bool { return target == ErrCorrupt }

// checkKeys compares the module version of each record read through the
// index, texts[i] of id ids[i], with keys[i], the version looked up. A
// mismatch is logged as corruption, counted, and answered with a
// *WrongIndexError. A mirror's entry may name an earlier record of the
// same version (an origin that logged it twice): that is no mismatch.
func (l *Log) checkKeys(ids []int64, keys []string, texts [][]byte) error {
	return l.checkEachKey(ids, keys, texts, func(_ int, err error) error { return err })
}

// checkEachKey is checkKeys that hands each mismatch to damaged, with its
// place in ids, and stops only if that returns an error.
func (l *Log) checkEachKey(ids []int64, keys []string, texts [][]byte, damaged func(i int, err error) error) error {
	for i, text := range texts {
		if has, _ := recordKey(text, false); has != keys[i] {
			cmp.Or(l.log, slog.Default()).Error("an index entry names the record of another module version: the database was damaged or tampered with; it is not served",
				"key", keys[i], "id", ids[i], "record_of", has)
			l.metrics.corruptRecord()
			l.forget([]string{keys[i]}, nil, nil)
			if err := damaged(i, &WrongIndexError{Key: keys[i], ID: ids[i], Has: has}); err != nil {
				return err
			}
		}
	}
	return nil
}

// forget drops what the log found wrong from the store's cache, if it
// keeps one (CachingStore): a repaired row is then read again.
func (l *Log) forget(keys []string, ids []int64, tiles []TileID) {
	if c, ok := l.store.(CachingStore); ok {
		c.Forget(keys, ids, tiles)
	}
}
