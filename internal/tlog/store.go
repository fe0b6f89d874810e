package tlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/mod/sumdb/tlog"
)

// A Store persists a log and reads it back. Everything that makes the log
// a log — batching, one record per module@version, the consistency proof
// before signing, signing, what readers may see — is the Log's; a Store
// only keeps bytes, and says truthfully whether it kept them.
//
// # Writes
//
// Create and Commit are the only writes. The Log calls them from its
// sequencer, one at a time per Log; several Logs (several sumd processes)
// may share one store, and the store serializes them by a compare-and-swap
// on the signed head (Batch.Prev).
//
// A nil error from a write means it is durable: a crash or power loss from
// then on keeps all of it. An error wrapping ErrNotPersisted means none of it
// was stored, definitely: the Log fails the requests and carries on.
// ErrHeadMoved (which wraps ErrNotPersisted) is the compare-and-swap loss:
// another writer changed the head first. Any other error from a write is
// ambiguous — the write may be wholly stored, or not at all, but a store
// must never leave it partly stored — and the Log stops for good (ErrFatal):
// only reopening, which re-reads and re-verifies the store, can tell.
//
// # Reads
//
// Reads may see data beyond the head the Log has published (another
// writer's commit, one of this process in flight — bbolt shows a commit
// before its fsync returns, see PROTOCOL.md §6 — or a mirror's staged data,
// see Log.Stage); the Log bounds every read by
// its published tree, so a store need not. Within the published tree data
// never changes: records and full tiles are immutable, and a partial tile
// only grows, so every narrower width stays a prefix of the stored bytes.
// The one exception is a partial mirror's: an Extend adds records of the
// held tree it lacked, and may point an index entry at an earlier record
// of the same module version (Batch.Records), which readers may see while
// the commit is in flight. That is harmless: each record is checked
// against its leaf in the published tree before it is served, and one a
// crash loses again is only not held, as before.
// Missing data is not an error: Lookup answers -1, ReadRecords and ReadTiles
// nil. An error is a failure to read (I/O, a lost connection).
//
// Load is the exception: its head may be published at once, so it must be
// durable. A store whose commits become visible before they are durable
// (bbolt) relies on the Log never calling Load while a Commit of its own is
// in flight, which the sequencer guarantees.
//
// The Log's own reads — its sequencer's: a batch's lookup of its keys
// before it appends them, the records and tiles it checks them against,
// a catch-up's tiles, a control operation's reads — come with a context
// marked by OwnRead (IsOwnRead). The reads clients ask for are as many as
// they send; a store whose reads wait for a limited resource (pgstore's
// connections) should give the marked ones resources of their own, as it
// does for Load and Commit, and never refuse them as busy, so that a
// flood of reads does not hold up the writer. They answer as any other
// read: a store may ignore the mark.
//
// # Concurrency
//
// Every method is safe for concurrent use. Reads run concurrently with each
// other and with a write. Slices passed in are not retained after a call
// returns, and slices returned belong to the caller.
type Store interface {
	// Load returns the log's metadata and latest signed head. A store that
	// holds no log yet answers ErrNoLog.
	Load(ctx context.Context) (State, error)

	// Create stores a new log: its metadata and first signed head (nil for
	// a mirror, which has no head until it copies one). It fails with
	// ErrLogExists, having changed nothing, if the store already holds a
	// log, and with an error wrapping ErrLeftoverData and ErrNotPersisted,
	// having changed nothing, if it holds no log but records, index
	// entries or tiles (a log whose metadata was deleted): the check and
	// the write are one transaction. The durability and error contract is
	// Commit's.
	Create(ctx context.Context, meta Meta, head []byte) error

	// Commit stores b atomically if the stored signed head is b.Prev byte
	// for byte, and otherwise stores nothing and fails with ErrHeadMoved.
	// The check and the writes must be one transaction: under a row lock,
	// or the only writer of the file. See Store for what its errors mean.
	Commit(ctx context.Context, b *Batch) error

	// Lookup returns, for each key ("path@version"), the id of its record,
	// or -1 if the index has no entry for it.
	Lookup(ctx context.Context, keys []string) ([]int64, error)

	// ReadRecords returns the texts of the records with the given ids, in
	// order; the entry of a record not stored is nil. The ids may be
	// scattered, but are usually one ascending run (a data tile).
	ReadRecords(ctx context.Context, ids []int64) ([][]byte, error)

	// ScanIndex returns up to limit index entries (at least one if there
	// are any) in ascending bytewise order of their keys, from the first
	// key not less than from: SQL's WHERE key >= $1 ORDER BY key LIMIT $2.
	// A key is split at its first "@".
	ScanIndex(ctx context.Context, from string, limit int) ([]IndexEntry, error)

	// ScanIndexBack is ScanIndex walking the other way: up to limit index
	// entries (at least one if there are any) in descending bytewise order
	// of their keys, from the last key less than before: SQL's WHERE key <
	// $1 ORDER BY key DESC LIMIT $2. The status page reads the newest
	// versions of a module with it, which sort last in a release's keys.
	ScanIndexBack(ctx context.Context, before string, limit int) ([]IndexEntry, error)

	// ScanReleases is ScanIndex over the keys of module path (those
	// starting with path+"@") that skips within each release: up to limit
	// index entries (at least one if there are any) in ascending bytewise
	// order of their keys, the first the first key of path not less than
	// from, and each next one the first key of path not less than the
	// previous one's release end. A key's release end is the key up to the
	// first "-" or "+" after its "@" (all of it if neither), then ".": the
	// keys of a release vX.Y.Z (itself, its pre-releases and
	// pseudo-versions, +incompatible) are those from path@vX.Y.Z up to
	// path@vX.Y.Z. ("." sorts after "+" and "-", before digits), so each
	// entry is the first key of its release from from on. The status page
	// lists a module's releases with it, which with ScanIndex took a read
	// per release. It costs an index seek per entry: the Log asks for at
	// most MaxScanIndex, and a database answers in one statement (a
	// recursive query of limit steps).
	ScanReleases(ctx context.Context, path, from string, limit int) ([]IndexEntry, error)

	// ReadTiles returns the stored data of the given hash tiles, in order,
	// at whatever width each is stored: 32 bytes per hash, a multiple of 32
	// up to 8192. The entry of a tile not stored is nil.
	ReadTiles(ctx context.Context, tiles []TileID) ([][]byte, error)

	// Extent reports how far the stored data reaches, whatever the head
	// says, and the head stored when it was read: the two must be read in
	// one transaction (or snapshot), so that a commit of another writer
	// never shows its records without its head. Open compares it with the
	// head, and refuses a primary whose store holds data beyond its tree:
	// the head was rolled back (or deleted and re-created) behind the
	// log's back, and signing on top of it would overwrite records clients
	// were given. It runs once per Open, so it may scan the index (keyed by
	// module version, not id); the rest must be index seeks.
	Extent(ctx context.Context) (Extent, error)

	// Close releases the store. The Log that opened it calls it once, on
	// Close; a store shared by several Logs may ignore it.
	Close() error
}

