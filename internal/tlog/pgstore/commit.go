package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sumd-project/sumd/internal/tlog"
)

// Commit stores b in one transaction if the stored head is still b.Prev,
// in two round trips: BEGIN with the head's row lock, then the writes with
// COMMIT. See the package doc for what a lost answer to COMMIT becomes. It
// uses the transaction LockHead began, if any.
func (s *Store) Commit(ctx context.Context, b *tlog.Batch) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	w := s.takeLocked()
	if w == nil {
		var err error
		if w, err = s.begin(ctx); err != nil {
			return err
		}
	}
	defer w.release()
	if !bytes.Equal(w.head, b.Prev) {
		return tlog.ErrHeadMoved
	}
	// No deadline on COMMIT: cancelling its wait for a synchronous standby
	// would leave it committed on the primary only, and answered as a
	// success (see docs/ha.md). Another's cancel does that too, with a
	// WARNING: then the commit is not acknowledged before a barrier
	// confirms it durable.
	pc := w.conn.Conn().PgConn()
	clearWarning(pc)
	err := s.finish(context.WithoutCancel(ctx), w.conn.Conn(), s.writes(b))
	switch warned := warning(pc); {
	case err == nil && warned != nil:
		if err := s.confirmDurable(fmt.Sprintf("commit tree %d", b.Tree.N), warned); err != nil {
			return err
		}
	case err == nil:
	case definite(err):
		// An ERROR from a write or from COMMIT: the transaction is
		// aborted, and the statements after the failing one never ran.
		err = s.fail(fmt.Sprintf("commit tree %d", b.Tree.N), err)
		if unexplained(err) {
			return fmt.Errorf("%w: %w", tlog.ErrUnexplainedData, err)
		}
		return notPersisted(err)
	default:
		// Release the connection first: if the transaction is still open
		// (COMMIT failed on this side, unsent), release rolls it back, or
		// closes the connection, which aborts it; else settle would wait
		// on its row lock until the server ended it as idle.
		w.release()
		if err := s.resolve(b, s.fail(fmt.Sprintf("commit tree %d", b.Tree.N), err)); err != nil {
			return err
		}
	}
	s.up()
	s.markDurable(b.Head)
	for _, t := range b.Tiles {
		// Only tiles the batch's head covers: a staging's or a copy's
		// tiles beyond it may be dropped and staged again otherwise.
		if len(t.Data) == tileBytes && fullIn(t.TileID, b.Tree.N) {
			s.tiles.Add(t.TileID, bytes.Clone(t.Data))
		}
	}
	s.cache.committed(b)
	return nil
}

// commit sends q, a batch's writes, and COMMIT in one round trip. A write
// that fails aborts the transaction, and the server skips the rest of the
// pipeline, COMMIT included. ctx has no deadline: the writes run under
// the statement timeout begin set. COMMIT's work, its deferred triggers and
// its wait for the synchronous standbys, runs under none: PostgreSQL stops
// the timer before a transaction's commit (TestCommitHasNoStatementTimeout).
func commit(ctx context.Context, c *pgx.Conn, q *pgx.Batch) error {
	q.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() != "COMMIT" {
			return fmt.Errorf("COMMIT answered %s", tag)
		}
		return nil
	})
	return c.SendBatch(ctx, q).Close()
}

// A locked is a write transaction on a connection of its own, holding the
// head's row lock.
type locked struct {
	conn *pgxpool.Conn
	head []byte // the stored head, read under the lock
}

// release ends the transaction if it is still open and returns the
// connection; one whose state is unknown is closed, which aborts it. It
// may be called more than once.
func (w *locked) release() {
	if w.conn == nil {
		return
	}
	defer func() { w.conn = nil }()
	c := w.conn.Conn().PgConn()
	if !c.IsClosed() && !c.IsBusy() && c.TxStatus() != 'I' {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		w.conn.Exec(ctx, "ROLLBACK")
		cancel()
	}
	w.conn.Release()
}

