package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migrations take the schema from version i to i+1. Append only: a sumd
// that knows n of them migrates any older schema up to version n and
// refuses a newer one. Each runs in the transaction that holds the
// sumd_schema row lock, so concurrent starts migrate once.
var migrations = [][]string{
	// 1: the tables of the package doc.
	{
		`CREATE TABLE sumd_log (
			id        integer PRIMARY KEY CHECK (id = 1),
			name      text    NOT NULL,
			vkeys     text    NOT NULL,
			mirror    boolean NOT NULL,
			head      bytea,
			tree_size bigint  NOT NULL,
			root      bytea   NOT NULL
		)`,
		`CREATE TABLE sumd_records (
			id   bigint PRIMARY KEY,
			text bytea  NOT NULL
		)`,
		`CREATE TABLE sumd_index (
			key bytea  PRIMARY KEY,
			id  bigint NOT NULL
		)`,
		`CREATE TABLE sumd_tiles (
			level smallint NOT NULL,
			n     bigint   NOT NULL,
			data  bytea    NOT NULL,
			PRIMARY KEY (level, n)
		)`,
		`CREATE TABLE sumd_aux (
			key   text  PRIMARY KEY,
			value bytea NOT NULL
		)`,
	},
}

// SchemaVersion is the schema version this sumd writes.
var SchemaVersion = len(migrations)

// ErrNewerSchema is Open's answer for tables a newer sumd migrated.
var ErrNewerSchema = errors.New("sumd's tables in this database are of a newer sumd")

// ErrSchemaVersionLost is Open's answer for sumd's tables found without
// their schema version (versionLost).
var ErrSchemaVersionLost = errors.New("sumd's tables are in this database without their schema version")

// migrate brings sumd's tables to SchemaVersion: creating them if create
// is set, else only if a previous sumd did. Tables without their version
// are refused (versionLost). Concurrent creations (several
// processes starting at once) take turns under an advisory lock; other
// races of concurrent migrations are retried.
func (s *Store) migrate(ctx context.Context, create bool) error {
	for attempt := 1; ; attempt++ {
		err := s.migrateOnce(ctx, create)
		var pe *pgconn.PgError
		raced := errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P07" || pe.Code == "40001")
		if !raced || attempt == 5 {
			return err
		}
	}
}

