package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/tlog"
)

// tileBytes is the size of a full hash tile, which never changes again.
const tileBytes = xtlog.HashSize << 8

// The reads of several keys or ids: each element of the array probes the
// primary key (see the package doc for why not a join). TestReadPlans
// checks that PostgreSQL plans them so.
const (
	lookupSQL = `SELECT q.key, i.id FROM unnest($1::bytea[]) AS q(key)
		CROSS JOIN LATERAL (SELECT id FROM sumd_index WHERE key = q.key OFFSET 0) AS i`
	readTilesSQL = `SELECT q.level, q.n, t.data FROM unnest($1::smallint[], $2::bigint[]) AS q(level, n)
		CROSS JOIN LATERAL (SELECT data FROM sumd_tiles WHERE level = q.level AND n = q.n OFFSET 0) AS t`
	readRecordsSQL = `SELECT q.id, r.text FROM unnest($1::bigint[]) AS q(id)
		CROSS JOIN LATERAL (SELECT text FROM sumd_records WHERE id = q.id OFFSET 0) AS r`
)

// errReadsWaiting is the cause of a read refused because too many wait.
var errReadsWaiting = errors.New("too many reads are waiting for a connection to the PostgreSQL database " +
	"(sumd_postgres_reads_refused_total counts them; raise pool_max_conns in the URL if the database keeps up)")

