package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/pgstore"
)

func runCopy(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadFlags(config.LoadCopy, args, stderr, "sumd copy takes only flags: -from DB -to DB")
	if err != nil {
		return err
	}
	if sameFile(cfg.From, cfg.To) {
		return usageError(fmt.Errorf("-from %s and -to %s are the same file", cfg.From, cfg.To), "copy into another database: a new bbolt file, or an empty PostgreSQL database")
	}
	logger := config.NewLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	src, err := openStore(ctx, "-from", cfg.From, false, -1, logger) // reads only
	if err != nil {
		return err
	}
	defer src.Close()
	// A source without a log is refused before the destination is created.
	if _, err := src.Load(ctx); err != nil {
		return withHint(fmt.Errorf("the source %s: %w", redact(cfg.From), err), "check -from: the database to copy")
	}
	_, statErr := os.Lstat(cfg.To)
	made := !pgstore.IsURL(cfg.To) && errors.Is(statErr, fs.ErrNotExist)
	dst, err := openStore(ctx, "-to", cfg.To, true, cfg.DiskFloor.Bytes(), logger)
	if err != nil {
		return err
	}
	defer dst.Close()
	start, last := time.Now(), time.Now()
	st, tree, err := tlog.Copy(ctx, dst, src, tlog.CopyOptions{Progress: func(done, total int64) {
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "sumd: copied %d of %d records\n", done, total)
		}
	}})
	if err != nil {
		if _, lerr := dst.Load(ctx); made && errors.Is(lerr, tlog.ErrNoLog) {
			// Refused before the log was created in it (the disk's floor,
			// say): no empty file is left behind. Removed while its lock
			// is held (the deferred Close), as tlog.Open removes one.
			os.Remove(cfg.To)
		}
		return copyError(err, cfg.From, cfg.To)
	}
	fmt.Fprintf(stdout, "copied %s: %d records, signed head verified in full against every tile and record (%s to %s, %s)\n",
		st.Meta.Name, tree.N, redact(cfg.From), redact(cfg.To), time.Since(start).Round(time.Millisecond))
	return nil
}

// copyError adds to err, from tlog.Copy of from into to, the hint that
// says what to do.
func copyError(err error, from, to string) error {
	var d *tlog.DamagedError
	// An outage first: it says nothing about either database.
	switch {
	case errors.Is(err, tlog.ErrUnavailable):
		return withHint(err, postgresUnreachable+"; then run sumd copy again: it carries on from what the destination holds")
	case errors.Is(err, tlog.ErrOtherLog):
		return withHint(err, "copy into an empty database (a new bbolt file, or an empty PostgreSQL database), or into an earlier copy of the same log")
	case errors.Is(err, tlog.ErrUnexplainedData):
		// Running it again meets the same data.
		return withHint(err, "the destination holds data of an earlier copy that did not verify (or a log rolled back): copy into an empty database (a new bbolt file, or an empty PostgreSQL database)")
	case errors.Is(err, tlog.ErrLowDisk):
		// Running it again meets the same floor.
		return withHint(err, "-min-free-disk keeps that much free on the destination's disk: free space there, or lower -min-free-disk; then run sumd copy again: it carries on from what the destination holds")
	case errors.Is(err, syscall.ENOSPC):
		return withHint(err, diskFull(err, "")+": sumd copy carries on from what the destination holds")
	case errors.As(err, &d) && d.Path == to:
		return withHint(err, "the destination database is damaged: copy into a new file (a new bbolt file, or an empty PostgreSQL database)")
	case errors.As(err, &d):
		// Running it again reads the same damage.
		return withHint(err, "the source database is damaged: check it with sumd backup verify "+redact(from)+
			", and restore it from a good backup or a mirror (sumd restore: docs/operations.md#backups)")
	case errors.Is(err, tlog.ErrCorrupt):
		// The copy holds what the source served: the source's data does
		// not hash to its signed head, or an earlier copy in the
		// destination was damaged since.
		return withHint(err, ownHint(err, "the copy does not match the source's signed head: audit the source (sumd backup verify on its file, "+
			"or sumd verify -full against its server), and copy into an empty database to rule out the destination's earlier copy"))
	default:
		return withHint(err, "run sumd copy again: it carries on from what the destination holds, and the destination serves nothing until the copy is complete")
	}
}

// sameFile reports whether the bbolt files a and b name are one file: the
// copy would find it locked by itself.
func sameFile(a, b string) bool {
	if pgstore.IsURL(a) || pgstore.IsURL(b) {
		return false
	}
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// openStore opens the store db (given as flag) names: a PostgreSQL
// database or a bbolt file, which is created if create is set (the
// destination), and otherwise opened read-only (the source): a backup
// the operator may read but not write is copied too, and so is one
// another reader holds (sumd backup verify, another copy of it).
func openStore(ctx context.Context, flag, db string, create bool, minFree int64, logger *slog.Logger) (tlog.Store, error) {
	if pgstore.IsURL(db) {
		s, err := pgstore.Open(ctx, db, pgstore.Options{Logger: logger})
		if err != nil {
			// Opening it only connects and migrates: whatever else failed,
			// the server or the URL is the likely cause.
			return nil, postgresOpenError(db, err, postgresUnreachable)
		}
		return s, nil
	}
	s, err := tlog.OpenBolt(db, tlog.BoltOptions{Create: create, ReadOnly: !create, MinFree: minFree})
	switch {
	case errors.Is(err, tlog.ErrLocked):
		return nil, withHint(err, lockedHint)
	case err != nil:
		what := "the database file to copy"
		if create {
			what = "where the copy goes: a new file, or an empty PostgreSQL database"
		}
		return nil, withHint(err, "check "+flag+": "+what)
	}
	return s, nil
}
