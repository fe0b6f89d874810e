package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/mirror"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/pgstore"
)

// runRestore rebuilds a primary's database from a full mirror of it: into
// a new file beside it, verified in full and opened with the log's keys
// before it replaces the database, which is kept under another name.
func runRestore(args []string, stdout, stderr io.Writer) error {
	batchGC()
	cfg, err := loadFlags(config.LoadRestore, args, stderr, "sumd restore takes flags only")
	if err != nil {
		return err
	}
	if pgstore.IsURL(cfg.DB) {
		return usageError(errors.New("sumd restore writes a bbolt file; this database is in PostgreSQL"),
			"restore into a new file (-db FILE), then copy it in with sumd copy -from FILE -to "+redact(cfg.DB)+
				" (docs/mirrors.md, \"Restore from a mirror\": if the copy refuses the database as another log, empty its log's tables but keep sumd_aux)")
	}
	logger := config.NewLogger(cfg.Log, stderr)
	keys, err := readKeys(cfg.Database, "restore")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	vkeys := make([]string, len(keys))
	for i, k := range keys {
		vkeys[i] = k.VerifierKey()
	}
	src, err := restoreSource(ctx, cfg, strings.Join(vkeys, ","), stdout, stderr)
	if err != nil {
		return err
	}
	defer src.Close()
	var old *itlog.BoltStore
	if exists(cfg.DB) {
		if old, err = itlog.OpenBolt(cfg.DB, itlog.BoltOptions{ReadOnly: true}); err != nil {
			if errors.Is(err, itlog.ErrLocked) {
				return withHint(err, "stop sumd serve before restoring its database")
			}
			return oldUnreadable(err, cfg.DB)
		}
		defer old.Close()
		if err := checkLostHead(ctx, old, src); err != nil {
			return err
		}
	}
	tmp := cfg.DB + ".restore.tmp"
	os.Remove(tmp) // what a failed restore left
	dst, err := itlog.OpenBolt(tmp, itlog.BoltOptions{Create: true, MinFree: cfg.DiskFloor.Bytes()})
	if err != nil {
		return err
	}
	var oldStore itlog.Store
	if old != nil {
		oldStore = old
	}
	bar := newProgress(stderr, "restoring records")
	st, err := mirror.Restore(ctx, dst, src, keys, oldStore, mirror.RestoreOptions{Logger: logger, Progress: bar.update})
	bar.finish()
	dst.Close()
	if err == nil {
		err = verifyRestored(tmp, keys, cfg.DiskFloor.Bytes(), logger)
	}
	if err != nil {
		os.Remove(tmp)
		return withHint(err, restoreFailedHint(err, cfg))
	}
	var oldCloser io.Closer // not a nil *BoltStore in an interface
	if old != nil {
		oldCloser = old
	}
	kept, err := swapIn(cfg.DB, tmp, oldCloser)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s: tree %d (was %d), signed with %s\n", st.Name, st.Tree.N, st.Previous.N, strings.Join(st.VKeys, ", "))
	if kept != "" {
		fmt.Fprintf(stdout, "the previous database is kept as %s\n", kept)
	}
	if isURL(cfg.From) {
		fmt.Fprintf(stdout, "the mirror restored from is kept as %s: a later restore from %s brings it up to date instead of starting afresh; remove it if you will not restore again\n",
			cfg.DB+".restore-mirror", cfg.From)
	}
	return nil
}

// restoreFailedHint says what to do about err, which stopped a restore
// before it changed anything: a disk too full to hold the restored
// database (about the mirror's size) stops the next attempt the same way.
func restoreFailedHint(err error, cfg *config.Restore) string {
	const unchanged = "nothing was changed: the database (if any) is as it was"
	switch {
	case errors.Is(err, itlog.ErrLowDisk):
		return fmt.Sprintf("%s; -min-free-disk keeps %d MiB free on the disk of %s, and the restored database (about the size of the mirror; from a URL, the mirror too) is written beside it: free space there, or lower -min-free-disk",
			unchanged, cfg.MinFreeDisk, filepath.Dir(cfg.DB))
	case errors.Is(err, syscall.ENOSPC):
		return unchanged + "; " + diskFull(err, filepath.Dir(cfg.DB))
	}
	return unchanged
}

