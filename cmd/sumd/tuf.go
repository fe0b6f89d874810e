package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/serve"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tuf"
)

// tufSteps are the steps of `sumd tuf`, which publishes the database's
// verifier keys as a TUF repository (docs/keys.md).
var tufSteps = map[string]func([]string, io.Writer, io.Writer) error{
	"init":        tufInit,
	"publish":     tufPublish,
	"rotate-root": tufRotateRoot,
	"status":      tufStatus,
	"gosumdb":     tufGosumdb,
}

const tufUsage = `Usage: sumd tuf STEP [flags]

Publish the database's verifier keys as a TUF repository, so that clients pin
one root.json and follow every key rotation (docs/keys.md). Steps:

	init          create the repository and its keys
	publish       publish the log's current keys (after sumd key rotate|retire)
	rotate-root   sign the next root: new keys, thresholds, or a renewal
	status        print each role's version and expiry, and the published keys
	gosumdb       print GOSUMDB as learned through TUF

Run "sumd tuf STEP -h" for the flags of a step.
`

func runTUF(args []string, stdout, stderr io.Writer) error {
	if askHelp(args) {
		fmt.Fprint(stderr, tufUsage)
		return flag.ErrHelp
	}
	if len(args) == 0 || tufSteps[args[0]] == nil {
		return usageError(stepError("tuf", args, "init, publish, rotate-root, status or gosumdb"),
			"see sumd help and docs/keys.md; every step has -h")
	}
	return tufSteps[args[0]](args[1:], stdout, stderr)
}

// tufInit creates the repository and prints the root file clients pin.
func tufInit(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadFlags(config.LoadTUFInit, args, stderr, onlyFlags("tuf init"))
	if err != nil {
		return err
	}
	// tuf.Init refuses it too, but as its own error: checked here, it is
	// the usage error (exit 2, with the hint) of tuf publish and rotate-root.
	if err := keyDirsNotOnline(onlineKeys(cfg.TUFRepo), keyDirs(cfg.Keys)[:1]); err != nil {
		return err
	}
	// The keys are written there: another user's directory under a
	// shared one would let that user delete the root keys, or swap the
	// online ones.
	for _, dir := range []string{keyDirs(cfg.Keys)[0], onlineKeys(cfg.TUFRepo)} {
		if err := checkPlanted(dir, os.Geteuid()); err != nil {
			return err
		}
	}
	db, err := publishedDatabase("tuf init", cfg.Database, cfg.TUFPublished, config.NewLogger(cfg.Log, stderr), stderr)
	if err != nil {
		return err
	}
	_, err = tuf.Init(cfg.Dir, tuf.InitOptions{
		Database: db, OfflineKeys: keyDirs(cfg.Keys)[0], OnlineKeys: onlineKeys(cfg.TUFRepo),
		RootKeys: cfg.RootKeys, RootThreshold: cfg.RootThreshold, TargetsKeys: cfg.TargetsKeys, TargetsThreshold: cfg.TargetsThreshold,
		RootExpiry: cfg.RootExpiry, TargetsExpiry: cfg.TargetsExpiry,
	})
	if errors.Is(err, tuf.ErrExists) {
		if _, serr := os.Lstat(filepath.Join(cfg.Dir, "metadata", "1.root.json")); errors.Is(serr, fs.ErrNotExist) {
			// Published, then its first root lost: no command opens it.
			return withHint(err, "restore metadata/1.root.json from a backup of "+cfg.Dir+"; for another database, pick another -dir")
		}
		return withHint(err, "to publish new keys in it, run sumd tuf publish; for another database, pick another -dir")
	}
	if err != nil {
		return err
	}
	root := filepath.Join(cfg.Dir, "metadata", "1.root.json")
	fmt.Fprintf(stderr, "sumd: created the TUF repository %s publishing %s\n", cfg.Dir, strings.Join(db.VerifierKeys, ", "))
	fmt.Fprintf(stderr, "sumd: offline root and targets keys: %s (%d of %d and %d of %d): move them off this machine\n",
		keyDirs(cfg.Keys)[0], cfg.RootThreshold, cfg.RootKeys, cfg.TargetsThreshold, cfg.TargetsKeys)
	fmt.Fprintf(stderr, "sumd: online snapshot and timestamp keys: %s, for sumd serve -tuf %s\n", onlineKeys(cfg.TUFRepo), cfg.Dir)
	fmt.Fprintf(stderr, "sumd: clients pin %s and use sumd verify -tuf-root or sumd tuf gosumdb\n", root)
	fmt.Fprintln(stdout, root)
	return nil
}