// begin begins a write transaction and takes the head's row lock, in one
// round trip: every writer's commit waits here for the one before to end.
// Its answer arrives before COMMIT is sent, so that a lost COMMIT can be
// resolved (resolve). Its failures store nothing.
func (s *Store) begin(ctx context.Context) (*locked, error) {
	conn, err := s.ctl.Acquire(ctx)
	if err != nil {
		return nil, notPersisted(s.fail("connect", err))
	}
	w := &locked{conn: conn}
	var version int
	var q pgx.Batch
	q.Queue("BEGIN")
	// The schema version too (schemaSQL): a newer sumd's migration that
	// committed before this statement, or whose DDL on sumd_log it waited
	// for, is seen, and nothing is written to tables this sumd does not
	// know.
	q.Queue(`SELECT head, ` + schemaSQL + ` FROM sumd_log WHERE id = 1 FOR UPDATE`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&w.head, &version)
	})
	// The batch's writes go with its COMMIT, which has no deadline
	// (Commit): the server bounds them instead, as sumd bounds every other
	// statement (COMMIT's work excepted, see commit). Else a write
	// blocked on a lock (LOCK TABLE, REINDEX, VACUUM FULL) would hold the
	// writer, the head's row lock and every caller for as long as that
	// lasts.
	q.Queue(`SELECT set_config('statement_timeout', $1, true)`, strconv.FormatInt(max(1, s.opts.Timeout.Milliseconds()), 10))
	err = conn.SendBatch(ctx, &q).Close()
	switch {
	case errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err):
		err = notPersisted(tlog.ErrNoLog)
	case err != nil:
		err = notPersisted(s.fail("lock the log's head", err))
	case version > SchemaVersion:
		err = notPersisted(newerSchema(version))
	}
	if err != nil {
		w.release()
		return nil, err
	}
	return w, nil
}

