package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrNotDiscarded is DiscardNew's answer for a log that is no longer
// exactly as it was created: it is kept.
var ErrNotDiscarded = errors.New("the log changed since it was created")

// DiscardNew deletes the log while it is still exactly what a Create
// that stored head left: no record, index entry, tile or auxiliary value,
// tree size 0 and head itself. It is for a command that created the log
// and then refused to go on, so that it leaves no new, empty log that a
// later run (without -create) would take as intended. Another process
// (sumd serve) may have opened the log meanwhile, and nothing keeps it
// out as bbolt's file lock does: the checks and the delete run in one
// transaction under the head's row lock, which every commit takes, so no
// commit lands in between; a log that changed is kept, with an error
// wrapping ErrNotDiscarded that says how. A process that opened the log
// and wrote nothing loses it (its commits find no log) but no signed
// history: the empty tree's head is the same bytes whoever signs it with
// the key, so a log created again serves what it served. sumd's tables stay: whether
// this run created them is not recorded, and empty tables are harmless.
func (s *Store) DiscardNew(ctx context.Context, head []byte) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	tx, err := s.ctl.Begin(ctx)
	if err != nil {
		return s.fail("begin discarding the new log", err)
	}
	defer tx.Rollback(context.Background())
	var stored []byte
	var size int64
	err = tx.QueryRow(ctx, `SELECT head, tree_size FROM sumd_log WHERE id = 1 FOR UPDATE`).Scan(&stored, &size)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err):
		return nil // gone already
	case err != nil:
		return s.fail("lock the new log's head", err)
	case size != 0 || !bytes.Equal(stored, head):
		return fmt.Errorf("%w: its head moved (tree size %d): another process wrote to it, or a commit of this one whose answer was lost", ErrNotDiscarded, size)
	}
	// A statement of its own, after the lock: in READ COMMITTED, each
	// statement sees what committed before it began, and so every commit
	// that held the lock before us; a subquery of the locking statement
	// would not see the one it waited for.
	var used bool
	err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM sumd_records) OR EXISTS (SELECT FROM sumd_index)
		OR EXISTS (SELECT FROM sumd_tiles) OR EXISTS (SELECT FROM sumd_aux)`).Scan(&used)
	switch {
	case err != nil:
		return s.fail("check that the new log is empty", err)
	case used:
		return fmt.Errorf("%w: another process used it (it holds records, tiles or auxiliary values)", ErrNotDiscarded)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM sumd_log WHERE id = 1`); err != nil {
		return s.fail("delete the new log", err)
	}
	// No deadline on COMMIT, as for Commit's: cancelling its wait for a
	// synchronous standby would leave the deletion on the primary alone,
	// answered as done, and a failover would bring the new log back. The
	// statements before it have ctx's.
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return s.fail("commit the deletion of the new log", err)
	}
	return nil
}
