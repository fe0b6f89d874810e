package tlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// A VerifyMode says how much of the stored log Open re-verifies against the
// signed tree head before serving it.
type VerifyMode int

const (
	// VerifyTail recomputes the root from the stored tiles and re-hashes the
	// last data tile's records: it catches a head that does not match the
	// tree and a torn tail, in time independent of the log's size.
	VerifyTail VerifyMode = iota
	// VerifyFull re-parses and re-hashes every record, rebuilds every tile
	// and checks the index entry of every record.
	VerifyFull
)

// ErrCorrupt marks a database whose stored tree does not match its signed
// head. Serving it could show clients an inconsistent history, so Open
// refuses.
var ErrCorrupt = errors.New("database does not match its signed tree head")

// load initialises a new database, checks that the key is the log's, and
// verifies the stored tree against the signed head.
func (l *Log) load(keys []*Key, mode VerifyMode) error {
	if err := l.db.Update(func(tx *bbolt.Tx) error { return l.initialise(tx, keys) }); err != nil {
		return err
	}
	return l.db.View(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		ks, err := checkMeta(b, keys)
		if err != nil {
			return err
		}
		l.keys.Store(&ks)
		if l.tree, err = ks.openTree(b.meta.Get(keyHead)); err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if err := verifyTail(b, l.tree); err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if mode == VerifyFull {
			if err := verifyFull(b, l.tree); err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
		}
		l.log.Debug("opened checksum database", "name", ks.name(), "tree_size", l.tree.N, "verified", mode.String())
		return nil
	})
}

func (m VerifyMode) String() string {
	if m == VerifyFull {
		return "full"
	}
	return "tail"
}

// initialise creates the buckets, metadata and the signed empty tree of a
// new database. It does nothing to an existing one.
func (l *Log) initialise(tx *bbolt.Tx, keys keySet) error {
	if tx.Bucket(bucketMeta) != nil {
		return nil
	}
	for _, k := range keys[1:] {
		if k.Name() != keys.name() {
			return fmt.Errorf("keys for two names, %q and %q: a log has one name", keys.name(), k.Name())
		}
	}
	for _, name := range [][]byte{bucketMeta, bucketRecords, bucketIndex, bucketTiles} {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("failed to create bucket %s: %w", name, err)
		}
	}
	head, err := keys.signTree(emptyTree())
	if err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	for k, v := range map[string]string{
		string(keyFormat): formatVersion,
		string(keyName):   keys.name(),
		string(keyVKey):   keys[0].VerifierKey(),
		string(keyVKeys):  strings.Join(keys.vkeys(), "\n"),
		string(keyHead):   string(head),
	} {
		if err := meta.Put([]byte(k), []byte(v)); err != nil {
			return fmt.Errorf("failed to store %s: %w", k, err)
		}
	}
	l.log.Warn("created a new checksum database", "name", keys.name(), "vkeys", strings.Join(keys.vkeys(), " "))
	return nil
}

// checkMeta refuses a database of another format or name, and returns the
// log's signing keys from those given, refusing a missing or a foreign key.
func checkMeta(b buckets, given []*Key) (keySet, error) {
	if f := string(b.meta.Get(keyFormat)); f != formatVersion {
		return nil, fmt.Errorf("database format %q is not supported by this sumd (want %q)", f, formatVersion)
	}
	name := string(b.meta.Get(keyName))
	for _, k := range given {
		if k.Name() != name {
			return nil, fmt.Errorf("database holds the log %q but the signing key is for %q: use that log's key", name, k.Name())
		}
	}
	return pick(storedVKeys(b), given)
}