// LockHead begins the next commit's transaction now, so that the Log can
// catch up and stage under the lock (tlog.LockingStore). The transaction
// lives until Commit or UnlockHead.
func (s *Store) LockHead(ctx context.Context) error {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.locked != nil {
		return nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel() // the transaction does not keep it
	w, err := s.begin(ctx)
	if err != nil {
		return err
	}
	s.locked = w
	return nil
}

// UnlockHead rolls back the transaction LockHead began, if Commit did not
// use it.
func (s *Store) UnlockHead() {
	if w := s.takeLocked(); w != nil {
		w.release()
	}
}

// takeLocked hands over the transaction LockHead began, if any.
func (s *Store) takeLocked() *locked {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	w := s.locked
	s.locked = nil
	return w
}

// writes returns b's statements: each table gets one insert of arrays
// (unnest), whatever the batch's size, then the head.
func (s *Store) writes(b *tlog.Batch) *pgx.Batch {
	var q pgx.Batch
	if len(b.Records) > 0 {
		ids, texts := make([]int64, len(b.Records)), make([][]byte, len(b.Records))
		var keys [][]byte
		var keyed []int64
		pos := map[string]int{} // a key given twice is indexed as the last says, as in bbolt
		for i, r := range b.Records {
			ids[i], texts[i] = r.ID, r.Text
			if r.Key == "" {
				continue
			}
			if j, ok := pos[r.Key]; ok {
				keyed[j] = r.ID
				continue
			}
			pos[r.Key] = len(keys)
			keys, keyed = append(keys, []byte(r.Key)), append(keyed, r.ID)
		}
		q.Queue(writeRecordsSQL, ids, texts)
		if len(keys) > 0 {
			q.Queue(writeIndexSQL, keys, keyed)
		}
	}
	if len(b.Tiles) > 0 {
		levels, ns, data := make([]int16, len(b.Tiles)), make([]int64, len(b.Tiles)), make([][]byte, len(b.Tiles))
		for i, t := range b.Tiles {
			levels[i], ns[i], data[i] = int16(t.L), t.N, t.Data
		}
		q.Queue(writeTilesSQL, levels, ns, data)
	}
	var vkeys *string
	if b.VKeys != nil {
		v := strings.Join(b.VKeys, "\n")
		vkeys = &v
	}
	q.Queue(writeHeadSQL, b.Head, b.Tree.N, b.Tree.Hash[:], vkeys)
	return &q
}

// A batch's writes. Each checks what it finds stored, and fails — an
// ERROR before COMMIT, which aborts the transaction, so that the server
// skips COMMIT — if the database holds data the stored head does not
// explain: a record other than the batch's at its id, an index entry at a
// smaller id than the batch's for its key, a tile whose hashes disagree
// with the batch's, or a head that an UPDATE did not change (a trigger, a
// row security policy). Data may lie beyond the stored head (a copy that
// did not finish, a dropped mirror staging, a head rolled back behind
// sumd's back), so records are inserted only where none exist (ON
// CONFLICT DO NOTHING) and compared with those that do, which the
// statement's snapshot shows as they were before it. An index entry moves
// to a smaller id, never a larger: a mirror that learns an earlier record
// of a version the origin logged twice re-points it (tlog's indexFirst; the
// Store contract, Batch.Records). A partial tile grows, so tiles are
// replaced, if the stored hashes are a prefix of the batch's or the
// batch's of them.
//
// The failure is a cast of the explanation to integer, since plain SQL has
// no RAISE: "invalid input syntax for type integer: "sumd: …"" (22P02),
// which unexplained tells from the head's by unexplainedText.
const (
	writeRecordsSQL = `WITH q(id, text) AS (SELECT * FROM unnest($1::bigint[], $2::bytea[])),
		w AS (INSERT INTO sumd_records (id, text) SELECT id, text FROM q ON CONFLICT (id) DO NOTHING)
		SELECT ('sumd: record ' || q.id || ' is stored with another text: the database holds data the log''s ` + unexplainedText + `')::integer
		FROM q CROSS JOIN LATERAL (SELECT text FROM sumd_records WHERE id = q.id OFFSET 0) AS r
		WHERE r.text <> q.text`
	writeIndexSQL = `WITH q(key, id) AS (SELECT * FROM unnest($1::bytea[], $2::bigint[])),
		w AS (INSERT INTO sumd_index (key, id) SELECT key, id FROM q
			ON CONFLICT (key) DO UPDATE SET id = excluded.id WHERE excluded.id < sumd_index.id)
		SELECT ('sumd: the index maps ' || encode(q.key, 'escape') || ' to record ' || i.id || ', not ' || q.id || ': the database holds data the log''s ` + unexplainedText + `')::integer
		FROM q CROSS JOIN LATERAL (SELECT id FROM sumd_index WHERE key = q.key OFFSET 0) AS i
		WHERE i.id < q.id`
	writeTilesSQL = `WITH q(level, n, data) AS (SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])),
		w AS (INSERT INTO sumd_tiles (level, n, data) SELECT level, n, data FROM q
			ON CONFLICT (level, n) DO UPDATE SET data = excluded.data)
		SELECT ('sumd: hash tile ' || q.level || '/' || q.n || ' is stored with other hashes: the database holds data the log''s ` + unexplainedText + `')::integer
		FROM q CROSS JOIN LATERAL (SELECT data FROM sumd_tiles WHERE level = q.level AND n = q.n OFFSET 0) AS t
		WHERE substr(t.data, 1, length(q.data)) <> substr(q.data, 1, length(t.data))`
	writeHeadSQL = `WITH u AS (UPDATE sumd_log SET head = $1, tree_size = $2, root = $3, vkeys = coalesce($4::text, vkeys)
			WHERE id = 1 RETURNING 1)
		SELECT ('sumd: the update of the log''s head changed ' || count(*) || ' rows, not 1 (a trigger or a row security policy on sumd_log?)')::integer
		FROM u HAVING count(*) <> 1`
)

// errUnknown is what resolve cannot settle in one attempt.
var errUnknown = errors.New("outcome unknown")

// resolve learns the outcome of b's COMMIT, whose answer was lost (cause),
// re-reading the head with backoff for up to ResolveTimeout. Its answer is
// Commit's: nil (stored), ErrNotPersisted or ErrHeadMoved; or, if the
// database stayed out of reach, an ambiguous error that stops the log.
func (s *Store) resolve(b *tlog.Batch, cause error) error {
	s.log.Warn("lost the answer to a commit; re-reading the head to learn whether it was stored",
		"tree_size", b.Tree.N, "err", cause)
	deadline := time.Now().Add(s.opts.ResolveTimeout)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := s.settle(b, cause)
		switch {
		case err == nil:
			s.lost["stored"].Add(1)
			return nil
		case errors.Is(err, tlog.ErrNotPersisted):
			s.lost["not_stored"].Add(1)
			return err
		case !errors.Is(err, errUnknown):
			s.lost["unknown"].Add(1)
			return err
		}
		if time.Now().Add(wait).After(deadline) {
			s.lost["unknown"].Add(1)
			return fmt.Errorf("failed to commit tree %d, and the database stayed out of reach for %v, so whether it was stored is unknown: %w (lost commit: %w)",
				b.Tree.N, s.opts.ResolveTimeout, err, cause)
		}
		select {
		case <-time.After(wait):
		case <-s.done:
			s.lost["unknown"].Add(1)
			return fmt.Errorf("failed to commit tree %d, and the store closed before learning whether it was stored: %w", b.Tree.N, cause)
		}
	}
}

