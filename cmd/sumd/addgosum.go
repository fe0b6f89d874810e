package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"

	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/newdirs"
	"github.com/sumd-project/sumd/internal/scratch"
	"github.com/sumd-project/sumd/internal/seed"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/upstream"
)

// addGoSums records the module versions of the go.sum files paths name
// (files, or directories walked for go.sum files), in the database file or
// through a server's admin API (-server). Versions with both lines are
// recorded; those with one line are checked against the log by the hash of
// that line (a mismatch is a conflict, a match is recorded already), and
// the others are listed by file and line and, with -upstream, completed
// from the module proxies first.
//
// The files stream through an external sort (seed.Sort), so their size is
// bounded by the disk of the temporary directory, not by memory. Every
// version is checked against the log before anything is committed: a
// conflict, with the log or between the files, adds nothing. Then the
// records are committed in chunks, each one atomic and covered by its own
// signed tree head. A run that stops half way (a crash, a full disk) has
// committed whole chunks only, and running it again adds the rest: what is
// recorded is "already present". SIGINT or SIGTERM stops it at the next
// line or chunk, saying what was added; a second one kills it.
func addGoSums(cfg *config.Add, paths []string, stdout, stderr io.Writer) (err error) {
	ctx, stop := interruptContext()
	defer stop()
	committing, added := false, int64(0)
	defer func() {
		if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = interrupted(committing, added)
		}
	}()
	upstreamOpts, err := gosumUpstream(cfg, stderr)
	if err != nil {
		return err
	}
	files, err := seed.Files(paths)
	if err != nil {
		return withHint(err, "pass -gosum a go.sum file or a directory holding go.sum files; more may follow the flags")
	}
	// The files are read and checked before the database is opened: a
	// refused file must not leave a new database (-create) behind.
	tmp, err := openGosumTmp(cfg, stderr)
	if err != nil {
		return err
	}
	defer func() { tmp.close(err != nil) }()
	fetch, err := gosumFetcher(upstreamOpts, tmp.dir)
	if err != nil {
		return err
	}
	// A wrong -server or credentials are said now, not after the sort.
	if tmp.remote != nil {
		if err := tmp.remote.CheckAccess(ctx); err != nil {
			return remoteError(err)
		}
	}
	// The runs keep -min-free-disk free: -tmp-dir is by default beside
	// the database, or $TMPDIR, often a running server's disk too.
	sorted, err := seed.Sort(ctx, files, seed.Options{TempDir: tmp.dir, MinFree: cfg.DiskFloor.Bytes()})
	var bad *seed.LineError
	switch {
	case errors.As(err, &bad):
		return withHint(err, fixLineHint)
	case errors.Is(err, tlog.ErrLowDisk):
		return withHint(err, fmt.Sprintf("nothing was added; the sort's temporary files (about 80 bytes a line) go in -tmp-dir, and keep -min-free-disk (%d MiB) free on its disk: free space there, point -tmp-dir at a larger disk, or lower -min-free-disk", cfg.MinFreeDisk))
	case err != nil:
		return withHint(err, "nothing was added; the go.sum files must be readable, and the sort's temporary files (about 80 bytes a line) go in -tmp-dir: free space there or point it elsewhere")
	}
	defer sorted.Close()
	sink, err := tmp.openSink()
	if err != nil {
		return err
	}
	defer sink.close()
	defer func() {
		if err != nil {
			sink.discard()
		}
	}()
	sv, err := sorted.Survey(ctx, sink, fetch != nil)
	if err != nil {
		return sink.fail(err)
	}
	fmt.Fprintf(stdout, "read %d go.sum file(s): %d lines, %d complete module versions, %d with one line only",
		len(files), sorted.Lines, sv.Records, sv.Incompletes+sv.Present)
	if sv.Present > 0 {
		fmt.Fprintf(stdout, ", %d of which recorded already with the same hash", sv.Present)
	}
	if sorted.Ignored > 0 {
		fmt.Fprintf(stdout, "; %d line(s) dropped: the hash of an empty go.mod file, which the go command ignores", sorted.Ignored)
	}
	fmt.Fprintln(stdout)
	if err := refuseConflicts(stderr, sv); err != nil {
		return err
	}
	// With -upstream, -strict is for the versions it cannot complete.
	if cfg.Strict && fetch == nil && sv.Incompletes > 0 {
		listIncomplete(stderr, sv.Incomplete, sv.Incompletes)
		return withHint(fmt.Errorf("%d module version(s) have only one of their two go.sum lines; nothing was added (-strict)", sv.Incompletes),
			"drop -strict to add the complete versions, or add -upstream PROXY to fetch the others")
	}
	left, nLeft, failed := sv.Incomplete, sv.Incompletes, []seed.Failure(nil)
	if fetch != nil && sv.Incompletes > 0 {
		done, f, err := seed.Complete(ctx, fetch, sv.Incomplete, 8)
		if err != nil {
			return fmt.Errorf("nothing was added: %w", err)
		}
		fmt.Fprintf(stdout, "completed %d of %d from %s\n", len(done), sv.Incompletes, cfg.Upstream)
		if err := sorted.AddCompleted(ctx, sink, sv, done); err != nil {
			return sink.fail(err)
		}
		if err := refuseConflicts(stderr, sv); err != nil {
			return err
		}
		left, nLeft, failed = nil, 0, f
	}
	if cfg.Strict && len(failed) > 0 {
		listFailed(stderr, failed)
		return withHint(fmt.Errorf("%d module version(s) have only one of their two go.sum lines and were not completed from upstream; nothing was added (-strict)", len(failed)),
			"drop -strict to add the others, or fix or remove the lines named above (or the module proxy, if it should serve them)")
	}
	// One-line versions are listed, not fatal (without -strict): a run
	// with no complete version to add still lists them and succeeds.
	switch {
	case sv.Records > 0:
		committing = true
		var size int64
		added, size, err = sorted.Commit(ctx, sink) // the deferred interrupted reads added
		if err != nil {
			return sink.commitFailed(err, added)
		}
		fmt.Fprintf(stdout, "added %d records, %d already present (%s)\n", added, int64(sv.Records)-added, treeSizeNote(size))
	case nLeft+len(failed) > 0:
		fmt.Fprintln(stdout, "no complete module versions to add")
	case sv.Present > 0:
		fmt.Fprintln(stdout, "nothing to add: every module version is recorded already")
	default:
		fmt.Fprintln(stdout, "nothing to add: the go.sum files hold no module versions")
	}
	listIncomplete(stderr, left, nLeft)
	listFailed(stderr, failed)
	if n := nLeft + len(failed); n > 0 {
		fmt.Fprintf(stdout, "not recorded: %d module version(s) with one go.sum line only; a go command whose go.sum lacks them "+
			"looks them up and gets 404 until they are recorded: run again with -upstream PROXY, or let sumd serve -upstream PROXY "+
			"record each on its first lookup\n", n)
	}
	return nil
}

