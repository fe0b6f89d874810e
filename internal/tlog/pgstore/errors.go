package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sumd-project/sumd/internal/tlog"
)

// fail wraps err, a failed statement, saying what failed. PostgreSQL's
// report of damage in its files becomes a *CorruptError, logged. A failure
// to reach the database becomes a *tlog.UnavailableError (503 to
// clients), and the first of a series once the store is open is logged
// with its cause: clients see only that the storage is unavailable.
func (s *Store) fail(what string, err error) error {
	err = fmt.Errorf("failed to %s: %w", what, err)
	if ce := damaged(err); ce != nil {
		s.log.Error("PostgreSQL reports damage in its files", "err", err, "sqlstate", ce.Code, "hint", ce.Hint())
		return ce
	}
	if !unreachable(err) {
		return err
	}
	ro := readOnly(err)
	if ro {
		err = fmt.Errorf("%w: %s", err, readOnlyHint)
	}
	// Before Open returns, the caller reports the error and exits: no
	// 503s will follow. Once open, the first of a series is logged.
	switch {
	case !s.open.Load() || s.down.Swap(true):
	case ro:
		s.log.Warn("the PostgreSQL database is read-only (a hot standby?); answering 503 to writes, and to everything past -max-head-age, until it takes writes", "err", err)
	default:
		s.log.Warn("lost the PostgreSQL database; answering 503 until it is back", "err", err)
	}
	return &tlog.UnavailableError{Err: err}
}

// readOnlyHint says what a write refused as read-only means, and what to
// do. sumd's sessions set default_transaction_read_only = off
// (setSession), so the database is a hot standby, or a pooler between
// does not keep session settings. Right after a failover it passes; for
// good, the URL leads to the wrong server.
const readOnlyHint = "the database is read-only: a hot standby (or a default_transaction_read_only = on that sumd's session setting did not override: a pooler not in session mode?); " +
	"if it lasts, point the URL at the primary, e.g. several hosts with target_session_attrs=primary (docs/ha.md)"

// readOnly reports whether err is a write refused in a read-only
// transaction (SQLSTATE 25006).
func readOnly(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "25006"
}

// A CorruptError is PostgreSQL reporting damage in its own files:
// SQLSTATE XX001 (data_corrupted: a table's page) or XX002
// (index_corrupted). It is a tlog.ErrCorrupt: retrying meets the same
// damage, and what was read may be wrong. XX000 (internal_error) is not
// one: it is as often a bug as damage.
type CorruptError struct {
	Err  error // the failed statement's error, wrapping the *pgconn.PgError
	Code string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("PostgreSQL reports its files damaged: %v", e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// Is makes it an ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == tlog.ErrCorrupt }

// Hint says what to do: sumd copy -h and the other commands show it.
func (e *CorruptError) Hint() string {
	if e.Code == "XX002" {
		return "REINDEX the index PostgreSQL names (REINDEX TABLE sumd_index, sumd_records or sumd_tiles), then audit the log (sumd verify -full)"
	}
	return "stop every sumd on this database and restore it from a backup or a mirror (docs/mirrors.md, \"Restore from a mirror\"), then audit it (sumd verify -full)"
}

// damaged returns err as a *CorruptError if PostgreSQL reported damage
// in its files, else nil.
func damaged(err error) *CorruptError {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "XX001" || pe.Code == "XX002") {
		return &CorruptError{Err: err, Code: pe.Code}
	}
	return nil
}

// up notes a statement that reached the database.
func (s *Store) up() {
	if s.down.Load() && s.down.Swap(false) {
		s.log.Info("reached the PostgreSQL database again")
	}
}

// unreachable reports whether err is a failure to reach the database, or
// a refusal the same statement may not meet later, rather than an error in
// the statement or the data: anything but an error the server reported,
// and of those the ones that come and go with the server (shutting down,
// starting up, too many connections, a standby refusing writes after a
// failover, a serialization conflict).
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // the caller gave up (a client went away)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return true
	}
	switch {
	case strings.HasPrefix(pe.Code, "08"), // connection exception
		pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutting down, crashed, starting
		pe.Code == "53300",                     // too many connections
		pe.Code == "25006",                     // read-only transaction: a standby
		pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock
		return true
	}
	return false
}

// definite reports whether err, from COMMIT, means the transaction was
// rolled back: an ERROR the server reported. A FATAL one (the backend was
// terminated), a lost connection or a timeout may come after the commit
// record was written, so they are resolved by re-reading the head.
func definite(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	sev := pe.SeverityUnlocalized
	if sev == "" {
		sev = pe.Severity
	}
	return sev == "ERROR"
}

// unexplainedText ends the explanation a batch's write fails with when
// the database holds data the head does not explain (writeRecordsSQL).
const unexplainedText = "head does not explain"

// unexplained reports whether err is a batch's write refusing data the
// head does not explain: tlog.ErrUnexplainedData. Only those writes cast
// a text to integer, and only those explanations carry unexplainedText,
// which the server quotes untranslated.
func unexplained(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "22P02" && strings.Contains(pe.Message, unexplainedText)
}

// notPersisted marks err as a write of which nothing was stored.
func notPersisted(err error) error {
	if errors.Is(err, tlog.ErrNotPersisted) {
		return err
	}
	return fmt.Errorf("%w: %w", tlog.ErrNotPersisted, err)
}

// warningKey is where onNotice records, in a connection's CustomData, the
// last WARNING the server sent on it.
const warningKey = "sumd.warning"

// onNotice records WARNINGs. The one that matters is COMMIT's when its
// wait for a synchronous standby is cancelled (pg_cancel_backend, by an
// admin tool or a pooler): PostgreSQL then answers COMMIT as usual, with
// only a WARNING ("canceling wait for synchronous replication …: the
// transaction has already committed locally, but might not have been
// replicated to the standby", SQLSTATE 01000) to say that it is not
// durable. Its text is translated (lc_messages) and its code is that of
// every warning, so every WARNING during a COMMIT counts: one that means
// something else costs a durability barrier, no more.
func onNotice(c *pgconn.PgConn, n *pgconn.Notice) {
	sev := n.SeverityUnlocalized
	if sev == "" {
		sev = n.Severity
	}
	if sev == "WARNING" {
		c.CustomData()[warningKey] = fmt.Errorf("PostgreSQL warned: %s (%s)", n.Message, n.Detail)
	}
}

// clearWarning forgets c's last WARNING, before a COMMIT.
func clearWarning(c *pgconn.PgConn) { delete(c.CustomData(), warningKey) }

// warning returns the WARNING c got since clearWarning, if any: after a
// COMMIT that answered success, the commit may be on the primary only.
func warning(c *pgconn.PgConn) error {
	err, _ := c.CustomData()[warningKey].(error)
	return err
}