func (s *Store) migrateOnce(ctx context.Context, create bool) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	// Nearly every open finds the tables up to date: the version is read
	// first without the row lock, which every process's durability
	// barrier takes too (FOR KEY SHARE, which FOR UPDATE conflicts with),
	// so that an open neither waits for a barrier (one waiting for a
	// synchronous standby that is away, say) nor holds the barriers up.
	// A migration takes the lock and reads the version again under it.
	var version int
	err := s.ctl.QueryRow(ctx, `SELECT version FROM sumd_schema WHERE id = 1`).Scan(&version)
	missing := isUndefinedTable(err) || errors.Is(err, pgx.ErrNoRows)
	if missing && !create {
		exists, xerr := s.tablesExist(ctx, s.ctl)
		if xerr != nil || !exists {
			return xerr // no sumd tables: Load answers ErrNoLog
		}
		// A concurrent creation commits its tables and their version at
		// once: tables found since the read have their version now.
		err = s.ctl.QueryRow(ctx, `SELECT version FROM sumd_schema WHERE id = 1`).Scan(&version)
		if isUndefinedTable(err) || errors.Is(err, pgx.ErrNoRows) {
			return versionLost()
		}
	}
	if !create || !missing {
		if done, err := s.schemaDone(version, err, create); done {
			return err
		}
	}
	tx, err := s.ctl.Begin(ctx)
	if err != nil {
		return s.fail("begin a schema migration", err)
	}
	defer tx.Rollback(context.Background())
	if create {
		// CREATE TABLE IF NOT EXISTS is not safe against a concurrent
		// one (the loser fails on the table's type, 42710): processes
		// started together on an empty database take turns here.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7715530)`); err != nil {
			return s.fail("lock the schema for its creation", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS sumd_schema (
			id      integer PRIMARY KEY CHECK (id = 1),
			version integer NOT NULL
		)`); err != nil {
			return s.fail("create the schema version table", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sumd_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING`); err != nil {
			return s.fail("create the schema version", err)
		}
	}
	err = tx.QueryRow(ctx, `SELECT version FROM sumd_schema WHERE id = 1 FOR UPDATE`).Scan(&version)
	if done, err := s.schemaDone(version, err, create); done {
		return err
	}
	if version == 0 {
		// The version this creation inserted, or one found at 0: the
		// tables must not be there (under the advisory lock, no other
		// creation makes them meanwhile).
		exists, err := s.tablesExist(ctx, tx)
		if err != nil {
			return err
		}
		if exists {
			return versionLost()
		}
	}
	for v := version; v < SchemaVersion; v++ {
		for _, stmt := range migrations[v] {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return s.fail(fmt.Sprintf("migrate sumd's tables to version %d", v+1), err)
			}
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE sumd_schema SET version = $1 WHERE id = 1`, SchemaVersion); err != nil {
		return s.fail("record the schema version", err)
	}
	// No deadline on COMMIT, and a WARNING heeded, as Commit's.
	pc := tx.Conn().PgConn()
	clearWarning(pc)
	if err := tx.Commit(context.WithoutCancel(ctx)); err != nil {
		return s.fail("commit the schema migration", err)
	}
	if w := warning(pc); w != nil {
		if err := s.confirmDurable("migrate sumd's tables", w); err != nil {
			return err
		}
	}
	if version > 0 {
		s.log.Warn("migrated sumd's tables", "from", version, "to", SchemaVersion)
	}
	return nil
}

// tables are the tables of migration 1, which a lost schema version
// leaves behind (tablesExist).
var tables = []string{"sumd_log", "sumd_records", "sumd_index", "sumd_tiles", "sumd_aux"}

// tablesExist reports whether any of sumd's tables exist.
func (s *Store) tablesExist(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (bool, error) {
	var exists bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT FROM unnest($1::text[]) AS t(name) WHERE to_regclass(name) IS NOT NULL)`, tables).Scan(&exists)
	if err != nil {
		return false, s.fail("look for sumd's tables", err)
	}
	return exists, nil
}

// versionLost is the error for sumd's tables without their schema
// version: sumd_schema's row deleted, or its table dropped, by hand.
// Migrating them would fail on the first one ("relation sumd_log already
// exists"), and recreating the version would take tables of an unknown
// version, which may hold a log, for this sumd's: an operator restores it.
func versionLost() error {
	return fmt.Errorf("%w (sumd_schema's row or table deleted?): "+
		"sumd neither migrates nor recreates them, which may hold a log; if they are of this sumd (schema version %d), restore it: "+
		"CREATE TABLE IF NOT EXISTS sumd_schema (id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL); "+
		"INSERT INTO sumd_schema (id, version) VALUES (1, %d); else restore the database from a backup", ErrSchemaVersionLost, SchemaVersion, SchemaVersion)
}

// schemaDone reports whether the schema version read (version, or the
// failure to read it, err) leaves nothing to migrate, and what to answer
// then.
func (s *Store) schemaDone(version int, err error, create bool) (bool, error) {
	switch {
	case !create && (isUndefinedTable(err) || errors.Is(err, pgx.ErrNoRows)):
		return true, nil // no sumd tables: Load answers ErrNoLog
	case err != nil:
		return true, s.fail("read the schema version", err)
	case version > SchemaVersion:
		return true, newerSchema(version)
	case version == SchemaVersion:
		return true, nil
	}
	return false, nil
}

// newerSchema is the error for tables of schema version, which is newer
// than SchemaVersion.
func newerSchema(version int) error {
	return fmt.Errorf("%w (schema version %d; this sumd knows up to %d): upgrade sumd", ErrNewerSchema, version, SchemaVersion)
}

// schemaSQL is a subquery reading the schema version, for the statements
// of a running store that check it: a newer sumd may migrate the tables
// while this one runs (a rolling upgrade), and this one must then stop
// reading and writing them. It takes no lock on sumd_schema's row, which
// the barriers take (FOR KEY SHARE) and a migration holds (FOR UPDATE).
const schemaSQL = `coalesce((SELECT version FROM sumd_schema WHERE id = 1), 0)`

// isUndefinedTable reports whether err says a table does not exist.
func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}