// ownReadKey is the context key OwnRead sets.
type ownReadKey struct{}

// OwnRead returns ctx marked as the context of the Log's own reads (see
// Store): the sequencer's.
func OwnRead(ctx context.Context) context.Context {
	return context.WithValue(ctx, ownReadKey{}, true)
}

// IsOwnRead reports whether ctx is marked by OwnRead.
func IsOwnRead(ctx context.Context) bool {
	own, _ := ctx.Value(ownReadKey{}).(bool)
	return own
}

// A RecordFinder is a Store that looks up index entries and reads the
// records they name in one read: a lookup's two reads in one transaction.
// The Log uses it when its store has it.
//
// FindRecords returns what Lookup(ctx, keys) returns, and for each id the
// text ReadRecords would return for it, read in the same transaction or
// snapshot: nil for -1 or a record not stored. Its contract is otherwise
// Lookup's and ReadRecords's.
type RecordFinder interface {
	FindRecords(ctx context.Context, keys []string) (ids []int64, texts [][]byte, err error)
}

// A LeafReader is a Store that reads records together with their leaf
// hashes, in one read, so that the Log checks each record it serves
// against the tree without copying the record's whole level-0 tile (8 KiB
// for a lookup's one record). The Log uses it when its store has it.
//
// ReadRecordLeaves returns what ReadRecords(ctx, ids) returns, and for
// each record returned the hash at its place in its level-0 tile as
// stored, read in the same transaction or snapshot; the zero hash if that
// tile does not reach it (and for a record not stored). Its contract is
// otherwise ReadRecords's and ReadTiles's.
type LeafReader interface {
	ReadRecordLeaves(ctx context.Context, ids []int64) (texts [][]byte, leaves []tlog.Hash, err error)
}

