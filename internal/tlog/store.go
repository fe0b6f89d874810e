package tlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// The bbolt layout. Every bucket is written only by the sequencer, in the
// same transaction as the signed tree head that covers it.
//
//	meta     format    "1"
//	         name      checksum database name
//	         vkey      verifier key the log was created with
//	         vkeys     verifier keys it signs with now, one per line
//	         head      latest signed tree head (a signed note)
//	records  id (8 bytes, big-endian)      -> record text (two go.sum lines)
//	index    "path@version"                -> id (8 bytes, big-endian)
//	tiles    level (1 byte) ‖ n (8 bytes)   -> hash tile data, 32 bytes per hash
//
// Only hash tiles are stored, not every stored hash: a tile of height 8 at
// level L holds the tree's hashes at level 8L, and x/mod's HashFromTile
// recomputes the levels in between. That is 32 bytes per record plus 1/256
// of that per level above, against about 64 for all stored hashes, and a
// tile request is one Get. Tiles only grow: the last tile of a level is
// rewritten wider as records arrive, so every narrower width a client ever
// saw is a prefix of the stored data and stays servable (PROTOCOL.md §1).
var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	bucketIndex   = []byte("index")
	bucketTiles   = []byte("tiles")

	keyFormat = []byte("format")
	keyName   = []byte("name")
	keyVKey   = []byte("vkey")  // the key the log was created with
	keyVKeys  = []byte("vkeys") // the keys it signs with now, one per line
	keyHead   = []byte("head")
)

// formatVersion is the layout above. Open refuses any other.
const formatVersion = "1"

// tileHeight is the only tile height the go command uses.
const tileHeight = 8

// tileBytes is the size of a full hash tile.
const tileBytes = tlog.HashSize << tileHeight

func idKey(id int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(id))
}

func tileKey(level int, n int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{byte(level)}, uint64(n))
}

// buckets are the log's buckets in one transaction.
type buckets struct {
	meta, records, index, tiles *bbolt.Bucket
}

func openBuckets(tx *bbolt.Tx) (buckets, error) {
	b := buckets{
		meta:    tx.Bucket(bucketMeta),
		records: tx.Bucket(bucketRecords),
		index:   tx.Bucket(bucketIndex),
		tiles:   tx.Bucket(bucketTiles),
	}
	if b.meta == nil || b.records == nil || b.index == nil || b.tiles == nil {
		return b, errors.New("database is missing a bucket: not a sumd log, or damaged")
	}
	// Records are appended with increasing keys: fill pages completely.
	b.records.FillPercent = 1
	return b, nil
}

// lookup returns the id recorded for key, if any.
func (b buckets) lookup(key string) (int64, bool, error) {
	v := b.index.Get([]byte(key))
	if v == nil {
		return 0, false, nil
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("index entry for %s is %d bytes, want 8", key, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// record returns the text of record id. The slice is valid only during the
// transaction.
func (b buckets) record(id int64) ([]byte, error) {
	v := b.records.Get(idKey(id))
	if v == nil {
		return nil, fmt.Errorf("record %d: %w", id, fs.ErrNotExist)
	}
	return v, nil
}

// tileReader reads hashes from the stored tiles, seeing the tiles changed by
// the current transaction first. It implements tlog.HashReader.
type tileReader struct {
	tiles getter            // stored tiles
	dirty map[string][]byte // tileKey -> data written in this transaction
}

// A getter reads stored values: a *bbolt.Bucket, or emptyBucket.
type getter interface{ Get(key []byte) []byte }

// emptyBucket is a getter with nothing stored.
type emptyBucket struct{}

func (emptyBucket) Get([]byte) []byte { return nil }

var _ tlog.HashReader = (*tileReader)(nil)

// tile returns the stored data of tile (level, n), possibly empty. The slice
// must not be modified.
func (r *tileReader) tile(level int, n int64) []byte {
	k := tileKey(level, n)
	if d, ok := r.dirty[string(k)]; ok {
		return d
	}
	return r.tiles.Get(k)
}

// ReadHashes returns the hashes at the given stored-hash indexes, computing
// the levels between tile levels with tlog.HashFromTile.
func (r *tileReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, index := range indexes {
		t := tlog.TileForIndex(tileHeight, index)
		data := r.tile(t.L, t.N)
		if len(data) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("hash %d is not stored (tile %s has %d hashes)", index, t.Path(), len(data)/tlog.HashSize)
		}
		t.W = len(data) / tlog.HashSize // a wider tile is fine for HashFromTile
		h, err := tlog.HashFromTile(t, data, index)
		if err != nil {
			return nil, fmt.Errorf("failed to read hash %d from tile %s: %w", index, t.Path(), err)
		}
		out[i] = h
	}
	return out, nil
}

// appendHash appends h, the hash at tree level 8*level and index i, to its
// tile. Hashes arrive strictly in order, so the tile must hold exactly the
// hashes before it.
func (r *tileReader) appendHash(level int, i int64, h tlog.Hash) error {
	n, off := i>>tileHeight, int(i&(1<<tileHeight-1))
	k := string(tileKey(level, n))
	data, ok := r.dirty[k]
	if !ok {
		data = append(make([]byte, 0, tileBytes), r.tiles.Get([]byte(k))...)
	}
	if len(data) != off*tlog.HashSize {
		return fmt.Errorf("tile %d/%d holds %d hashes, cannot append hash %d", level, n, len(data)/tlog.HashSize, off)
	}
	r.dirty[k] = append(data, h[:]...)
	return nil
}

// flush writes the changed tiles.
func (r *tileReader) flush() error {
	b, ok := r.tiles.(*bbolt.Bucket)
	if !ok {
		return errors.New("tileReader: no bucket to flush to")
	}
	for k, data := range r.dirty {
		if err := b.Put([]byte(k), data); err != nil {
			return fmt.Errorf("failed to store tile: %w", err)
		}
	}
	return nil
}