// tufPublish publishes the log's current keys with the offline targets
// key, then signs snapshot and timestamp if the online keys are here.
func tufPublish(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadFlags(config.LoadTUFPublish, args, stderr, onlyFlags("tuf publish"))
	if err != nil {
		return err
	}
	if err := keyDirsNotOnline(onlineKeys(cfg.TUFRepo), keyDirs(cfg.Keys)); err != nil {
		return err
	}
	repo, err := openRepo(cfg.Dir)
	if err != nil {
		return err
	}
	if prev, err := repo.Published(); err == nil && cfg.URL == "" {
		cfg.URL = prev.URL // a URL rarely changes with the keys
	}
	db, err := publishedDatabase("tuf publish", cfg.Database, cfg.TUFPublished, config.NewLogger(cfg.Log, stderr), stderr)
	if err != nil {
		return err
	}
	v, err := repo.Publish(db, keyDirs(cfg.Keys), time.Now().Add(cfg.TargetsExpiry))
	if err != nil {
		return withHint(err, offlineKeysHint)
	}
	fmt.Fprintf(stderr, "sumd: wrote targets version %d publishing %s\n", v, strings.Join(db.VerifierKeys, ", "))
	if err := signOnlineOrDefer(repo, cfg.TUFRepo, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, strings.Join(db.VerifierKeys, "\n"))
	return nil
}

const offlineKeysHint = "pass -keys with the directories holding enough of the role's offline keys (files <role>-<id>.key)"

// tufStatus prints each role's version and expiry.
func tufStatus(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadFlags(config.LoadTUFStatus, args, stderr, onlyFlags("tuf status"))
	if err != nil {
		return err
	}
	repo, err := openRepo(cfg.Dir)
	if err != nil {
		return err
	}
	st, err := repo.Status()
	if err != nil {
		return withHint(err, "the repository does not verify: see docs/keys.md before changing anything")
	}
	printStatus(stdout, st, time.Now())
	if db, err := repo.Published(); err == nil {
		fmt.Fprintf(stdout, "database  %s at %s\n", db.Name, cmp.Or(db.URL, "(no URL: GOPROXY discovery)"))
		for _, vkey := range db.VerifierKeys {
			fmt.Fprintf(stdout, "vkey      %s\n", vkey)
		}
	}
	printExpiry(stderr, st, time.Now())
	printProblems(stderr, st.Problems)
	printOfflineKeys(stderr, onlineKeys(config.TUFRepo{Dir: cfg.Dir, OnlineKeys: cfg.OnlineKeys}))
	return nil
}

// printOfflineKeys warns of root and targets keys in the online keys'
// directory (-online-keys, by default where tuf init puts the online keys
// and sumd serve -tuf reads them), as sumd serve's status does.
func printOfflineKeys(stderr io.Writer, online string) {
	files, err := tuf.OfflineKeyFiles(online)
	if err != nil {
		fmt.Fprintf(stderr, "sumd: warning: cannot check the online keys' directory for root and targets keys: %v\n", err)
	}
	for _, f := range files {
		fmt.Fprintf(stderr, "sumd: warning: %s is a root or targets key in the online keys' directory, where sumd serve signs: "+
			"a thief of this host could sign with it; move it to offline media (sumd tuf publish and rotate-root take it with -keys)\n", f)
	}
}

// printProblems warns of the files the repository ignores.
func printProblems(stderr io.Writer, problems []error) {
	for _, p := range problems {
		fmt.Fprintf(stderr, "sumd: warning: ignored, does not verify: %v\n", p)
	}
}

func printStatus(w io.Writer, st *tuf.Status, now time.Time) {
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		if _, ok := st.Versions[role]; !ok {
			// A timestamp.json or snapshot that does not verify: the
			// warnings say why, and the next signing replaces it.
			fmt.Fprintf(w, "%-9s none that verifies\n", role)
			continue
		}
		exp := st.Expires[role]
		fmt.Fprintf(w, "%-9s version %-4d expires %s (%s)\n", role, st.Versions[role], exp.Format(time.RFC3339), serve.Until(exp, now))
	}
}

