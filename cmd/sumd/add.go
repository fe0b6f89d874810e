package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/newdirs"
	"github.com/sumd-project/sumd/internal/proxytree"
	"github.com/sumd-project/sumd/internal/tlog"
)

func runAdd(args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := loadArgs(config.LoadAdd, args, stderr)
	if err != nil {
		return err
	}
	if cfg.TokenFile != "" && cfg.Server == "" {
		return usageError(errors.New("-token-file needs -server"), "add -server URL of the running sumd, or drop -token-file to work on the database file")
	}
	if cfg.Gosum != "" {
		if cfg.ProxyDir != "" {
			return usageError(errors.New("-proxy-dir publishes one module version: it needs MODULE@VERSION DIR|ZIP, not -gosum"), "use: sumd add -proxy-dir DIR MODULE@VERSION DIR|ZIP")
		}
		return addGoSums(cfg, append([]string{cfg.Gosum}, rest...), stdout, stderr)
	}
	if cfg.Server != "" {
		return addRemote(cfg, rest, stdout)
	}
	if cfg.Strict {
		return usageError(errors.New("-strict needs -gosum"), "use: sumd add -gosum FILE|DIR -strict")
	}
	if len(rest) != 2 {
		return usageError(fmt.Errorf("want MODULE@VERSION and a directory or zip, got %d arguments", len(rest)),
			"use: sumd add MODULE@VERSION DIR|ZIP, or sumd add -gosum FILE|DIR")
	}
	src, err := openModule(rest[0], rest[1])
	if err != nil {
		return err
	}
	defer src.close()
	r, err := src.hash()
	if err != nil {
		return err
	}
	added, err := record(cfg, []gosum.Record{r}, stderr)
	if err != nil {
		return err
	}
	verb := "recorded"
	if added.new == 0 {
		verb = "already recorded, with the same hashes,"
	}
	fmt.Fprintf(stdout, "%s %s as record %d (tree size %d)\n", r.Key(), verb, added.ids[0], added.size)
	if cfg.ProxyDir != "" {
		return publish(cfg.ProxyDir, src, stdout)
	}
	return nil
}

// An addition is what record added.
type addition struct {
	ids  []int64 // the record id of each record given
	new  int64   // how many were not recorded before
	size int64   // the tree size after
}

// record opens the log and adds recs, all or nothing.
func record(cfg *config.Add, recs []gosum.Record, stderr io.Writer) (*addition, error) {
	logger := config.NewLogger(cfg.Log, stderr)
	var made []string // for a new database file: removed after a refusal
	if file := dbFile(cfg.DB); cfg.Create && file != "" && !exists(file) {
		made = newdirs.Missing(filepath.Dir(file))
	}
	l, err := openLog(cfg.Database, openOptions{cmd: "add", create: cfg.Create, logger: logger, lockedHint: addLockedHint, minFree: cfg.DiskFloor.Bytes()}, stderr)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	added, err := addTo(l, recs)
	if err != nil && l.Created() {
		discardCreated(l, cfg.DB, logger, stderr)
		newdirs.Remove(made) // those left empty: kept with a kept database
	}
	return added, err
}

// discardCreated closes l, a log this run created (l.Created) in the
// database db and then refused to go on with, and removes it if it holds
// no record: a refused run must not leave a new, empty log behind, which
// the next run (without -create) would take as intended. Only a log this
// run created (a store that held none: nothing is lost if the file was
// there, empty), never one that was there before, nor one another writer
// created first.
//
// A bbolt file is removed while its lock is held, and only then closed: a
// writer waiting for the lock (a sumd serve -create) that got it before
// the removal would sign heads on a file no longer at the path; after it,
// the writer finds the path empty and fails as for a missing database.
// PostgreSQL has no such lock, and another process may have opened the
// log meanwhile: its rows are deleted only while it is still exactly as
// this run created it (pgstore.DiscardNew).
func discardCreated(l *tlog.Log, db string, logger *slog.Logger, stderr io.Writer) {
	head, file := l.Published(), dbFile(db)
	switch {
	case head.Tree.N != 0:
		l.Close()
		return
	case file == "":
		l.Close()
		discardPostgres(db, head.Signed, logger, stderr)
		return
	}
	defer closeDiscarded(l)
	if err := os.Remove(file); err != nil {
		fmt.Fprintf(stderr, "sumd: failed to remove the new, empty database: %v\n", err)
	}
}

// closeDiscarded closes l, letting its lock go, then runs discardClosed.
func closeDiscarded(l *tlog.Log) {
	l.Close()
	if discardClosed != nil {
		discardClosed()
	}
}

// discardClosed, if set by a test, runs once discardCreated has let the
// lock of the database go: a test waits there for a writer waiting for
// it.
var discardClosed func()