// oldUnreadable is the refusal of a database at db that restore cannot
// open. Restore reads it to check that the mirror is not behind it (nor
// behind a head it recorded as lost), and it does not replace a file it
// could not read: the operator moves it aside, keeping it, and restores
// without those checks, which its own error (a damaged file's says to
// restore it from a mirror) does not say.
func oldUnreadable(err error, db string) error {
	return withHint(fmt.Errorf("failed to read the database restore would replace: %w", err),
		"nothing was changed; if "+db+" is damaged, move it aside (keep it) and run the same restore again: without it, restore cannot check that the mirror is not behind it, so restore from the most up-to-date mirror you have (docs/mirrors.md, \"Restore from a mirror\"); if it cannot be read for another reason (permissions), fix that")
}

// isURL reports whether restore's -from names a server, not a file.
func isURL(from string) bool {
	return strings.HasPrefix(from, "http://") || strings.HasPrefix(from, "https://")
}

// restoreSource opens the mirror to restore from: a mirror database file,
// read-only; or, for a URL, a mirror of it kept beside the database
// (resumed if a restore was interrupted) and brought up to date first.
func restoreSource(ctx context.Context, cfg *config.Restore, vkeys string, stdout, stderr io.Writer) (*itlog.Log, error) {
	logger := config.NewLogger(cfg.Log, stderr)
	if !isURL(cfg.From) {
		s, err := itlog.OpenBolt(cfg.From, itlog.BoltOptions{ReadOnly: true})
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usageError(err, "-from names a mirror database file, or the http(s):// URL of a server serving the mirror")
		}
		if err != nil {
			return nil, restoreFromError(err, cfg.From)
		}
		l, err := itlog.OpenStore(s, itlog.Options{VerifierKeys: strings.Split(vkeys, ","), Verify: itlog.VerifyFull, Logger: logger})
		if err != nil {
			s.Close()
			return nil, restoreFromError(err, cfg.From)
		}
		return l, nil
	}
	path := cfg.DB + ".restore-mirror"
	_, statErr := os.Lstat(path)
	made := errors.Is(statErr, fs.ErrNotExist)
	l, stored, err := openMirror(path, vkeys, nil, true, cfg.DiskFloor.Bytes(), "", logger)
	if err != nil {
		return nil, restoreMirrorOpenError(err, cfg, path)
	}
	mc := &mirror.Config{URL: cfg.From, Auth: cfg.Auth, ClientCert: cfg.ClientCert.ClientCert, ClientKey: cfg.ClientKey}
	f, err := newFollower(l, mc, followerOptions{logger: logger})
	if err == nil {
		err = recordReadWith(l, stored, mc)
	}
	if err == nil {
		bar := newProgress(stderr, "mirroring records")
		f.SetProgress(bar.update)
		var res *mirror.Result
		res, err = f.Sync(ctx)
		bar.finish()
		if err == nil {
			fmt.Fprintf(stdout, "mirrored %s from %s into %s: tree %d\n", l.Name(), cfg.From, path, res.To.N)
		}
	}
	if err != nil {
		// A mirror file this restore made and mirrored nothing into (the
		// URL unreachable, say) has nothing for the next restore to
		// resume from: it is not left behind. Removed while its lock is
		// held, as openMirror removes one.
		p := mirrorProgress(l)
		removed := made && p.tree.N == 0 && p.staged.N == 0 && p.size == 0 && !p.err && os.Remove(path) == nil
		l.Close()
		return nil, restoreSyncError(err, path, removed)
	}
	return l, nil
}