// interrupted is the error of a run a signal stopped: before it committed
// anything, or after added records were.
func interrupted(committing bool, added int64) error {
	if !committing {
		return withHint(errors.New("interrupted (SIGINT or SIGTERM): nothing was added"), "run the same command again to add the records")
	}
	return withHint(fmt.Errorf("interrupted (SIGINT or SIGTERM) while adding: %d records were added, and the chunk being committed may have been too", added),
		"running the same command again adds the rest: what was added is counted as already present")
}

// refuseConflicts lists the versions the log holds with other hashes and
// returns the error that stops the run, or nil if there are none.
func refuseConflicts(w io.Writer, sv *seed.Survey) error {
	if sv.Conflicts == 0 {
		return nil
	}
	for _, l := range sv.Listed {
		fmt.Fprintf(w, "sumd: %s\n", l)
	}
	if sv.Conflicts > len(sv.Listed) {
		fmt.Fprintf(w, "sumd: ... and %d more recorded with other hashes\n", sv.Conflicts-len(sv.Listed))
	}
	return withHint(fmt.Errorf("%d module version(s) are recorded with other hashes; nothing was added", sv.Conflicts),
		"a recorded version can never change: remove those lines, or fix the go.sum files if they are wrong")
}

// gosumUpstream checks -upstream and -upstream-auth and returns the
// options of their fetcher, or nil without -upstream.
func gosumUpstream(cfg *config.Add, stderr io.Writer) (*upstream.FetcherOptions, error) {
	if cfg.Upstream == "" {
		if cfg.UpstreamAuth != "" {
			return nil, usageError(errors.New("upstream-auth needs -upstream"), "set -upstream to your module proxy, e.g. -upstream https://athens.corp.example")
		}
		return nil, nil
	}
	sources, err := parseSources("upstream", cfg.Upstream, cfg.UpstreamAuth, "https://athens.corp.example,file:///srv/mirror")
	if err != nil {
		return nil, err
	}
	// The floor of -min-free-disk: zips spill into -tmp-dir, by default
	// <db>.tmp on the database's disk (with PostgreSQL or -server, a new
	// directory under $TMPDIR, which keeps it too: 0 turns it off).
	return &upstream.FetcherOptions{Sources: sources, MinFree: cfg.DiskFloor.Bytes(), Logger: config.NewLogger(cfg.Log, stderr)}, nil
}

