package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/config"
	itlog "github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/pgstore"
)

// runBackup copies a database, online through the admin API or from the
// file of a stopped server, into a new file (-o; see writeOut), verified
// before it gets its name; "backup verify" verifies a copy.
func runBackup(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "verify" {
		return runBackupVerify(args[1:], stdout, stderr)
	}
	cfg, err := loadFlags(config.LoadBackup, args, stderr, "the copy is -o FILE")
	if err != nil {
		return err
	}
	if pgstore.IsURL(cfg.DB) {
		return usageError(errors.New("sumd backup copies a bbolt file; this database is in PostgreSQL"),
			"back PostgreSQL up with its own tools (pg_dump, pg_basebackup): see docs/ha.md")
	}
	if cfg.Out == "-" {
		// Unlike a bundle, which its importer verifies, a backup is
		// trusted once written: a stream would reach the next program
		// before it verified, and a pipeline's status is its last
		// program's, which would keep a damaged copy.
		return usageError(errors.New("-o - would stream the copy to standard output, but sumd backup verifies a copy in full before it gets its name"),
			"name a new file with -o FILE, then send it on once written (compressed, or over ssh)")
	}
	if err := checkOut(cfg.Out, "-db", cfg.DB); err != nil {
		return err
	}
	ctx, stop := interruptContext()
	defer stop()
	floor := cfg.DiskFloor.Bytes()
	copyTo := func(w io.Writer) error {
		return backupLocal(ctx, cfg.DB, &itlog.FloorWriter{W: w, Path: cfg.Out, Guard: itlog.SpaceGuard{Floor: floor, Free: itlog.FreeSpace}})
	}
	if cfg.Server != "" {
		c, err := adminClientOf(cfg.Server, cfg.TokenFile, cfg.Auth, cfg.ClientCert, cfg.InsecureHTTP.InsecureHTTP)
		if err != nil {
			return err
		}
		copyTo = func(w io.Writer) error {
			// w writes writeOut's temporary file beside -o: the copy
			// keeps the floor free on that file system, whatever the
			// server sends.
			_, err := c.Backup(ctx, w, cfg.Out, floor)
			var ae *admin.Error
			if h := redirectHint(err); h != "" {
				return withHint(err, h)
			}
			switch {
			case errors.Is(err, itlog.ErrLowDisk):
				return err // lowDiskHint
			case certHint(err) != "":
				return withHint(err, certHint(err))
			case errors.As(err, &ae):
				return withHint(err, backupHint(ae.Status))
			}
			return err
		}
	}
	var st itlog.State
	var tree tlog.Tree
	err = writeOut(cfg.Out, copyTo, func(tmp string) error {
		var err error
		if st, tree, err = checkBackup(ctx, tmp, nil); err != nil {
			// A damaged file was copied from a damaged source: running
			// the backup again copies the damage again. The error names
			// the temporary copy, already removed: say what it found.
			if d := (*itlog.DamagedError)(nil); errors.As(err, &d) {
				check := "sumd backup verify " + cfg.DB
				if cfg.Server != "" {
					check = "sumd verify -full against the server"
				}
				return withHint(fmt.Errorf("the copy does not verify: it is truncated or damaged (%s)", d.What),
					"nothing was written to "+cfg.Out+"; the source database is damaged: check it with "+check+
						", and restore it from a good backup or a mirror (sumd restore: docs/operations.md#backups)")
			}
			// The database's own trouble (data beyond its head) has a
			// hint of its own; running the backup again cannot help.
			return withHint(fmt.Errorf("the copy does not verify: %w", err), "nothing was written to "+cfg.Out+"; "+ownHint(err, "run the backup again"))
		}
		return nil
	})
	if errors.Is(err, itlog.ErrLowDisk) {
		return withHint(err, fmt.Sprintf("nothing was written to %s; -min-free-disk keeps %d MiB free on its disk: free space there, write the copy to a larger disk, or lower -min-free-disk",
			cfg.Out, cfg.MinFreeDisk))
	}
	if err != nil {
		return err
	}
	fi, _ := os.Stat(cfg.Out)
	fmt.Fprintf(stdout, "wrote %s: %s, tree %d (hash %s), %d bytes, verified in full\n", cfg.Out, st.Meta.Name, tree.N, tree.Hash, fi.Size())
	return nil
}