// restoreMirrorOpenError says what to do about err, which refused the
// mirror file path that restore mirrors its -from URL into: not
// openMirror's hints, which are sumd mirror's (-mirror).
func restoreMirrorOpenError(err error, cfg *config.Restore, path string) error {
	switch {
	case errors.Is(err, itlog.ErrLowDisk), errors.Is(err, syscall.ENOSPC):
		return withHint(err, restoreFailedHint(err, cfg))
	case errors.Is(err, itlog.ErrLocked):
		return withHint(err, "another sumd restore into "+cfg.DB+" from a URL holds "+path+", where it mirrors the URL: wait for it to finish")
	}
	return withHint(err, path+" is where restore mirrors -from, kept from an earlier restore: if it is damaged or not a mirror of this log, move it aside and restore again (the URL is mirrored afresh)")
}

// restoreSyncError is mirrorError for the mirroring of restore's -from
// URL into path: its hints about the server name -from, not sumd
// mirror's -origin, which restore does not have. removed says whether
// path, which held nothing, was removed.
func restoreSyncError(err error, path string, removed bool) error {
	var fe *sumdbclient.FetchError
	kept := "what was mirrored into " + path + " is kept, and the next restore resumes from it"
	if removed {
		kept = "nothing was mirrored or changed"
	}
	switch {
	case errors.As(err, new(*mirror.SecurityError)) || mirror.IsBehind(err) || errors.Is(err, sumdbclient.ErrDamaged):
		return mirrorError(err, path) // its hints hold for a restore too
	case errors.As(err, new(*sumdbclient.BodyError)) || errors.Is(err, sumdbclient.ErrTooLarge):
		return &cliError{err: err, hint: "check -from: the server, or something between (a proxy, a captive portal), answered with a page that is not the checksum database protocol; " +
			"-from is the URL a go command would use as GOSUMDB's (such as https://replica.example or https://proxy.example/sumdb/NAME); " + kept, code: 2}
	case certHint(err) != "":
		return &cliError{err: err, hint: certHint(err) + "; " + kept, code: 2}
	case errors.As(err, &fe) && fe.Status != http.StatusUnauthorized && fe.Status != http.StatusForbidden:
		return &cliError{err: err, hint: "check -from and that the server is reachable from here; " + kept, code: 2}
	}
	return mirrorError(err, path)
}

// restoreFromError says what to do about err, which refused the mirror
// file from as restore's source. Not mirrorOpenError: its hints are sumd
// mirror's (-mirror, mirroring the origin again), and the origin is the
// log being restored.
func restoreFromError(err error, from string) error {
	switch {
	case errors.Is(err, itlog.ErrLocked):
		return withHint(err, "a running sumd serve (or sumd mirror) holds "+from+": stop it, or give -from the URL of the server serving it")
	case errors.Is(err, itlog.ErrCorrupt), errors.As(err, new(*itlog.DamagedError)):
		return withHint(err, "the mirror "+from+" is damaged: do not restore from it; restore from another mirror of the log (another replica, or a backup of this one: sumd backup verify checks one)")
	}
	return withHint(err, "-from must be a mirror of this log (made by sumd mirror, or served by sumd serve -mirror), checked with the log's own key")
}

// checkLostHead refuses a mirror whose head does not extend the head a
// process published and recorded as lost in the database (old): the
// restore replaces the database and the record with it, and mirror.Restore
// proves only the database's own head a prefix of the mirror's, which
// after a failover that lost commits is behind the lost head.
func checkLostHead(ctx context.Context, old *itlog.BoltStore, src *itlog.Log) error {
	err := itlog.CheckLostHead(ctx, old, src.Published().Tree, src.HashReader())
	var lost *itlog.LostHeadError
	if errors.As(err, &lost) {
		return withHint(fmt.Errorf("the mirror's tree of %d records does not extend the tree of %d records a sumd process published on this database and recorded as lost: %w", lost.Tree, lost.Lost, lost.Err),
			"clients may hold signed heads of the lost tree: restore from a mirror that holds it (docs/mirrors.md, \"Restore from a mirror\"); nothing was changed")
	}
	return err
}

