package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/tlog"
)

func runAdd(args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := config.LoadAdd(args, os.Environ(), stderr)
	if err != nil {
		return configError(err)
	}
	if cfg.Server != "" {
		return addRemote(cfg, rest, stdout)
	}
	if cfg.TokenFile != "" {
		return usageError(errors.New("-token-file needs -server"), "add -server URL of the running sumd, or drop -token-file to work on the database file")
	}
	recs, note, err := addRecords(cfg.Gosum, rest)
	if err != nil {
		return err
	}
	logger := config.NewLogger(cfg.Log, stderr)
	l, err := openLog(cfg.Database, openOptions{create: cfg.Create, logger: logger, lockedHint: addLockedHint}, stderr)
	if err != nil {
		return err
	}
	defer l.Close()
	before := treeSize(l)
	ids, err := l.Add(context.Background(), recs...)
	var conflict *tlog.ConflictError
	if errors.As(err, &conflict) {
		return withHint(fmt.Errorf("nothing was added: %w", err),
			"a recorded version can never change; if the new content is right, publish it as a new version")
	}
	if errors.Is(err, tlog.ErrFatal) {
		return logStopped(l, err)
	}
	if err != nil {
		return fmt.Errorf("nothing was added: %w", err)
	}
	after := treeSize(l)
	if len(recs) == 1 {
		verb := "recorded"
		if after == before {
			verb = "already recorded, with the same hashes,"
		}
		fmt.Fprintf(stdout, "%s %s as record %d (tree size %d)\n", recs[0].Key(), verb, ids[0], after)
	} else {
		fmt.Fprintf(stdout, "added %d records, %d already present (tree size %d)\n", after-before, int64(len(recs))-(after-before), after)
	}
	if note != "" {
		fmt.Fprintln(stderr, "sumd:", note)
	}
	return nil
}

// addLockedHint is the hint when a server holds the database file.
const addLockedHint = "a running sumd serve holds the database: add through it with sumd add -server URL -token-file FILE " +
	"MODULE@VERSION [DIR|ZIP] (the server needs -admin-token-file), or stop it first"

// addRecords returns the records to add: those of a go.sum file, or of one
// module version hashed from a directory or zip.
func addRecords(gosumFile string, args []string) ([]gosum.Record, string, error) {
	const usageHint = "use: sumd add MODULE@VERSION DIR|ZIP, or sumd add -gosum FILE"
	switch {
	case gosumFile != "" && len(args) == 0:
		return readGoSum(gosumFile)
	case gosumFile == "" && len(args) == 2:
		r, err := hashModule(args[0], args[1])
		return []gosum.Record{r}, "", err
	case gosumFile != "":
		return nil, "", usageError(errors.New("-gosum takes no further arguments"), usageHint)
	default:
		return nil, "", usageError(fmt.Errorf("want MODULE@VERSION and a directory or zip, got %d arguments", len(args)), usageHint)
	}
}

// readGoSum reads the complete records of a go.sum file.
func readGoSum(file string) ([]gosum.Record, string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, "", withHint(fmt.Errorf("failed to read go.sum file: %w", err), "pass -gosum with the path of a go.sum file")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, gosum.MaxFileSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("failed to read %s: %w", file, err)
	}
	sums, err := gosum.ParseFile(data)
	if err != nil {
		return nil, "", withHint(fmt.Errorf("%s: %w", file, err), "nothing was added; fix or remove the line named above")
	}
	var note string
	if n := len(sums.GoModOnly); n > 0 {
		note = fmt.Sprintf("skipped %d module version(s) with only a go.mod line (a record needs both hashes), e.g. %s", n, sums.GoModOnly[0])
	}
	if len(sums.Records) == 0 {
		return nil, "", withHint(fmt.Errorf("%s has no complete module versions", file), "a go.sum line pair (zip and go.mod hash) is needed per version")
	}
	return sums.Records, note, nil
}

// hashModule hashes module version arg ("path@version") from a directory or
// a module zip, as the go command would.
func hashModule(arg, src string) (gosum.Record, error) {
	m, err := parseModuleArg(arg)
	if err != nil {
		return gosum.Record{}, err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return gosum.Record{}, withHint(fmt.Errorf("failed to read module source: %w", err), "give a module directory (holding go.mod) or a module zip")
	}
	var sums modhash.Sums
	if fi.IsDir() {
		sums, err = modhash.HashDir(m, src)
	} else {
		sums, err = modhash.HashZip(m, src, nil)
	}
	if err != nil {
		return gosum.Record{}, withHint(err, "nothing was added; the go command would refuse this module too")
	}
	return gosum.Record{Path: m.Path, Version: m.Version, Hash: sums.Hash, GoMod: sums.GoMod}, nil
}

// logStopped returns the log's fatal error, if it stopped with one, and err
// otherwise: a log that cannot tell whether its last write was stored must
// make sumd exit non-zero, saying so, so that the operator (or a
// supervisor) runs it again and opening the database re-verifies it.
func logStopped(l *tlog.Log, err error) error {
	if lerr := l.Err(); errors.Is(lerr, tlog.ErrFatal) {
		return withHint(lerr, "restart sumd: opening the database re-verifies it; if this recurs, check the disk (dmesg, SMART)")
	}
	return err
}