// backupHint says what to do about a refusal of GET /admin/backup with
// status.
func backupHint(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "the server makes one backup at a time (or is busy): run the same command again once the other backup is done"
	case http.StatusInsufficientStorage:
		return "the server spools the copy in its -tmp-dir first, and that file system lacks the room (the error says how much): free space there, or restart the server with -tmp-dir on a larger disk"
	case http.StatusNotImplemented:
		return "the server's database is backed up with its own tools (PostgreSQL: docs/ha.md#backups)"
	case http.StatusNotFound:
		return "the server's admin API is off, or on its own listener (-admin-listen): start it with -admin-token-file or -read-auth"
	}
	if status >= 500 {
		return "the server failed to make the copy: the server's log says why; nothing was written to -o"
	}
	return "check -server, and -token-file or -auth (an admin's credentials)"
}

// backupLocal writes a consistent copy of the database at path, which no
// server may hold: opened read-only, it takes a shared lock that keeps
// writers out while it is read.
func backupLocal(ctx context.Context, path string, w io.Writer) error {
	s, err := itlog.OpenBolt(path, itlog.BoltOptions{ReadOnly: true})
	if errors.Is(err, itlog.ErrLocked) {
		return withHint(err, lockedBy+": if it is sumd serve, back it up through it with -server URL -token-file FILE; otherwise wait for it to finish")
	}
	if errors.Is(err, fs.ErrNotExist) {
		return withHint(err, "-db names the database file of a stopped sumd serve; for a running one use -server URL -token-file FILE")
	}
	if err != nil {
		return err
	}
	defer s.Close()
	snap, err := s.Snapshot(ctx)
	if err != nil {
		return err
	}
	defer snap.Close()
	kw := &keptErrWriter{w: w}
	if _, err := snap.WriteTo(kw); err != nil {
		return cmp.Or(kw.err, err)
	}
	return nil
}

// A keptErrWriter writes to w and keeps its first error: bbolt's WriteTo
// reports a writer's error as text, which loses a *tlog.LowDiskError and
// its hint.
type keptErrWriter struct {
	w   io.Writer
	err error
}

func (k *keptErrWriter) Write(p []byte) (int, error) {
	n, err := k.w.Write(p)
	if err != nil && k.err == nil {
		k.err = err
	}
	return n, err
}

// checkBackup opens a copy read-only and verifies it in full.
func checkBackup(ctx context.Context, path string, vkeys []string) (itlog.State, tlog.Tree, error) {
	s, err := itlog.OpenBolt(path, itlog.BoltOptions{ReadOnly: true})
	if err != nil {
		return itlog.State{}, tlog.Tree{}, err
	}
	defer s.Close()
	st, tree, err := itlog.CheckStore(ctx, s, vkeys)
	return st, tree, err
}

func runBackupVerify(args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := loadArgs(config.LoadBackupVerify, args, stderr)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError(errors.New("name one backup file"), "sumd backup verify [-vkey VKEYS|FILE] FILE")
	}
	var vkeys []string
	if cfg.VKey != "" {
		if vkeys, err = readVKeys("-vkey", cfg.VKey); err != nil {
			return err
		}
	}
	if _, err := os.Stat(rest[0]); err != nil {
		return withHint(err, "check the backup file's name: "+rest[0])
	}
	st, tree, err := checkBackup(context.Background(), rest[0], vkeys)
	if err != nil && len(vkeys) > 0 {
		// A wrong -vkey and a damaged copy fail alike: the copy checked
		// against the keys it lists, when they are others, tells them
		// apart.
		if own, _, ownErr := checkBackup(context.Background(), rest[0], nil); ownErr == nil && !slices.Equal(own.Meta.VKeys, vkeys) {
			return withHint(err, fmt.Sprintf("the copy verifies in full against the keys it lists (%s), not against -vkey: check -vkey; restore it only if you trust those keys",
				strings.Join(own.Meta.VKeys, " ")))
		}
	}
	if err != nil {
		return withHint(err, "do not restore this copy; take another backup")
	}
	what, trust := "the log", "its head is signed by "+strings.Join(vkeys, " or ")
	if st.Meta.Mirror {
		what = "a mirror of"
	}
	if len(vkeys) == 0 {
		trust = "its head is signed by the keys it lists (give -vkey to check they are the ones you trust)"
	}
	fmt.Fprintf(stdout, "%s: %s %s, tree %d (hash %s); every tile and record verified; %s\n", rest[0], what, st.Meta.Name, tree.N, tree.Hash, trust)
	return nil
}