// gosumFetcher returns the fetcher of opts (gosumUpstream), that of sumd
// serve, or nil, with its zips over 1 MiB in the scratch directory dir
// that openGosumTmp resolved from -tmp-dir: cfg.TmpDir may be "", which
// would put them in $TMPDIR.
func gosumFetcher(opts *upstream.FetcherOptions, dir string) (seed.Fetch, error) {
	if opts == nil {
		return nil, nil
	}
	o := *opts
	o.TempDir = dir
	f, err := upstream.NewFetcher(o)
	if err != nil {
		return nil, withHint(err, "check -upstream and -upstream-auth")
	}
	return f.Fetch, nil
}

// listIncomplete lists versions with one go.sum line, as "sumd: FILE:LINE:
// …": incs are the first of n.
func listIncomplete(w io.Writer, incs []seed.Incomplete, n int) {
	shown := min(len(incs), seed.MaxListed)
	for _, inc := range incs[:shown] {
		fmt.Fprintf(w, "sumd: %s\n", inc.Describe())
	}
	if n > shown {
		fmt.Fprintf(w, "sumd: ... and %d more with one go.sum line only\n", n-shown)
	}
}

// listFailed lists the versions -upstream could not complete.
func listFailed(w io.Writer, failed []seed.Failure) {
	for i, f := range failed {
		if i == seed.MaxListed {
			fmt.Fprintf(w, "sumd: ... and %d more not completed from upstream\n", len(failed)-seed.MaxListed)
			break
		}
		fmt.Fprintf(w, "sumd: %s: not completed from upstream: %v\n", f.Describe(), f.Err)
	}
}

// A gosumSink is where sumd add -gosum records, with what the CLI needs
// around it: the database file (seed.LogSink), or a running sumd's admin API.
type gosumSink struct {
	seed.Sink
	explain func(error) error // adds what to do to an error of the sink
	close   func()
	discard func() // after a refusal: removes a database this run created, if it holds nothing
}

// fail adds what to do to an error of a pass over the sorted lines: two
// lines of the files that disagree, two lines too long together for a
// record, or an error of the sink.
func (s *gosumSink) fail(err error) error {
	var files *seed.ConflictError
	var line *seed.LineError
	if errors.As(err, &files) || errors.As(err, &line) {
		return withHint(err, fixLineHint)
	}
	return s.explain(err)
}

// commitFailed is the error of a Commit that failed after added records.
func (s *gosumSink) commitFailed(err error, added int64) error {
	// A version another writer recorded with other hashes after the
	// survey: running again adds the rest only once its lines are gone or
	// fixed, since the rerun's survey refuses on it.
	if isConflict(err) {
		if added > 0 {
			err = fmt.Errorf("%w (this chunk added nothing; %d records were added before it)", err, added)
		}
		return withHint(err, "another writer recorded this version with other hashes after this run checked the go.sum files, and a recorded version can never change: "+
			"remove or fix its lines in the go.sum files, then run the same command again to add the rest")
	}
	if added > 0 {
		err = fmt.Errorf("%w (%d records were added before this failure; once its cause is mended, running the same command again adds the rest)", err, added)
	}
	return s.fail(err)
}

// isConflict reports whether err is the log's refusal of a version it
// holds with other hashes, here or through the admin API.
func isConflict(err error) bool {
	var conflict *tlog.ConflictError
	var ae *admin.Error
	return errors.As(err, &conflict) || errors.As(err, &ae) && ae.Status == http.StatusConflict
}

// The hints of refused go.sum lines and records.
const (
	fixLineHint      = "nothing was added; fix or remove the line named above"
	neverChangesHint = "a recorded version can never change; if the new content is right, publish it as a new version"
)

// A gosumTmp is the temporary directory of sumd add -gosum's sort, made
// ready (checked, locked, cleared of a crash's runs) at the start rather
// than at the sort's first run, minutes in; and how to open the sink after
// the sort.
type gosumTmp struct {
	dir      string
	done     func()
	made     *madeDirs // for a new database file: undone after a refusal
	openSink func() (*gosumSink, error)
	remote   *admin.Client // with -server: the sink's client; nil otherwise
}

// close removes the scratch directory sumd add made for itself, and after
// a refusal (refused) what it made for a new database; the database and
// the sort's files must be closed and removed first.
func (t *gosumTmp) close(refused bool) {
	t.done()
	if refused {
		t.made.undo()
	}
}