// settle makes one attempt at resolve. SELECT … FOR UPDATE waits for the
// lost commit's transaction, which took that lock before its COMMIT was
// sent, to end; then the head says what happened, or, if it cannot (b does
// not move the head, or another writer moved it since), b's own rows do.
func (s *Store) settle(b *tlog.Batch, cause error) error {
	ctx, cancel := s.ctx(context.Background())
	defer cancel()
	conn, err := s.ctl.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnknown, s.fail("connect", err))
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", errUnknown, s.fail("begin", err))
	}
	defer tx.Rollback(context.Background())
	var head []byte
	if err := tx.QueryRow(ctx, `SELECT head FROM sumd_log WHERE id = 1 FOR UPDATE`).Scan(&head); err != nil {
		return fmt.Errorf("%w: %w", errUnknown, s.fail("lock the log's head", err))
	}
	staging := bytes.Equal(b.Head, b.Prev) // a copy's chunk or a mirror's staging: the head says nothing
	held := rowsUnknown
	if staging || !bytes.Equal(head, b.Head) && !bytes.Equal(head, b.Prev) {
		if held, err = holds(ctx, tx, b); err != nil {
			return fmt.Errorf("%w: %w", errUnknown, s.fail("read the batch back", err))
		}
	}
	// Commit, not roll back: the row lock wrote WAL, so under synchronous
	// replication this waits until everything before it, the lost
	// commit's WAL included, is on the standby. Without a deadline, as
	// Commit's; a WARNING says the wait was cancelled, so try again.
	clearWarning(conn.Conn().PgConn())
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("%w: %w", errUnknown, s.fail("commit", err))
	}
	if w := warning(conn.Conn().PgConn()); w != nil {
		return fmt.Errorf("%w: the database did not confirm the outcome durable: %w", errUnknown, w)
	}
	s.up()
	s.markDurable(head)
	switch {
	case staging && bytes.Equal(head, b.Head) && len(b.Records) == 0 && len(b.Tiles) == 0 && b.VKeys == nil:
		return nil // nothing to store (a copy's last commit of a head the store holds): done either way
	case !staging && bytes.Equal(head, b.Head):
		s.log.Info("the commit whose answer was lost is stored", "tree_size", b.Tree.N)
		return nil
	case !staging && bytes.Equal(head, b.Prev):
		return notPersisted(fmt.Errorf("failed to commit tree %d (the head is unchanged): %w", b.Tree.N, cause))
	case held == rowsHeld:
		s.log.Info("the commit whose answer was lost is stored (its rows are)", "tree_size", b.Tree.N)
		return nil
	case held == rowsUnknown:
		return fmt.Errorf("failed to commit tree %d, and its rows cannot tell whether it was stored: %w", b.Tree.N, cause)
	case bytes.Equal(head, b.Prev):
		return notPersisted(fmt.Errorf("failed to commit tree %d (the batch's rows are not all stored): %w", b.Tree.N, cause))
	}
	return fmt.Errorf("failed to commit tree %d: %w (%w)", b.Tree.N, tlog.ErrHeadMoved, cause)
}

// What a batch's rows, read back, say of its commit.
const (
	rowsUnknown = iota // they cannot tell
	rowsHeld           // every one is stored as the batch wrote it: it was stored, or the database holds all of it anyway
	rowsMissing        // one is not: the batch, all or nothing, was not stored
)

// holds reads b's rows back after its commit ended: its records, index
// entries and tiles (which only grow, so b's must be a prefix of the
// stored). An index entry at a smaller id may be a later commit's change,
// so it tells nothing; a batch of no rows tells nothing either.
func holds(ctx context.Context, q querier, b *tlog.Batch) (int, error) {
	if len(b.Records) == 0 && len(b.Tiles) == 0 {
		return rowsUnknown, nil
	}
	texts, err := readRecords(ctx, q, recordIDs(b))
	if err != nil {
		return rowsUnknown, err
	}
	want := map[string]int64{} // the last id given for a key, as writes indexes it
	for i, r := range b.Records {
		if !bytes.Equal(texts[i], r.Text) {
			return rowsMissing, nil
		}
		if r.Key != "" {
			want[r.Key] = r.ID
		}
	}
	tiles, err := readTiles(ctx, q, b)
	if err != nil {
		return rowsUnknown, err
	}
	held := rowsHeld
	for _, t := range b.Tiles {
		d := tiles[t.TileID]
		switch {
		case len(d) >= len(t.Data) && bytes.Equal(d[:len(t.Data)], t.Data):
		case len(d) > 0 && bytes.Equal(t.Data[:len(d)], d):
			// A narrower tile replaced it since (a writer's head of a
			// smaller tree): it says nothing of this batch.
			held = rowsUnknown
		default:
			return rowsMissing, nil
		}
	}
	indexed, err := lookup(ctx, q, slices.Collect(maps.Keys(want)))
	if err != nil {
		return rowsUnknown, err
	}
	for k, id := range want {
		switch got, ok := indexed[k]; {
		case !ok || got > id:
			return rowsMissing, nil
		case got < id:
			held = rowsUnknown
		}
	}
	return held, nil
}

