package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumd-project/sumd/internal/scratch"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/pgstore"
)

// openPostgres opens the log in the PostgreSQL database url names for cmd
// (named by hints); reg, if not nil, receives the store's metrics.
func openPostgres(url string, opts tlog.Options, reg prometheus.Registerer, cmd string) (*tlog.Log, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := pgstore.Open(ctx, url, pgstore.Options{Logger: opts.Logger, Registerer: reg})
	if err == nil {
		var l *tlog.Log
		if l, err = tlog.OpenStore(s, opts); err == nil {
			return l, nil
		}
		s.Close()
	}
	if errors.Is(err, tlog.ErrNoLog) {
		return nil, withHint(fmt.Errorf("database %s: %w", redact(url), err), noLogHint(cmd))
	}
	return nil, postgresOpenError(url, err, "")
}

// discardPostgres deletes the new, empty log in the PostgreSQL database
// db that this run created, signing head, and then refused to go on
// with (discardCreated), unless it changed since: then it is kept, and
// stderr says why. sumd's tables stay. The open that created the log
// warned of what is wrong with db already (Reopen).
func discardPostgres(db string, head []byte, logger *slog.Logger, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := pgstore.Open(ctx, db, pgstore.Options{Logger: logger, Reopen: true})
	if err == nil {
		err = s.DiscardNew(ctx, head)
		s.Close()
	}
	switch {
	case errors.Is(err, pgstore.ErrNotDiscarded):
		fmt.Fprintf(stderr, "sumd: kept the new log in database %s: %v\n", redact(db), err)
	case err != nil:
		fmt.Fprintf(stderr, "sumd: failed to remove the new, empty log from database %s: %v\n", redact(db), err)
	}
}

// postgresOpenError is err, from opening the PostgreSQL database at url,
// named without its password, with postgresHint's hint or else fallback.
func postgresOpenError(url string, err error, fallback string) error {
	hint := cmp.Or(postgresHint(err), fallback)
	err = fmt.Errorf("database %s: %w", redact(url), err)
	if hint == "" {
		return err
	}
	return withHint(err, hint)
}

// postgresUnreachable is the hint for a PostgreSQL database that cannot
// be reached.
const postgresUnreachable = "check that PostgreSQL runs and is reachable, and the URL's host, user, sslmode and password (PGPASSWORD or ~/.pgpass)"

// postgresHint says what to do about err, an error opening a PostgreSQL
// database: "" if nothing is known about it.
func postgresHint(err error) string {
	switch {
	case errors.Is(err, pgstore.ErrNewerSchema):
		return "a newer sumd migrated this database: run that version (every process on one database runs the same sumd)"
	case errors.Is(err, pgstore.ErrSchemaVersionLost):
		// The error gives the SQL; restoring the version is the
		// operator's call, who knows whether the tables are this sumd's.
		return "if these tables are this sumd's, restore sumd_schema with the SQL above, else restore the database from a backup (docs/ha.md)"
	case errors.Is(err, tlog.ErrUnavailable):
		return postgresUnreachable
	case errors.Is(err, tlog.ErrCorrupt):
		return ownHint(err, "do not serve this database: restore it from a backup and audit it (docs/ha.md)")
	case sqlState(err) == "42501": // insufficient_privilege
		return postgresPrivileges
	case sqlState(err) == "3F000": // invalid_schema_name: none to create tables in
		return "the URL's search_path names no schema that exists: create it (CREATE SCHEMA name AUTHORIZATION role) or fix search_path (docs/ha.md)"
	}
	return ""
}

// postgresPrivileges is the hint for a privilege PostgreSQL refused.
// Every command writes, even one that only reads the log: it confirms a
// head it did not commit with a row lock on sumd_schema (FOR KEY SHARE,
// which needs UPDATE).
const postgresPrivileges = "sumd's role needs CREATE on the schema its tables go in (the URL's search_path; with -create), " +
	"and SELECT, INSERT, UPDATE and DELETE on sumd's tables for every command, even those that only read (docs/ha.md)"

// sqlState returns the SQLSTATE of the PostgreSQL error in err, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// redact returns db with its secrets masked, for messages: those pgx
// masks in its own (pgconn's redactPW), the user's password (in the URL's
// user information, or password=) and sslpassword (which decrypts the
// client key), in a URL or a keyword/value string.
func redact(db string) string {
	if !pgstore.IsURL(db) {
		return secretKV.ReplaceAllString(db, "${1}=xxxxx")
	}
	u, err := url.Parse(db)
	if err != nil {
		return "(unparsable PostgreSQL URL)"
	}
	pairs := strings.Split(u.RawQuery, "&")
	for i, pair := range pairs {
		// Decoded as pgx decodes a key: no '+' for a space, spaces trimmed.
		raw, _, ok := strings.Cut(pair, "=")
		key, err := url.PathUnescape(raw)
		if ok && err == nil && secretKeys[strings.TrimSpace(key)] {
			pairs[i] = raw + "=xxxxx"
		}
	}
	u.RawQuery = strings.Join(pairs, "&")
	return u.Redacted()
}

// secretKeys are the connection parameters that hold secrets.
var secretKeys = map[string]bool{"password": true, "sslpassword": true}

// secretKV matches a secret parameter of a keyword/value string, its value
// quoted or not. A backslash escapes the next character in either, as
// pgx and libpq read them: password=SEC\ RET is "SEC RET".
var secretKV = regexp.MustCompile(`(?s)\b((?:ssl)?password)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s\\]|\\.|\\$)*)`)

// dbFile returns the database file db names, or "" for a PostgreSQL URL.
func dbFile(db string) string {
	if pgstore.IsURL(db) {
		return ""
	}
	return db
}

// crosscheckState is the default -crosscheck-state: beside a bbolt file,
// or under data/ for a PostgreSQL database (each process keeps its own).
func crosscheckState(db string) string {
	if pgstore.IsURL(db) {
		return filepath.Join("data", "crosscheck-latest")
	}
	return filepath.Join(filepath.Dir(db), "crosscheck-latest")
}

// scratchDir is scratch.Dir for the database db (a file, or a PostgreSQL
// URL: a directory of this process's own) and dir, the -tmp-dir option.
// The caller calls done when it no longer needs the directory.
func scratchDir(dir, db string) (path string, done func(), err error) {
	path, done, err = scratch.Dir(dir, dbFile(db))
	if err != nil {
		return "", nil, withHint(err, "set -tmp-dir to a directory of this process's own")
	}
	return path, done, nil
}