// verifyTail checks the record count, the root hash, and the last data tile.
func verifyTail(b buckets, tree tlog.Tree) error {
	last, _ := b.records.Cursor().Last()
	switch {
	case tree.N == 0 && last != nil:
		return errors.New("records stored beyond the signed tree of size 0")
	case tree.N > 0 && (len(last) != 8 || int64(binary.BigEndian.Uint64(last)) != tree.N-1):
		return fmt.Errorf("last stored record is %x, want %d", last, tree.N-1)
	}
	r := &tileReader{tiles: b.tiles}
	root, err := tlog.TreeHash(tree.N, r)
	if err != nil {
		return err
	}
	if root != tree.Hash {
		return fmt.Errorf("stored tiles give root %v for tree %d, signed head says %v", root, tree.N, tree.Hash)
	}
	for id := tree.N &^ (1<<tileHeight - 1); id < tree.N; id++ {
		if err := checkRecordHash(b, r, id); err != nil {
			return err
		}
	}
	return nil
}

// checkRecordHash checks that record id hashes to its stored leaf hash.
func checkRecordHash(b buckets, r *tileReader, id int64) error {
	text, err := b.record(id)
	if err != nil {
		return err
	}
	h, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, id)})
	if err != nil {
		return err
	}
	if tlog.RecordHash(text) != h[0] {
		return fmt.Errorf("record %d does not match its stored hash", id)
	}
	return nil
}

// verifyFull rebuilds every tile from the records and compares it with the
// stored one, checking each record and its index entry on the way.
func verifyFull(b buckets, tree tlog.Tree) error {
	rebuilt := &tileReader{tiles: emptyBucket{}, dirty: map[string][]byte{}}
	c := b.records.Cursor()
	id := int64(0)
	for k, text := c.First(); k != nil; k, text = c.Next() {
		if !bytes.Equal(k, idKey(id)) || id >= tree.N {
			return fmt.Errorf("unexpected record key %x after record %d", k, id-1)
		}
		if err := checkIndexed(b, id, text); err != nil {
			return err
		}
		hashes, err := tlog.StoredHashes(id, text, rebuilt)
		if err != nil {
			return err
		}
		for level := 0; level < len(hashes); level += tileHeight {
			if err := rebuilt.appendHash(level/tileHeight, id>>level, hashes[level]); err != nil {
				return err
			}
		}
		if err := compareTiles(b, rebuilt, false); err != nil {
			return err
		}
		id++
	}
	if id != tree.N {
		return fmt.Errorf("found %d records, signed tree has %d", id, tree.N)
	}
	if err := compareTiles(b, rebuilt, true); err != nil {
		return err
	}
	return checkIndexSize(b, tree.N)
}

// checkIndexed checks that record id is well-formed and indexed under its key.
func checkIndexed(b buckets, id int64, text []byte) error {
	r, err := gosum.Parse(text)
	if err != nil {
		return fmt.Errorf("record %d: %w", id, err)
	}
	got, ok, err := b.lookup(r.Key())
	if err != nil || !ok || got != id {
		return fmt.Errorf("record %d (%s) is not indexed under its id (index: %d, %v, %v)", id, r.Key(), got, ok, err)
	}
	return nil
}

// compareTiles compares rebuilt tiles with the stored ones and forgets them:
// the full ones as they complete, and at the end the partial ones too.
func compareTiles(b buckets, rebuilt *tileReader, final bool) error {
	for k, data := range rebuilt.dirty {
		if len(data) < tileBytes && !final {
			continue
		}
		if stored := b.tiles.Get([]byte(k)); !bytes.Equal(stored, data) {
			return fmt.Errorf("stored tile %x differs from the one rebuilt from the records", k)
		}
		delete(rebuilt.dirty, k)
	}
	return nil
}

// checkIndexSize checks that the index has one entry per record.
func checkIndexSize(b buckets, n int64) error {
	var count int64
	err := b.index.ForEach(func(k, v []byte) error {
		count++
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) >= n {
			return fmt.Errorf("index entry %s names record %x, beyond the tree", k, v)
		}
		return nil
	})
	if err == nil && count != n {
		err = fmt.Errorf("index has %d entries for %d records", count, n)
	}
	return err
}