func openGosumTmp(cfg *config.Add, stderr io.Writer) (*gosumTmp, error) {
	logger := config.NewLogger(cfg.Log, stderr)
	t := &gosumTmp{openSink: func() (*gosumSink, error) { return openLogSink(cfg, logger, stderr) }}
	db := cfg.DB
	if cfg.Server != "" {
		// The credentials are read now: a wrong -token-file is said at once.
		c, err := adminClient(cfg)
		if err != nil {
			return nil, err
		}
		t.remote = c
		t.openSink = func() (*gosumSink, error) {
			return &gosumSink{Sink: remoteSink{c: c}, explain: remoteError, close: func() {}, discard: func() {}}, nil
		}
		db = "" // no database here: a directory of our own
	}
	if err := missingDatabase(db, cfg.Create, "add"); err != nil {
		return nil, err // before the scratch directory is made beside it
	}
	dir, removeDir, err := scratchDir(cfg.TmpDir, db)
	if err != nil {
		return nil, err
	}
	if file := dbFile(db); file != "" && !exists(file) {
		t.made = madeFor(file, dir)
	}
	if err := openTmpDir(dir, logger); err != nil {
		removeDir()
		if t.made != nil {
			// Not the scratch directory: its lock may be another
			// process's, which made it meanwhile.
			t.made.scratch = ""
			t.made.undo()
		}
		if errors.Is(err, scratch.ErrInUse) {
			// The directory beside the database is sumd serve's too, which
			// takes it once it holds the database: say that, as sumd add
			// does, not that a -tmp-dir of its own would do.
			if herr := heldDatabase(dbFile(db)); herr != nil {
				return nil, herr
			}
		}
		return nil, err
	}
	t.dir, t.done = dir, removeDir
	return t, nil
}

// madeDirs are the directories sumd add -create makes for a new database
// file: those missing on its path, and its scratch directory beside it,
// or -tmp-dir if missing.
type madeDirs struct {
	scratch string   // "" if it was there
	parents []string // missing on the paths of both
}

// madeFor returns what will be made for file, a database file that does
// not exist, with its scratch directory dir.
func madeFor(file, dir string) *madeDirs {
	m := &madeDirs{parents: newdirs.Missing(filepath.Dir(file))}
	if !exists(dir) {
		m.scratch = dir
		for _, d := range newdirs.Missing(filepath.Dir(dir)) {
			if !slices.Contains(m.parents, d) {
				m.parents = append(m.parents, d)
			}
		}
	}
	return m
}

// undo removes what a refused run made for a new database, so that it
// leaves nothing behind, once the database (if this run created it) is
// removed. A directory is removed only while empty: one that holds
// something else (the database, kept because records were added or
// because another process created it, or another's files) stays, and so
// do its parents. The scratch directory holds the lock file scratch.Open
// made in it, removed first; the sort's runs are gone by now.
func (m *madeDirs) undo() {
	if m == nil {
		return
	}
	if m.scratch != "" {
		os.Remove(filepath.Join(m.scratch, scratchLock))
		os.Remove(m.scratch)
	}
	newdirs.Remove(m.parents)
}

// scratchLock is the file scratch.Open locks its directory with.
const scratchLock = "sumd.lock"

// heldDatabase is the error of a bbolt database file another process
// holds, with the hint to add the go.sum files through the server; nil if
// none does, or db is no file (PostgreSQL, -server, not there yet). It
// takes the shared lock of a reader for a moment, never the file itself.
func heldDatabase(db string) error {
	if db == "" || !exists(db) {
		return nil
	}
	s, err := tlog.OpenBolt(db, tlog.BoltOptions{ReadOnly: true})
	if errors.Is(err, tlog.ErrLocked) {
		return withHint(err, gosumLockedHint)
	}
	if err == nil {
		s.Close()
	}
	return nil
}

// openLogSink opens the database.
func openLogSink(cfg *config.Add, logger *slog.Logger, stderr io.Writer) (*gosumSink, error) {
	l, err := openLog(cfg.Database, openOptions{cmd: "add", create: cfg.Create, logger: logger, lockedHint: gosumLockedHint, minFree: cfg.DiskFloor.Bytes()}, stderr)
	if err != nil {
		return nil, err
	}
	explain := func(err error) error {
		var conflict *tlog.ConflictError
		switch {
		case errors.As(err, &conflict):
			return withHint(err, neverChangesHint)
		case errors.Is(err, tlog.ErrFatal):
			return logStopped(l, err)
		}
		return err
	}
	s := &gosumSink{Sink: seed.LogSink{Log: l}, explain: explain, close: func() { l.Close() }, discard: func() {}}
	if l.Created() {
		// The database must be open to check the files against it, but a
		// refused run must not leave behind a new, empty log that the next
		// run (without -create) would take as intended.
		s.discard = func() {
			s.close = func() {}
			discardCreated(l, cfg.DB, logger, stderr)
		}
	}
	return s, nil
}