func recordIDs(b *tlog.Batch) []int64 {
	ids := make([]int64, len(b.Records))
	for i, r := range b.Records {
		ids[i] = r.ID
	}
	return ids
}

// SetAux stores an auxiliary value in a transaction of its own. A lost
// answer to its COMMIT is resolved by reading the value back once that
// transaction has ended (readAuxLocked): if another process replaced it
// meanwhile, this one counts as not stored, which is what every later
// reader sees anyway.
func (s *Store) SetAux(ctx context.Context, key string, value []byte) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	conn, err := s.ctl.Acquire(ctx)
	if err != nil {
		return notPersisted(s.fail("connect to store "+key, err))
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return notPersisted(s.fail("begin storing "+key, err))
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `INSERT INTO sumd_aux (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return notPersisted(s.fail("store "+key, err))
	}
	clearWarning(conn.Conn().PgConn())
	// No deadline on COMMIT, as Commit's: an expired one makes pgx cancel
	// the wait for the standby, leaving the value on the primary only.
	err = tx.Commit(context.WithoutCancel(ctx))
	switch warned := warning(conn.Conn().PgConn()); {
	case err == nil && warned != nil:
		s.up()
		return s.confirmDurable("store "+key, warned)
	case err == nil:
		s.up()
		return nil
	case definite(err) || errors.Is(err, pgx.ErrTxCommitRollback):
		return notPersisted(s.fail("commit "+key, err))
	}
	// pgx closed the connection if the transaction may still be open:
	// its slot is free for the reads below.
	conn.Release()
	var rerr error
	deadline := time.Now().Add(s.opts.ResolveTimeout)
	for wait := 50 * time.Millisecond; time.Now().Add(wait).Before(deadline); wait = min(2*wait, 5*time.Second) {
		time.Sleep(wait)
		var got []byte
		got, rerr = s.readAuxLocked(key)
		switch {
		case rerr != nil:
			continue
		case bytes.Equal(got, value): // an empty value reads as none: stored or not, the same
			// Read back, but maybe from the primary alone: durable
			// only once a barrier after it committed.
			return s.confirmDurable("store "+key, err)
		}
		return notPersisted(fmt.Errorf("failed to store %s: %w", key, err))
	}
	return fmt.Errorf("failed to store %s, and whether it was stored is unknown (the database stayed out of reach, or the lost transaction did not end): %w (reading it back: %w)", key, err, rerr)
}

// readAuxLocked reads key's value once every transaction writing it has
// ended, as settle does for a batch: a lost COMMIT's transaction holds the
// row (or, for a new key, its index entry) until it has committed or
// rolled back, and a read that does not wait for it sees the value before
// it, for a value then stored. An INSERT … ON CONFLICT waits for a writer
// of a new key, SELECT … FOR UPDATE for one of an existing row; the
// transaction is rolled back. A lock not had within Timeout is an error:
// the outcome is unknown yet.
func (s *Store) readAuxLocked(key string) ([]byte, error) {
	ctx, cancel := s.ctx(context.Background())
	defer cancel()
	tx, err := s.ctl.Begin(ctx)
	if err != nil {
		return nil, s.fail("begin reading "+key+" back", err)
	}
	defer tx.Rollback(context.Background())
	var absent bool
	err = tx.QueryRow(ctx, `INSERT INTO sumd_aux (key, value) VALUES ($1, '') ON CONFLICT (key) DO NOTHING RETURNING true`, key).Scan(&absent)
	switch {
	case err == nil:
		return nil, nil // no value stored: the insert, rolled back, took its place
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, s.fail("wait for the writers of "+key, err)
	}
	var value []byte
	if err := tx.QueryRow(ctx, `SELECT value FROM sumd_aux WHERE key = $1 FOR UPDATE`, key).Scan(&value); err != nil {
		return nil, s.fail("read "+key+" back", err)
	}
	s.up()
	return value, nil
}