// verifyRestored opens the rebuilt database as the primary, with full
// verification, before it is swapped in.
func verifyRestored(path string, keys []*itlog.Key, minFree int64, logger *slog.Logger) error {
	l, err := itlog.Open(path, itlog.Options{Keys: keys, Verify: itlog.VerifyFull, Logger: logger, MinFree: minFree})
	if err != nil {
		return fmt.Errorf("the restored database does not verify: %w", err)
	}
	return l.Close()
}

// swapIn moves the database aside (if there is one), and the restored one
// into its place, and returns where the old one went.
//
// The old database's lock is let go only once the restored one is at the
// path: a sumd serve restarted meanwhile (by a supervisor) has opened the
// old file and waits for that lock, and must find, once it has it, that
// the file is no longer at the path and open the restored one
// (itlog.OpenBolt checks); let go before the renames, it could take the
// lock while the old file is still there and sign heads on the tree the
// restore replaces, beside the restored one: a fork.
//
// Without an old database (old nil), a database that appeared at the path
// during the restore is not replaced: a sumd serve -create its supervisor
// started meanwhile made it, holds it, and would go on signing it once
// replaced.
func swapIn(db, restored string, old io.Closer) (string, error) {
	if old == nil {
		return "", installNew(db, restored)
	}
	defer old.Close()
	kept := db + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
	// A second name first, then the restored file over the path: a rename
	// of db away would leave a moment with nothing at the path, in which
	// a sumd serve with -create left on would start a new, empty log.
	err := link(db, kept)
	if linkUnsupported(err) {
		err = os.Rename(db, kept) // with that moment: the file system has no other way
	}
	if err != nil {
		return "", fmt.Errorf("failed to keep the previous database as %s: %w", kept, err)
	}
	if swapStep != nil {
		swapStep()
	}
	if err := os.Rename(restored, db); err != nil {
		return kept, err
	}
	return kept, syncDir(filepath.Dir(db))
}

// installNew puts restored at db, where there was no database when the
// restore began, unless one is there now.
func installNew(db, restored string) error {
	err := link(restored, db) // fails if db exists, as a rename would not
	if errors.Is(err, fs.ErrExist) || linkUnsupported(err) && exists(db) {
		return withHint(fmt.Errorf("%s appeared during the restore: not replacing it", db),
			"a sumd serve started meanwhile (with -create) may be serving it: stop it, move the file away, and restore again")
	}
	if linkUnsupported(err) {
		err = os.Rename(restored, db) // no way to refuse an existing file atomically here
	} else if err == nil {
		os.Remove(restored) // a second name; the next restore removes it if this fails
	}
	if err != nil {
		return fmt.Errorf("failed to put the restored database at %s: %w", db, err)
	}
	return syncDir(filepath.Dir(db))
}

// link is os.Link; a test replaces it to play a file system without hard
// links.
var link = os.Link

// linkUnsupported reports whether err, from link, says the file system
// has no hard links (some network and FUSE file systems, FAT).
func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) ||
		errors.Is(err, syscall.EXDEV) || errors.Is(err, syscall.ENOSYS)
}

// swapStep, if set by a test, runs between swapIn's steps.
var swapStep func()

// recordReadWith records in the mirror restore keeps the credentials mc
// reads the server with (mirror.Config.ReadWith), before it copies
// anything with them, as sumd mirror does: else sumd serve -mirror of that
// file, which remembers no credentials, would serve what they read to
// anonymous clients. Nothing else of mc is remembered.
func recordReadWith(l *itlog.Log, stored, mc *mirror.Config) error {
	rw := readWith(stored, mc)
	if rw == "" || stored != nil && stored.ReadWith == rw {
		return nil
	}
	c := &mirror.Config{VerifierKeys: l.VerifierKeys()}
	if stored != nil {
		c = stored
	}
	c.ReadWith = rw
	return mirror.WriteConfig(context.Background(), l, c)
}