// addTo adds recs to l, all or nothing.
func addTo(l *tlog.Log, recs []gosum.Record) (*addition, error) {
	// AddNew says which records this call appended: ids compared with the
	// tree size before cannot, on a store another sumd writes (PostgreSQL),
	// where one it recorded meanwhile has an id past that size too.
	ids, appended, err := l.AddNew(context.Background(), recs...)
	var conflict *tlog.ConflictError
	if errors.As(err, &conflict) {
		return nil, withHint(fmt.Errorf("nothing was added: %w", err), neverChangesHint)
	}
	if errors.Is(err, tlog.ErrFatal) {
		return nil, logStopped(l, err)
	}
	if err != nil {
		return nil, fmt.Errorf("nothing was added: %w", err)
	}
	var n int64
	for _, a := range appended {
		if a {
			n++
		}
	}
	return &addition{ids: ids, new: n, size: treeSize(l)}, nil
}

// The hints when another process holds a bbolt database file: bbolt's
// lock does not say which, and sumd serve is only the most likely.
const (
	lockedBy   = "another sumd process (serve, add, copy, key…) holds the database"
	lockedHint = lockedBy + ": wait for it to finish, or stop it first"
	// addLockedHint points to adding through a server.
	addLockedHint = lockedBy + ": if it is sumd serve, add through it with sumd add -server URL -token-file FILE " +
		"MODULE@VERSION [DIR|ZIP] (the server needs -admin-token-file), or stop it; otherwise wait for it to finish"
	// gosumLockedHint is addLockedHint for sumd add -gosum.
	gosumLockedHint = lockedBy + ": if it is sumd serve, add through it with sumd add -server URL -token-file FILE " +
		"-gosum FILE|DIR... (the server needs -admin-token-file), or stop it; otherwise wait for it to finish"
)

// A moduleSource is the module version sumd add records: its zip, built
// from a directory as the go command would, or given.
type moduleSource struct {
	m   module.Version
	zip string
	tmp string // the temporary directory of a zip built here
}

// openModule checks arg ("path@version") and zips src if it is a directory.
func openModule(arg, src string) (*moduleSource, error) {
	m, err := parseModuleArg(arg)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, withHint(fmt.Errorf("failed to read module source: %w", err), "give a module directory (holding go.mod) or a module zip")
	}
	if !fi.IsDir() {
		return &moduleSource{m: m, zip: src}, nil
	}
	tmp, err := os.MkdirTemp("", "sumd-add-*")
	if err != nil {
		return nil, fmt.Errorf("failed to create temporary directory: %w", err)
	}
	s := &moduleSource{m: m, zip: filepath.Join(tmp, "module.zip"), tmp: tmp}
	if err := zipDir(m, src, s.zip); err != nil {
		s.close()
		return nil, withHint(err, "nothing was added; the go command would refuse this module too")
	}
	return s, nil
}

func (s *moduleSource) close() {
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
}

// hash validates the zip and hashes it as the go command would.
func (s *moduleSource) hash() (gosum.Record, error) {
	sums, err := modhash.HashZip(s.m, s.zip, nil)
	if err != nil {
		return gosum.Record{}, withHint(err, "nothing was added; the go command would refuse this module too")
	}
	return gosum.Record{Path: s.m.Path, Version: s.m.Version, Hash: sums.Hash, GoMod: sums.GoMod}, nil
}

// publish writes the recorded version into the GOPROXY file tree dir,
// holding the tree's lock (lockProxyDir).
func publish(dir string, src *moduleSource, stdout io.Writer) error {
	mod, err := modhash.GoModOf(src.m, src.zip)
	if err == nil {
		err = publishLocked(dir, src, mod)
	}
	if errors.Is(err, proxytree.ErrChanged) {
		return withHint(err, "the version is recorded; the tree holds another build of it: remove that version from "+dir+" only if no one has downloaded it")
	}
	if err != nil {
		return withHint(fmt.Errorf("recorded, but failed to publish in %s: %w", dir, err), "fix the cause and run the same sumd add again: recording is a no-op the second time")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	fmt.Fprintf(stdout, "published %s in the GOPROXY tree %s (GOPROXY=file://%s)\n", src.m, dir, filepath.ToSlash(abs))
	return nil
}

// publishLocked is proxytree.Add under the tree's lock.
func publishLocked(dir string, src *moduleSource, mod []byte) error {
	unlock, err := lockProxyDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	if publishInside != nil {
		publishInside(src.m)
	}
	return proxytree.Add(dir, src.m, src.zip, mod, time.Now())
}

// publishInside, if set by a test, runs in publishLocked once the lock is
// taken, before the tree is read.
var publishInside func(module.Version)

// logStopped returns the log's fatal error, if it stopped with one, and err
// otherwise: a log that cannot tell whether its last write was stored must
// make sumd exit non-zero, saying so, so that the operator (or a
// supervisor) runs it again and opening the database re-verifies it. An
// err that already says the log stopped is kept, with what it adds (how
// many records were added before).
func logStopped(l *tlog.Log, err error) error {
	lerr := l.Err()
	if !errors.Is(lerr, tlog.ErrFatal) {
		return err
	}
	if !errors.Is(err, tlog.ErrFatal) {
		err = lerr
	}
	return withHint(err, stoppedHint(err))
}

// stoppedHint says what to do after the log stopped with err.
func stoppedHint(err error) string {
	if errors.Is(err, syscall.ENOSPC) {
		return diskFull(err, "") + ": opening the database re-verifies it and carries on from what is stored"
	}
	return "restart sumd: opening the database re-verifies it; if this recurs, check the disk (dmesg, SMART)"
}