// reader returns the pool a read under ctx runs on, with the function to
// call once the statement's rows are read. The log's own reads
// (tlog.IsOwnRead: its writer's lookup of a batch's keys, the records and
// tiles it checks) take the log's own connections, as its commits do,
// and are never refused. The others are admitted to the read pool: past
// its connections they wait for one, up to MaxWaitingReads of them; a read
// beyond fails at once, a *tlog.UnavailableError (503 with Retry-After)
// that does not mark the database lost: it is busy, not out of reach.
func (s *Store) reader(ctx context.Context) (*pgxpool.Pool, func(), error) {
	if tlog.IsOwnRead(ctx) {
		return s.ctl, func() {}, nil
	}
	if s.reads.Add(1) > s.maxReads {
		s.reads.Add(-1)
		s.refused.Add(1)
		if now, last := time.Now().UnixNano(), s.warned.Load(); now-last > int64(time.Minute) && s.warned.CompareAndSwap(last, now) {
			s.log.Warn("answering 503 to reads: too many wait for a connection to the PostgreSQL database (logged at most once a minute)",
				"waiting", s.opts.MaxWaitingReads, "connections", s.pool.Config().MaxConns)
		}
		return nil, nil, &tlog.UnavailableError{Err: errReadsWaiting}
	}
	return s.pool, func() { s.reads.Add(-1) }, nil
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Lookup reads the index entries of keys: from the cache, and the others
// in one statement.
func (s *Store) Lookup(ctx context.Context, keys []string) ([]int64, error) {
	ids := make([]int64, len(keys))
	var missing []string
	for i, k := range keys {
		id, ok := s.cache.index.Get(k)
		if !ok {
			id = -1
			missing = append(missing, k)
		}
		ids[i] = id
	}
	if len(missing) == 0 {
		return ids, nil
	}
	var found map[string]int64
	durable, err := s.readMissing(ctx, "look up module versions", func(ctx context.Context, q querier) (err error) {
		found, err = lookup(ctx, q, missing)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		if id, ok := found[k]; ok {
			ids[i] = id
			s.cache.addIndex(k, id, durable)
		}
	}
	return ids, nil
}

// readMissing runs read, the statement reading what the caches lack for
// Lookup, ReadRecords or ReadTiles (what it does, for its error), on a
// reader's connection. It returns the bound of what may be cached of the
// rows read: the tree size read before the statement, since a head read
// meanwhile may not cover them (see addIndex).
func (s *Store) readMissing(ctx context.Context, what string, read func(context.Context, querier) error) (durable int64, err error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	pool, done, err := s.reader(ctx)
	if err != nil {
		return 0, err
	}
	durable = s.cache.size.Load()
	err = read(ctx, pool)
	done()
	if err != nil {
		return 0, s.fail(what, err)
	}
	s.up()
	return durable, nil
}

// Forget drops the index entries of keys, the records of ids and the
// tiles of tiles from the cache (tlog.CachingStore): the log found them
// wrong.
func (s *Store) Forget(keys []string, ids []int64, tiles []tlog.TileID) {
	s.cache.forget(keys, ids)
	for _, t := range tiles {
		s.tiles.Remove(t)
	}
}

// ReadRecords reads records: from the cache, and the others in one
// statement.
func (s *Store) ReadRecords(ctx context.Context, ids []int64) ([][]byte, error) {
	out := make([][]byte, len(ids))
	var missing []int64
	var at []int // index in ids of each missing id
	for i, id := range ids {
		if text, ok := s.cache.records.Get(id); ok {
			out[i] = bytes.Clone(text) // the caller owns what it gets
			continue
		}
		missing, at = append(missing, id), append(at, i)
	}
	if len(missing) == 0 {
		return out, nil
	}
	var texts [][]byte // in the order of missing
	durable, err := s.readMissing(ctx, "read records", func(ctx context.Context, q querier) (err error) {
		texts, err = readRecords(ctx, q, missing)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, text := range texts {
		if text != nil {
			out[at[i]] = text
			s.cache.addRecord(missing[i], text, durable)
		}
	}
	return out, nil
}

// ScanIndex lists index entries in key order.
func (s *Store) ScanIndex(ctx context.Context, from string, limit int) ([]tlog.IndexEntry, error) {
	return s.scanIndex(ctx, `SELECT key, id FROM sumd_index WHERE key >= $1 ORDER BY key LIMIT $2`, from, limit)
}

// ScanIndexBack lists index entries in descending key order.
func (s *Store) ScanIndexBack(ctx context.Context, before string, limit int) ([]tlog.IndexEntry, error) {
	return s.scanIndex(ctx, `SELECT key, id FROM sumd_index WHERE key < $1 ORDER BY key DESC LIMIT $2`, before, limit)
}

// ScanReleases lists the first key of each release of a module: one index
// seek each, in one statement (scanReleasesSQL).
func (s *Store) ScanReleases(ctx context.Context, path, from string, limit int) ([]tlog.IndexEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	// The keys of path are those from path+"@" up to path+"A" ("@" + 1).
	return s.scanIndex(ctx, scanReleasesSQL, max(from, path+"@"), []byte(path+"A"), limit, len(path)+1)
}

// scanReleasesSQL walks the index from key $1 up to key $2, at most $3
// steps, each to the first key not less than the previous key's release
// end (tlog.Store.ScanReleases): its first $4 bytes ("path@") and its
// version up to the first "-" or "+", then ".". The loose index scan of
// PostgreSQL's wiki: a recursive query whose every step is one seek.
const scanReleasesSQL = `
WITH RECURSIVE r(key, id, n) AS (
	(SELECT key, id, 1 FROM sumd_index WHERE key >= $1 AND key < $2 ORDER BY key LIMIT 1)
	UNION ALL
	SELECT i.key, i.id, r.n + 1
	FROM r,
		LATERAL (SELECT substring(r.key FROM $4 + 1) AS v) x,
		LATERAL (SELECT key, id FROM sumd_index
			WHERE key >= substring(r.key FOR $4 - 1 + least(
				position('\x2d'::bytea IN x.v || '\x2d'::bytea),
				position('\x2b'::bytea IN x.v || '\x2b'::bytea))) || '\x2e'::bytea
			AND key < $2
			ORDER BY key LIMIT 1) i
	WHERE r.n < $3
)
SELECT key, id FROM r ORDER BY key`

// scanIndex runs query, a range scan of the index from key from with
// limit (or the further arguments given instead).
func (s *Store) scanIndex(ctx context.Context, query, from string, args ...any) ([]tlog.IndexEntry, error) {
	pool, done, err := s.reader(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rows, err := pool.Query(ctx, query, append([]any{[]byte(from)}, args...)...)
	if err != nil {
		return nil, s.fail("scan the index", err)
	}
	var out []tlog.IndexEntry
	var key []byte
	var id int64
	_, err = pgx.ForEachRow(rows, []any{&key, &id}, func() error {
		path, version, ok := bytes.Cut(key, []byte("@"))
		if !ok {
			return fmt.Errorf("malformed index entry %q", key)
		}
		out = append(out, tlog.IndexEntry{Path: string(path), Version: string(version), ID: id})
		return nil
	})
	if err != nil {
		return nil, s.fail("scan the index", err)
	}
	s.up()
	return out, nil
}

// ReadTiles reads tiles, full ones from the cache when it holds them, the
// others in one statement. A full tile read is cached only if a head this
// store read or committed covers it, as records are (see recordCache):
// beyond, it may be another writer's commit that is on the primary only
// (the tile may be partial in the published tree), or a staging.
func (s *Store) ReadTiles(ctx context.Context, tiles []tlog.TileID) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	var levels []int16
	var ns []int64
	for i, t := range tiles {
		if d, ok := s.tiles.Get(t); ok {
			out[i] = bytes.Clone(d) // the caller owns what it gets
			continue
		}
		levels, ns = append(levels, int16(t.L)), append(ns, t.N)
	}
	if len(levels) == 0 {
		return out, nil
	}
	var found map[tlog.TileID][]byte
	durable, err := s.readMissing(ctx, "read tiles", func(ctx context.Context, q querier) (err error) {
		found, err = readTileData(ctx, q, levels, ns)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, t := range tiles {
		if out[i] != nil {
			continue
		}
		out[i] = found[t]
		if len(out[i]) == tileBytes && fullIn(t, durable) {
			s.tiles.Add(t, bytes.Clone(out[i]))
		}
	}
	return out, nil
}

// fullIn reports whether tile t is full in a tree of n records: its level
// (8·t.L) holds n >> 8·t.L hashes.
func fullIn(t tlog.TileID, n int64) bool {
	if t.L < 0 || t.L*8 >= 63 || t.N < 0 || t.N >= 1<<54 {
		return false
	}
	return n>>(8*t.L) >= (t.N+1)<<8
}

// Aux reads an auxiliary value.
func (s *Store) Aux(ctx context.Context, key string) ([]byte, error) {
	pool, done, err := s.reader(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var v []byte
	err = pool.QueryRow(ctx, `SELECT value FROM sumd_aux WHERE key = $1`, key).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err):
		return nil, nil
	case err != nil:
		return nil, s.fail("read "+key, err)
	}
	s.up()
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

func readRecords(ctx context.Context, q querier, ids []int64) ([][]byte, error) {
	rows, err := q.Query(ctx, readRecordsSQL, ids)
	if err != nil {
		return nil, err
	}
	found := make(map[int64][]byte, len(ids))
	var id int64
	var text []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &text}, func() error {
		found[id] = bytes.Clone(text)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = found[id]
	}
	return out, nil
}

// lookup reads the index entries of keys; a key not indexed is absent.
func lookup(ctx context.Context, q querier, keys []string) (map[string]int64, error) {
	bkeys := make([][]byte, len(keys))
	for i, k := range keys {
		bkeys[i] = []byte(k)
	}
	rows, err := q.Query(ctx, lookupSQL, bkeys)
	if err != nil {
		return nil, err
	}
	found := map[string]int64{}
	var key []byte
	var id int64
	_, err = pgx.ForEachRow(rows, []any{&key, &id}, func() error {
		found[string(key)] = id
		return nil
	})
	return found, err
}

// readTileData reads the tiles (levels[i], ns[i]); a tile not stored is
// absent.
func readTileData(ctx context.Context, q querier, levels []int16, ns []int64) (map[tlog.TileID][]byte, error) {
	rows, err := q.Query(ctx, readTilesSQL, levels, ns)
	if err != nil {
		return nil, err
	}
	found := map[tlog.TileID][]byte{}
	var level int16
	var n int64
	var data []byte
	_, err = pgx.ForEachRow(rows, []any{&level, &n, &data}, func() error {
		found[tlog.TileID{L: int(level), N: n}] = bytes.Clone(data)
		return nil
	})
	return found, err
}

// readTiles reads b's tiles as stored.
func readTiles(ctx context.Context, q querier, b *tlog.Batch) (map[tlog.TileID][]byte, error) {
	levels, ns := make([]int16, len(b.Tiles)), make([]int64, len(b.Tiles))
	for i, t := range b.Tiles {
		levels[i], ns[i] = int16(t.L), t.N
	}
	return readTileData(ctx, q, levels, ns)
}