// printExpiry warns of a role expired, and of a root or targets within
// tuf.ExpiryWarning of expiry, as sumd serve's status does: renewing them
// is a ceremony with the offline keys, to schedule.
func printExpiry(w io.Writer, st *tuf.Status, now time.Time) {
	for _, role := range []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP} {
		exp, ok := st.Expires[role]
		if !ok {
			continue
		}
		fix := "clients refuse the repository until sumd serve -tuf re-signs it (with the online keys)"
		switch role {
		case metadata.ROOT:
			fix = "renew it with sumd tuf rotate-root"
		case metadata.TARGETS:
			fix = "renew it with sumd tuf publish"
		}
		offline := role == metadata.ROOT || role == metadata.TARGETS
		if !now.Before(exp) || offline && exp.Sub(now) < tuf.ExpiryWarning {
			when := serve.Until(exp, now) // "in 3 days", "expired 2h ago"
			if now.Before(exp) {
				when = "expires " + when
			}
			fmt.Fprintf(w, "sumd: warning: the %s metadata %s: %s\n", role, when, fix)
		}
	}
}

// publishedDatabase describes the database to publish: the keys given
// with -vkey, or else the signing set of the log in -db, which is
// authoritative (tlog refuses keys the log does not sign with).
func publishedDatabase(cmd string, dbc config.Database, p config.TUFPublished, logger *slog.Logger, stderr io.Writer) (*tuf.Database, error) {
	var vkeys []string
	if p.VKey != "" {
		var err error
		if vkeys, err = readVKeys("-vkey", p.VKey); err != nil {
			return nil, err
		}
	} else {
		l, err := openLog(dbc, openOptions{cmd: cmd, logger: logger, minFree: -1 /* reads the keys only */}, stderr)
		if errors.Is(err, tlog.ErrLocked) {
			return nil, withHint(err, "stop sumd serve, or give the keys with -vkey (sumd key rotate and retire print them)")
		}
		if err != nil {
			return nil, err
		}
		defer l.Close()
		vkeys = l.VerifierKeys()
	}
	db, err := tuf.NewDatabase(vkeys, p.URL)
	// Without -key, config fills in the default name: only compare a name
	// the operator gave.
	defaulted := dbc.Name == config.DefaultName && dbc.Key == config.DefaultKeyFile(config.DefaultName)
	if err == nil && dbc.Name != "" && !defaulted && db.Name != dbc.Name {
		err = fmt.Errorf("the keys are for %q, not -name %q", db.Name, dbc.Name)
	}
	if err != nil {
		return nil, usageError(err, "give the verifier keys of one database, oldest first")
	}
	return db, nil
}

// signOnlineOrDefer signs snapshot and timestamp now if the online keys
// are here; if not (an offline machine), sumd serve does it on its next
// tick.
func signOnlineOrDefer(repo *tuf.Repo, r config.TUFRepo, stderr io.Writer) error {
	s, err := repo.SignOnline([]string{onlineKeys(r)}, time.Now())
	var missing *tuf.MissingKeysError
	switch {
	case errors.As(err, &missing) && len(missing.Unreadable) == 0:
		// (A key file there that cannot be read is an error to show.)
		fmt.Fprintf(stderr, "sumd: the online keys are not in %s: sumd serve -tuf signs the snapshot and timestamp within %v\n", onlineKeys(r), tuf.ResignInterval)
		return nil
	case err != nil:
		return err
	}
	printProblems(stderr, s.Status.Problems)
	fmt.Fprintf(stderr, "sumd: serving snapshot version %d and timestamp version %d\n", s.Status.Versions[metadata.SNAPSHOT], s.Status.Versions[metadata.TIMESTAMP])
	return nil
}

func openRepo(dir string) (*tuf.Repo, error) {
	repo, err := tuf.Open(dir)
	if err != nil {
		return nil, withHint(err, "pass -dir with the repository sumd tuf init created")
	}
	return repo, nil
}

// keyDirs splits a comma-separated list of key directories.
func keyDirs(s string) []string { return strings.Split(s, ",") }

// onlineKeys is the directory of the online keys: -online-keys or DIR/keys.
func onlineKeys(r config.TUFRepo) string {
	if r.OnlineKeys != "" {
		return r.OnlineKeys
	}
	return filepath.Join(r.Dir, tuf.DefaultOnlineKeys)
}

// serveTUF is the TUF repository sumd serve publishes, if any.
func serveTUF(cfg config.TUFServe) *serve.TUF {
	if cfg.TUF == "" {
		return nil
	}
	return &serve.TUF{Dir: cfg.TUF, OnlineKeys: onlineKeys(config.TUFRepo{Dir: cfg.TUF, OnlineKeys: cfg.TUFOnlineKeys})}
}