// An AuxStore is a store that also keeps auxiliary state for components
// beside the log (OCI sync progress), so that one database is a whole sumd
// instance. Auxiliary values are not part of the tree: never signed, never
// served. Stores need not implement it.
type AuxStore interface {
	// Aux returns the value stored under key, or nil if there is none.
	Aux(ctx context.Context, key string) ([]byte, error)
	// SetAux stores value under key, replacing any other. Its durability
	// and error contract is Commit's, with one exception on a shared store:
	// after a lost answer, a value another process stored since is
	// reported as ErrNotPersisted, though this one may have been stored
	// and then replaced (its effect is gone either way: the caller tries
	// again on what it reads). The Log calls it from the sequencer.
	SetAux(ctx context.Context, key string, value []byte) error
}

// A CachingStore keeps records, index entries and full hash tiles it read
// in memory (one whose reads cost a round trip, shared by several
// processes). Bytes read back are not trusted: when the Log finds a record
// that does not hash to its leaf (*CorruptRecordError), an index entry
// that names a record of another module version (*WrongIndexError), or a
// hash tile that does not hash to the signed tree (*CorruptTileError), it
// calls Forget with them, so that once an operator repairs the rows the
// store reads them again instead of answering from its cache until
// restarted. A tile is found wrong with those it was checked through on
// its way up to the tree's root, any of which may be the damaged one: the
// Log names them all. Forget drops the index entries of keys, the records
// of ids and the tiles of tiles, if cached; it is safe for concurrent use
// with every other method. Stores need not implement it.
type CachingStore interface {
	Store
	Forget(keys []string, ids []int64, tiles []TileID)
}

// Meta is what a store holds about its log besides the tree.
type Meta struct {
	// Name is the checksum database name.
	Name string
	// VKeys are the verifier keys of the log's signing keys, in signing
	// order: one, or two during a key rotation. A mirror keeps the origin's
	// verifier keys as it was created with, for the record.
	VKeys []string
	// Mirror marks a store holding another log's data: signed heads,
	// tiles, and possibly only some records. It opens verifier-only
	// (Options.VerifierKeys) and never with a signing key, since a sparse
	// index cannot keep one record per module@version.
	Mirror bool
}

// State is what Load returns.
type State struct {
	Meta Meta
	// Head is the latest signed tree head; nil only in a mirror that has
	// none yet.
	Head []byte
	// Lost is, in a shared store, the value stored under AuxLostHead: a
	// head a process published that the store lost; nil if none.
	Lost []byte
}

// A Batch is one atomic change to a log: new records with their index
// entries and tile hashes, and the signed head that covers them; or a new
// signing key set with the head re-signed by it. The Log builds it; a
// store writes it as given, checking only Prev.
type Batch struct {
	// Prev is the signed head the batch extends, as the Log last loaded or
	// committed it (nil: a mirror's first head). A store compares it byte
	// for byte with the stored head, which covers tree size, root and the
	// signatures (a key rotation changes only those); a nil or empty head
	// equals none.
	Prev []byte
	// Head is the new signed head; Tree is the tree it signs, for stores
	// that keep size and root beside it. Copy, and a mirror's staging
	// commit (Log.Stage), commit records and tiles beyond a head with Head
	// equal to Prev: nil for a log being created, or a mirror that holds
	// no head yet.
	Head []byte
	Tree tlog.Tree
	// Records are the new records in ascending id order. A mirror's may
	// have gaps and may come with no Key (not indexed). A Key already
	// indexed under a larger id moves to the record's id: a mirror that
	// learns an earlier record of a module version the origin logged twice
	// indexes the first (Log.indexFirst). The Log never moves an entry to
	// a larger id, and a store may refuse that as data its head does not
	// explain (ErrNotPersisted).
	Records []StoredRecord
	// Tiles are the hash tiles the batch changes, each with its whole new
	// data, which extends what is stored (a tile only grows).
	Tiles []Tile
	// VKeys, if not nil, replace Meta.VKeys.
	VKeys []string
}

// Extent is what Store.Extent reports: the head, and how far each kind of
// data reaches, as one consistent read.
type Extent struct {
	// Head is the stored signed head (nil or empty for none), as Load
	// would have returned it at the same moment.
	Head []byte
	// Records is one more than the highest record id stored, 0 if none.
	Records int64
	// Indexed is one more than the highest id an index entry names, 0 if
	// none.
	Indexed int64
	// Tiles has, for each tile level that holds any, the stored tile of
	// that level with the highest N, and its width in hashes (W).
	Tiles []TileExtent
}

// A TileExtent is the last stored tile of a level and its width.
type TileExtent struct {
	TileID
	W int
}

// A StoredRecord is one record as a store keeps it.
type StoredRecord struct {
	ID   int64
	Key  string // "path@version" for the index, or "" for no index entry
	Text []byte // the two go.sum lines
}

// A TileID names a stored hash tile of height 8: the tree's hashes at
// level 8L, indexes 256N to 256N+255.
type TileID struct {
	L int
	N int64
}

// A Tile is a hash tile with its data, 32 bytes per hash, at most 256.
type Tile struct {
	TileID
	Data []byte
}

// Store errors.
var (
	// ErrNoLog is Load's answer for a store that holds no log yet.
	ErrNoLog = fmt.Errorf("store holds no log: %w", fs.ErrNotExist)
	// ErrLogExists is Create's answer for a store that already holds one.
	ErrLogExists = fmt.Errorf("store already holds a log: %w", fs.ErrExist)
	// ErrNotPersisted marks a failed write of which nothing was stored.
	ErrNotPersisted = errors.New("nothing was stored")
	// ErrLeftoverData is Create's answer for a store that holds no log but
	// holds records, index entries or tiles: its log's metadata and head
	// were deleted. A new log over them would reuse their ids, and clients
	// that saw the old one would be shown a second history under its name.
	ErrLeftoverData = fmt.Errorf("store holds records, index entries or tiles but no log (its head was deleted): "+
		"do not create a new log over them; restore the database (docs/mirrors.md, \"Restore from a mirror\"): %w", ErrCorrupt)
	// ErrUnexplainedData is a store's answer to a write that meets data
	// its head does not explain where the batch writes (a record with
	// another text, an index entry at a smaller id, a tile with other
	// hashes): left by a copy that did not verify, or a head rolled back
	// behind the log's back. Nothing was stored, and writing again meets
	// the same data. A store may refuse such a write instead of
	// overwriting (Batch.Records).
	ErrUnexplainedData = fmt.Errorf("the database holds data its head does not explain: %w", ErrNotPersisted)
	// ErrHeadMoved is Commit's answer when the stored head is not the
	// batch's Prev: another writer committed first. Nothing was stored.
	ErrHeadMoved = fmt.Errorf("signed head changed by another writer: %w", ErrNotPersisted)
)

// tileHeight is the only tile height the go command uses.
const tileHeight = 8

// tileBytes is the size of a full hash tile.
const tileBytes = tlog.HashSize << tileHeight

// treeReaching returns the size of the smallest tree in which tile id has
// w hashes, or 0 if no tree of fewer than 2⁶² records reaches it.
func treeReaching(id TileID, w int) int64 {
	const maxTree = 1 << 62
	if id.L < 0 || id.L*tileHeight >= 62 || id.N < 0 || id.N > maxTree>>tileHeight {
		return 0
	}
	n := id.N<<tileHeight + int64(w) // hashes at level 8L
	if n > maxTree>>(id.L*tileHeight) {
		return 0
	}
	return n << (id.L * tileHeight)
}

// tileWidth returns how many hashes the tree of size n has in tile id.
func tileWidth(id TileID, n int64) int {
	if id.L < 0 || id.L*tileHeight >= 63 || id.N < 0 {
		return 0
	}
	count := n >> (id.L * tileHeight) // hashes at level 8L
	if id.N > count>>tileHeight {
		return 0
	}
	return int(min(count-id.N<<tileHeight, 1<<tileHeight))
}
