package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/term"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/mirror"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlscert"
	"github.com/sumd-project/sumd/internal/upstream"
)

// runMirror follows a checksum database once, or exports or imports a
// bundle. Exit status: 0 done; 1 refused (SECURITY) or failed; 2 bad
// flags, or the origin could not be reached.
func runMirror(args []string, stdout, stderr io.Writer) error {
	batchGC()
	if len(args) > 0 {
		switch args[0] {
		case "export":
			return runMirrorExport(args[1:], stdout, stderr)
		case "import":
			return runMirrorImport(args[1:], stdout, stderr)
		}
	}
	cfg, err := loadFlags(config.LoadMirror, args, stderr, "sumd mirror takes flags only (or: sumd mirror export|import); see sumd mirror -h")
	if err != nil {
		return err
	}
	if err := checkMirrorFlags(cfg); err != nil {
		return err
	}
	logger := config.NewLogger(cfg.Log, stderr)
	_, statErr := os.Lstat(cfg.Mirror)
	isNew := errors.Is(statErr, fs.ErrNotExist)
	if isNew && cfg.OriginKey == "" && cfg.Origin != "" && !originIsSumGolangOrg(cfg.Origin) {
		// The built-in key would make a mirror of sum.golang.org, refused
		// by the origin's first head and then by every run with its key.
		return usageError(fmt.Errorf("a new mirror of %s needs the origin's verifier key: only %s's is built in", cfg.Origin, sumdbclient.SumGolangOrg),
			"give -origin-key VKEY (or its .vkey file): the first word of the GOSUMDB line the origin's sumd serve printed")
	}
	l, stored, err := openMirror(cfg.Mirror, cfg.OriginKey, &cfg.Sources, true, cfg.DiskFloor.Bytes(), "", logger)
	if err != nil {
		return err
	}
	defer l.Close()
	mc, err := mirrorConfig(cfg, l, stored)
	if err != nil {
		return err
	}
	// The options are saved right after the round's first commit, not
	// after the round: a run killed mid-way (SIGKILL, OOM, power loss)
	// has stored steps, which are only part of the log if -modules says
	// so, and sumd serve -mirror follows only an origin the database
	// remembers. Not before that commit: until the log has verified
	// something the origin sent, a mistyped -origin looks like the right one.
	save := func(context.Context) error { return saveMirrorConfig(l, stored, mc) }
	f, err := newFollower(l, mc, followerOptions{step: int64(cfg.Step), parallel: cfg.Parallel, timeout: cfg.Timeout, logger: logger, afterFirstStore: save})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	bar := newProgress(stderr, "mirroring records")
	f.SetProgress(bar.update)
	before := mirrorProgress(l)
	res, err := f.Sync(ctx)
	bar.finish()
	if err == nil || mirrorProgress(l) != before {
		if serr := save(ctx); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		if isNew && cfg.OriginKey == "" {
			return defaultKeyRefused(err, l, cfg.Mirror)
		}
		return mirrorError(err, cfg.Mirror)
	}
	printSync(stdout, f.Name(), res)
	return nil
}

// defaultKeyRefused is mirrorError for the first round of a mirror made
// by this run without -origin-key. It took sum.golang.org's key, as the
// origin was taken for sum.golang.org (another origin is refused before:
// runMirror); if the origin is another log, its head is refused,
// and the file, made as a mirror of sum.golang.org, would be refused by
// every later run with the right key. The hint says both. The file is not
// removed here: another process may already be waiting on its lock.
func defaultKeyRefused(err error, l *itlog.Log, path string) error {
	ce, ok := mirrorError(err, path).(*cliError)
	if !ok {
		ce = &cliError{err: err}
	}
	var se *mirror.SecurityError
	if !errors.As(err, &se) || se.Kind != mirror.KindSignature || l.Published().Signed != nil {
		return ce
	}
	ce.hint = "no -origin-key was given, so the new mirror took sum.golang.org's key: to mirror another log, delete " + path +
		" (it holds no head yet) and run again with -origin-key and that log's verifier key; otherwise, " + ce.hint
	return ce
}

// originIsSumGolangOrg reports whether origin is sum.golang.org: its own
// host, sum.golang.google.cn (which serves its log, and the go command
// takes for it), or a proxy relaying it under /sumdb/sum.golang.org
// (PROTOCOL.md), the only origins a new mirror may follow with the
// built-in key.
func originIsSumGolangOrg(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	host := u.Hostname()
	return strings.EqualFold(host, sumdbclient.SumGolangOrg) || strings.EqualFold(host, "sum.golang.google.cn") ||
		strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/sumdb/"+sumdbclient.SumGolangOrg)
}

// printSync prints what a round did, in one line.
func printSync(w io.Writer, name string, res *mirror.Result) {
	rate := ""
	if s := res.Duration.Seconds(); s > 0 && res.Records > 0 {
		rate = fmt.Sprintf(", %.0f records/s", float64(res.Records)/s)
	}
	fmt.Fprintf(w, "mirror of %s: tree %d (was %d), origin at %d; %d records stored in %d commits in %s%s\n",
		name, res.To.N, res.From.N, res.Origin.N, res.Records, res.Commits, res.Duration.Round(time.Millisecond), rate)
	if res.Missing > 0 {
		fmt.Fprintf(w, "%d versions of the -modules go.sum files are not in the origin, or it could not answer for them (see the log)\n", res.Missing)
	}
}

// mirrorError adds the hint and exit status of a failed round into the
// mirror database at path.
func mirrorError(err error, path string) error {
	var se *mirror.SecurityError
	var fe *sumdbclient.FetchError
	switch {
	case errors.Is(err, context.Canceled):
		// First: a round interrupted while it waited on the origin fails
		// with a *FetchError wrapping it, which says nothing about the
		// origin.
		return &cliError{err: err, hint: "interrupted; the steps committed before are kept, and the next run resumes", code: 1}
	case errors.Is(err, itlog.ErrLowDisk), errors.Is(err, syscall.ENOSPC):
		// Not the store's own hint (writes succeed again once there is
		// room), written for sumd serve: this run has stopped, and which
		// disk and flag are meant is said here.
		return withHint(err, mirrorDiskHint(err, path)+"; the steps committed before are kept, and it resumes from them")
	case mirror.IsSelection(err):
		// A run without -modules reads the files the mirror remembers.
		return withHint(err, "check the go.sum files -modules names (if this run gave none, those the mirror remembers): put them back, or give -modules anew, "+
			"which replaces them; the origin's head was followed and is kept")
	case errors.As(err, &se):
		return withHint(err, "nothing was stored and the mirror keeps its last good head; the SECURITY line above quotes both heads: "+
			"find out whether the origin, or something between it and this mirror, misbehaves before trusting it again")
	case mirror.IsBehind(err):
		return &cliError{err: err, hint: "nothing was stored and the mirror keeps its head; run again later, or follow the primary rather than a replica that lags", code: 2}
	case errors.Is(err, sumdbclient.ErrDamaged):
		return withHint(err, "the origin was reached, and reports the data the mirror asked for damaged in its database: its operator must repair it "+
			"(its log names the data; sumd serve -verify full checks it); the steps committed before are kept, and the next run resumes")
	case errors.As(err, &fe) && (fe.Status == http.StatusUnauthorized || fe.Status == http.StatusForbidden):
		return &cliError{err: err, hint: refusedHint(fe.Status, "a mirror reads data tiles, which need an auditor's"), code: 2}
	case errors.As(err, new(*sumdbclient.BodyError)) || errors.Is(err, sumdbclient.ErrTooLarge):
		return &cliError{err: err, hint: "the origin, or something between (a proxy, a captive portal), answered with a page that is not the checksum database protocol: " +
			"check -origin and what that URL answers from here; the steps committed before are kept, and the next run resumes", code: 2}
	case certHint(err) != "":
		return &cliError{err: err, hint: certHint(err) + "; the steps committed before are kept, and the next run resumes", code: 2}
	case errors.As(err, &fe):
		return &cliError{err: err, hint: "check -origin and that the origin is reachable; the steps committed before are kept, and the next run resumes", code: 2}
	}
	return err
}

// checkMirrorFlags checks what sumd mirror's options name before the
// mirror is opened (or created): the -modules list and its go.sum files
// (read again by each run), the -auth credentials and the -client-cert
// pair.
func checkMirrorFlags(cfg *config.Mirror) error {
	if mods := cfg.ModuleList(); len(mods) > 0 {
		sel, err := mirror.ParseSelection(mods)
		if err != nil {
			return usageError(fmt.Errorf("modules: %w", err), "list go.sum files (ending in .sum) and module path patterns such as golang.org/x/*; "+
				"'!' entries only exclude modules from those, and a full mirror takes no -modules (it looks nothing up by path)")
		}
		if _, err := sel.Versions(); err != nil {
			return usageError(fmt.Errorf("modules: %w", err), "check the go.sum files -modules names: each must exist and be readable (each run reads them again)")
		}
	}
	if cfg.Auth != "" {
		if _, err := clientAuth(cfg.Auth); err != nil {
			return err
		}
	}
	if _, err := clientCert(cfg.ClientCert); err != nil {
		return err
	}
	return nil
}

// mirrorConfig merges the flags with what the mirror's database remembers,
// and returns the result, which saveMirrorConfig stores once it is proven.
func mirrorConfig(cfg *config.Mirror, l *itlog.Log, stored *mirror.Config) (*mirror.Config, error) {
	mc := &mirror.Config{VerifierKeys: l.VerifierKeys()}
	if stored != nil {
		mc.URL, mc.Modules, mc.Partial = stored.URL, stored.Modules, stored.Partial
	}
	if cfg.Origin != "" {
		mc.URL = cfg.Origin
	}
	if mc.URL == "" && l.Name() == sumdbclient.SumGolangOrg {
		mc.URL = sumdbclient.SumGolangOrgURL
	}
	if mc.URL == "" {
		return nil, usageError(fmt.Errorf("the mirror of %s has no origin URL", l.Name()), "give -origin URL of the checksum database to follow")
	}
	if mods := cfg.ModuleList(); len(mods) > 0 {
		mc.Modules = absModules(mods) // checked by runMirror
	}
	// A remembered token or password goes only to the host it was given
	// for: a run that names an origin on another host (a typo, a move)
	// must name it again with -auth. A .netrc picks by host itself.
	if stored != nil && (sameHost(stored.URL, mc.URL) || !hostBound(stored.Auth)) {
		mc.Auth = stored.Auth
	}
	if cfg.Auth != "" {
		mc.Auth = absAuth(cfg.Auth)
	}
	// A client certificate too goes to its host alone. Its files are
	// remembered, as -auth's are, so that the next run and sumd serve
	// -mirror present it; the key stays in its file.
	if stored != nil && sameHost(stored.URL, mc.URL) {
		mc.ClientCert, mc.ClientKey = stored.ClientCert, stored.ClientKey
	}
	// -client-cert none forgets them, as -auth none the credentials.
	if cfg.ClientCert.ClientCert != "" {
		mc.ClientCert, mc.ClientKey = absFile(cfg.ClientCert.ClientCert), absFile(cfg.ClientKey)
	}
	if mc.ClientCert == config.ClientCertNone {
		mc.ClientCert = ""
	}
	mc.ReadWith = readWith(stored, mc)
	return mc, nil
}

// absFile is the file name, relative to the working directory, as an
// absolute path: the files a run names are remembered for later runs and
// sumd serve -mirror, which may start elsewhere (a unit's /), and for
// sumd copy. "", none and a name Abs refuses stay as they are.
func absFile(name string) string {
	if name == "" || name == config.ClientCertNone {
		return name
	}
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return name
}

// absAuth is the -auth value spec with the file it names made absolute
// (absFile); plain "netrc", the default .netrc of whoever runs, stays.
func absAuth(spec string) string {
	a, err := upstream.ParseAuth(spec)
	if err != nil || a.Kind == upstream.AuthNone || spec == "netrc" || filepath.IsAbs(a.File) {
		return spec
	}
	a.File = absFile(a.File)
	return a.String()
}

// absModules is the -modules list with its go.sum files made absolute
// (absFile); module path patterns stay.
func absModules(mods []string) []string {
	out := make([]string, len(mods))
	for i, m := range mods {
		if e := strings.TrimSpace(m); strings.HasSuffix(e, ".sum") && !strings.HasPrefix(e, "!") {
			m = absFile(e)
		}
		out[i] = m
	}
	return out
}

// readWith names the credentials a mirror's data was read with, once
// saveMirrorConfig stores mc (after the round's first commit): those the
// database recorded, never forgotten; else, in a database from before
// sumd recorded them, those it remembers, which it may have read with
// (it cannot tell, and forgetting them must not make its data public);
// else this run's, if any ("": none).
func readWith(stored, mc *mirror.Config) string {
	if stored != nil {
		if stored.ReadWith != "" {
			return stored.ReadWith
		}
		if c := originCreds(stored); c != "" {
			return c
		}
	}
	return originCreds(mc)
}

// sameHost reports whether the URLs a and b name the same host.
func sameHost(a, b string) bool {
	ua, erra := url.Parse(a)
	ub, errb := url.Parse(b)
	return erra == nil && errb == nil && strings.EqualFold(ua.Hostname(), ub.Hostname())
}

// hostBound reports whether the credentials auth names (sumd's -auth)
// are sent whatever the host, a token or a password, unlike a .netrc's.
func hostBound(auth string) bool {
	a, err := upstream.ParseAuth(auth)
	return err != nil || a.Kind == upstream.AuthBasic || a.Kind == upstream.AuthBearer
}

// saveMirrorConfig stores mc, the options a round runs with, unless the
// database remembers them already. runMirror calls it right after the
// round's first commit (mirror.Options.AfterFirstStore; a kill in the
// milliseconds between the two loses them), and after the round if it
// succeeded or stored something, never for a round that failed before it
// stored anything, its stores refused included: a mistyped -origin,
// -auth or -modules saved before it had worked would be taken by every
// later run and by sumd serve -mirror, which get no flags to override it
// (and -modules cannot be taken back: a partial mirror never becomes full).
// A round that stores something and then fails (interrupted, killed, or
// the origin lost mid-way) has saved them all the same: its origin
// answered with a head that verified under the keys (or with records the
// held tree covers), its credentials and go.sum files were read, and what
// it stores is only part of the log if -modules says so, which the
// database must then remember.
func saveMirrorConfig(l *itlog.Log, stored, mc *mirror.Config) error {
	if stored != nil && stored.URL == mc.URL && slices.Equal(stored.Modules, mc.Modules) && slices.Equal(stored.VerifierKeys, mc.VerifierKeys) &&
		stored.Auth == mc.Auth && stored.ClientCert == mc.ClientCert && stored.ClientKey == mc.ClientKey && stored.Partial == mc.Partial && stored.ReadWith == mc.ReadWith {
		return nil
	}
	return mirror.WriteConfig(context.Background(), l, mc)
}

// mirrorState is what a round of sumd mirror may change: the published tree,
// and the head being staged and how far.
type mirrorState struct {
	tree   tlog.Tree
	staged tlog.Tree
	size   int64
	err    bool // the staging could not be read: taken for a change
}

func mirrorProgress(l *itlog.Log) mirrorState {
	p := mirrorState{tree: l.Published().Tree}
	st, err := l.Staged(context.Background())
	switch {
	case err != nil:
		p.err = true
	case st != nil:
		p.staged, p.size = st.Tree, st.Size
	}
	return p
}

// followerOptions tune a follower.
type followerOptions struct {
	step     int64
	parallel int
	timeout  time.Duration
	logger   *slog.Logger
	metrics  *mirror.Metrics
	// afterFirstStore is mirror.Options.AfterFirstStore.
	afterFirstStore func(context.Context) error
	// clientCert, if set, receives the client certificate presented to
	// the origin (nil: none), for its problems (sumd serve -mirror).
	clientCert **tlscert.Reloader
}

// newFollower returns the follower of mirror l configured by mc (offline
// if mc has no URL).
func newFollower(l *itlog.Log, mc *mirror.Config, o followerOptions) (*mirror.Follower, error) {
	vs, err := sumdbclient.ParseVerifiers(l.VerifierKeys()...)
	if err != nil {
		return nil, err
	}
	opts := mirror.Options{Log: l, Verifiers: vs, Partial: mc.Partial, Step: o.step, Parallel: o.parallel, Logger: o.logger, Metrics: o.metrics,
		AfterFirstStore: o.afterFirstStore}
	if mc.URL != "" {
		creds, err := clientAuth(mc.Auth)
		if err != nil {
			return nil, err
		}
		// Read again when its files change: sumd serve -mirror follows
		// with this client as long as it runs.
		cert, err := loggedClientCert(config.ClientCert{ClientCert: mc.ClientCert, ClientKey: mc.ClientKey}, cmp.Or(o.logger, slog.Default()))
		if err != nil {
			return nil, err
		}
		if o.clientCert != nil {
			*o.clientCert = cert
		}
		if opts.Client, err = sumdbclient.New(mc.URL, sumdbclient.Options{
			UserAgent: "sumd-mirror/" + version(), Timeout: cmp.Or(o.timeout, 30*time.Second), Parallel: o.parallel,
			Auth: creds.Apply, Transport: sumdbCertTransport(cert, mc.URL),
		}); err != nil {
			return nil, usageError(err, "fix the origin URL (sumd mirror -origin URL)")
		}
	}
	if len(mc.Modules) > 0 {
		if opts.Select, err = mirror.ParseSelection(mc.Modules); err != nil {
			return nil, err
		}
	}
	return mirror.New(opts)
}

// openMirror opens the mirror database at path, creating it if allowed.
// Its origin's keys are vkeysFlag (-origin-key's value, inline or a file,
// set where src says: nil for none), else those the database remembers, else sum.golang.org's when the
// database is new and its origin is (or may be, if name is "") that.
// minFree is the space its writes keep free (tlog.BoltOptions.MinFree: -1
// for none, as for a command that only reads).
func openMirror(path, vkeysFlag string, src *config.Sources, create bool, minFree int64, name string, logger *slog.Logger) (*itlog.Log, *mirror.Config, error) {
	ctx := context.Background()
	if vkeysFlag != "" { // a bad option must not leave a new, empty file behind
		if _, err := originKeys(vkeysFlag, src); err != nil {
			return nil, nil, err
		}
	}
	if _, err := os.Lstat(path); create && vkeysFlag == "" && errors.Is(err, fs.ErrNotExist) && name != "" && name != sumdbclient.SumGolangOrg {
		return nil, nil, newMirrorNeedsKey(name) // before the file is made
	}
	_, statErr := os.Lstat(path)
	made := create && errors.Is(statErr, fs.ErrNotExist)
	s, err := itlog.OpenBolt(path, itlog.BoltOptions{Create: create, MinFree: minFree})
	if err != nil {
		return nil, nil, mirrorOpenError(err, path)
	}
	l, stored, err := openMirrorStore(ctx, s, vkeysFlag, src, create, name, logger)
	if err != nil {
		var ce *cliError
		st, lerr := s.Load(ctx)
		if made && errors.Is(lerr, itlog.ErrNoLog) {
			// A create refused (the disk's floor, a full disk) leaves no
			// empty file behind. Removed while its lock is held, as
			// tlog.Open removes one: a run waiting for it finds it gone.
			os.Remove(path)
		}
		s.Close()
		if lerr == nil && st.Meta.Mirror && len(st.Head) == 0 && !errors.As(err, &ce) {
			// Most likely made by a run with the wrong (or no) -origin-key.
			return nil, nil, withHint(err, fmt.Sprintf("%s is a mirror of %s that holds no head yet: if that is the wrong log, delete it and run again", path, st.Meta.Name))
		}
		return nil, nil, mirrorOpenError(err, path)
	}
	return l, stored, nil
}

func openMirrorStore(ctx context.Context, s *itlog.BoltStore, vkeysFlag string, src *config.Sources, create bool, name string, logger *slog.Logger) (*itlog.Log, *mirror.Config, error) {
	st, err := s.Load(ctx)
	isNew := errors.Is(err, itlog.ErrNoLog)
	if err != nil && !isNew {
		return nil, nil, err
	}
	stored, err := mirror.ReadConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	var vkeys []string
	switch {
	case vkeysFlag != "":
		if vkeys, err = originKeys(vkeysFlag, src); err != nil {
			return nil, nil, err
		}
	case stored != nil:
		vkeys = stored.VerifierKeys
	case !isNew:
		vkeys = st.Meta.VKeys
	case name == "" || name == sumdbclient.SumGolangOrg:
		vkeys = []string{sumdbclient.SumGolangOrgKey}
	default:
		return nil, nil, newMirrorNeedsKey(name)
	}
	l, err := itlog.OpenStore(s, itlog.Options{VerifierKeys: vkeys, Create: create, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	return l, stored, nil
}

// originKeys is readVKeys for -origin-key's value s, its error naming the
// variable or config file that set it (src): its message says
// -origin-key, which a command line may not hold.
func originKeys(s string, src *config.Sources) ([]string, error) {
	vkeys, err := readVKeys("-origin-key", s)
	if ce := (*cliError)(nil); errors.As(err, &ce) {
		ce.err = src.WithSource(ce.err, "origin-key")
	}
	return vkeys, err
}

// newMirrorNeedsKey refuses a new mirror of name, a log other than
// sum.golang.org, without its verifier key.
func newMirrorNeedsKey(name string) error {
	return usageError(fmt.Errorf("a new mirror of %s needs its verifier key", name), "give -origin-key VKEY (or its .vkey file)")
}

// mirrorDiskHint is the hint for err if -min-free-disk or a full disk
// refused a write to the mirror database at path; "" otherwise. Running
// the same command again meets the same floor.
func mirrorDiskHint(err error, path string) string {
	switch {
	case errors.Is(err, itlog.ErrLowDisk):
		return "-min-free-disk keeps that much free on the disk of " + filepath.Dir(path) + ": free space there, or lower -min-free-disk; then run the same command again"
	case errors.Is(err, syscall.ENOSPC):
		return diskFull(err, filepath.Dir(path))
	}
	return ""
}

func mirrorOpenError(err error, path string) error {
	var ce *cliError
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, itlog.ErrLocked):
		return withHint(err, "a running sumd serve (or another sumd mirror) holds "+path+": stop it first")
	case errors.As(err, new(*itlog.OriginKeyError)):
		return withHint(err, "give -origin-key the origin's older verifier key too (OLD,NEW) until the mirror holds a head signed by the new one")
	case errors.Is(err, mirror.ErrNewerConfig):
		return withHint(err, "a newer sumd wrote "+path+": run that version (or a later one) on it; this one would drop what it does not know")
	case errors.Is(err, itlog.ErrCorrupt):
		return withHint(err, "do not serve this mirror: move it aside and mirror the origin again")
	case errors.Is(err, itlog.ErrLowDisk), errors.Is(err, syscall.ENOSPC):
		return withHint(err, mirrorDiskHint(err, path))
	}
	return withHint(err, "-mirror names the mirror's own database (made by sumd mirror or sumd mirror import), never the database of a log sumd signs")
}

func runMirrorExport(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadFlags(config.LoadMirrorExport, args, stderr, "the bundle file is -o BUNDLE")
	if err != nil {
		return err
	}
	since, sinceOf, err := parseSince(cfg.Since)
	if err != nil {
		return err
	}
	toStdout := cfg.Out == "-"
	if toStdout {
		if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return usageError(errors.New("-o - writes the bundle to standard output, which is a terminal"), "redirect standard output to a file or a pipe, or name a new file with -o BUNDLE")
		}
	} else if err := checkOut(cfg.Out, "-mirror", cfg.Mirror); err != nil {
		return err
	}
	logger := config.NewLogger(cfg.Log, stderr)
	l, _, err := openMirror(cfg.Mirror, cfg.OriginKey, &cfg.Sources, false, -1, "", logger) // reads only
	if err != nil {
		return err
	}
	defer l.Close()
	if sinceOf != "" && sinceOf != l.Name() {
		return usageError(fmt.Errorf("-since %s is a bundle of %s, but %s mirrors %s", cfg.Since, sinceOf, cfg.Mirror, l.Name()),
			"give -since the last bundle of this mirror's origin, or the tree size the importing side holds of it")
	}
	if held := l.Published().Tree; since > held.N {
		return withHint(fmt.Errorf("cannot export from tree %d: %s holds a tree of %d records", since, cfg.Mirror, held.N),
			"the importing side holds more of "+l.Name()+" than this mirror: it needs nothing from it. Bring this mirror up to date first "+
				"(sumd mirror -mirror "+cfg.Mirror+", or import the newer bundles into it), or check -since: the tree size the importing side holds, or the last bundle it imported")
	}
	ctx, stop := interruptContext()
	defer stop()
	var st *mirror.ExportStats
	export := func(w io.Writer) error {
		var err error
		st, err = mirror.Export(ctx, l, w, since)
		return err
	}
	// The summary goes where the bundle does not: with -o -, standard
	// error (a bundle cut short there is refused as truncated).
	what, summary := cfg.Out, stdout
	if toStdout {
		what, summary = "a bundle to standard output", stderr
		bw := bufio.NewWriterSize(stdout, 1<<16)
		if err = export(bw); err == nil {
			err = bw.Flush()
		}
		if err != nil {
			err = fmt.Errorf("failed to write the bundle to standard output: %w", err)
		}
	} else {
		err = writeOut(cfg.Out, export, nil)
	}
	if err != nil {
		return err
	}
	perRecord := ""
	if n := st.Header.To - st.Header.From; n > 0 {
		perRecord = fmt.Sprintf(" (%.0f bytes per record)", float64(st.Bytes)/float64(n))
	}
	fmt.Fprintf(summary, "wrote %s: %s from tree %d to %d, %d tiles and %d records, %d bytes%s\n",
		what, st.Header.Name, st.Header.From, st.Header.To, st.Tiles, st.Records, st.Bytes, perRecord)
	if st.Header.Private {
		fmt.Fprintln(summary, "the bundle is marked private (the mirror's data was read with credentials): the mirror that imports it is served only to clients asked for credentials, and a sumd older than this mark refuses it")
	}
	return nil
}

// parseSince reads -since: a tree size, a bundle (its "to", and its
// origin's name, which the caller checks), or a file holding a signed head
// (its size; the importer verifies what it holds).
func parseSince(s string) (int64, string, error) {
	if s == "" {
		return 0, "", nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return n, "", nil
	}
	f, err := os.Open(s)
	if err != nil {
		return 0, "", usageError(fmt.Errorf("since: %w", err), "give -since a tree size, the last bundle, or a file holding a signed head")
	}
	defer f.Close()
	if h, err := mirror.ReadBundleHeader(f); err == nil {
		return h.To, h.Name, nil
	}
	if data, err := readSmallFile(s, sumdbclient.MaxLatest); err == nil {
		if n, err := mirror.HeadSize(data); err == nil {
			return n, "", nil
		}
	}
	return 0, "", usageError(fmt.Errorf("since: %s is neither a bundle nor a signed tree head", s), "give -since a tree size, the last bundle, or a file holding a signed head")
}

func runMirrorImport(args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := loadArgs(config.LoadMirrorImport, args, stderr)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return usageError(errors.New("no bundle to import"), "name the bundle files after the flags: sumd mirror import -mirror FILE BUNDLE...")
	}
	if i := slices.Index(rest, "-"); i >= 0 && slices.Contains(rest[i+1:], "-") {
		// The first import reads standard input to its end, and closes it.
		return usageError(errors.New("standard input (-) is named twice: it holds one stream, read once"),
			"name - once; to import several bundles, name their files, or stream each in its own sumd mirror import")
	}
	logger := config.NewLogger(cfg.Log, stderr)
	for _, bundle := range rest {
		if err := importOne(cfg, bundle, stdout, stderr, logger); err != nil {
			return err
		}
	}
	return nil
}

// importOne imports the bundle file arg, or standard input if arg is "-".
func importOne(cfg *config.MirrorImport, arg string, stdout, stderr io.Writer, logger *slog.Logger) error {
	bundle := arg // for messages
	if arg == "-" {
		bundle = "standard input"
	}
	r, err := openBundle(arg, filepath.Dir(cfg.Mirror), cfg.DiskFloor.Bytes())
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return withHint(err, "check the bundle's name: "+bundle+" (the bundle files come after the flags)")
	} else if err != nil {
		return err
	}
	defer r.Close()
	offset, err := r.Seek(0, io.SeekCurrent) // not 0 for standard input opened part way into a file
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", bundle, err)
	}
	h, err := mirror.ReadBundleHeader(r)
	if err != nil {
		return fmt.Errorf("%s: %w", bundle, err)
	}
	if _, err := r.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("failed to read %s: %w", bundle, err)
	}
	_, statErr := os.Stat(cfg.Mirror)
	created := errors.Is(statErr, fs.ErrNotExist)
	l, stored, err := openMirror(cfg.Mirror, cfg.OriginKey, &cfg.Sources, true, cfg.DiskFloor.Bytes(), h.Name, logger)
	if err != nil {
		return err
	}
	defer l.Close()
	if stored == nil {
		if err := mirror.WriteConfig(context.Background(), l, &mirror.Config{VerifierKeys: l.VerifierKeys()}); err != nil {
			return err
		}
	}
	vs, err := sumdbclient.ParseVerifiers(l.VerifierKeys()...)
	if err != nil {
		return err
	}
	bar := newProgress(stderr, "importing records")
	start := time.Now()
	before := mirrorProgress(l)
	opts := mirror.ImportOptions{Logger: logger, Progress: bar.update}
	ctx := context.Background()
	if testImport != nil {
		ctx = testImport(ctx, &opts)
	}
	st, err := mirror.Import(ctx, l, vs, r, opts)
	bar.finish()
	if err == nil || mirrorProgress(l) != before {
		if serr := saveImportKeys(l); serr != nil && err == nil {
			err = serr
		}
	}
	after := mirrorProgress(l)
	if err != nil && created && after == before {
		// A refused bundle changes nothing: not even a new, empty
		// database is left behind. One that staged part of the bundle
		// (a failure while storing: the disk's floor, say) publishes
		// nothing yet, but is kept: the same import resumes it.
		if rerr := os.Remove(cfg.Mirror); rerr == nil {
			logger.Info("removed the new mirror database: nothing was imported", "mirror", cfg.Mirror)
		}
	}
	if err != nil {
		var se *mirror.SecurityError
		if errors.As(err, &se) {
			return withHint(fmt.Errorf("%s: %w", bundle, err), "nothing was stored: the bundle's history forks from the mirror's; find out where it was made before importing anything from there")
		}
		n := l.Published().Tree.N
		if after != before && after.staged.N > n {
			return withHint(fmt.Errorf("%s: %w", bundle, err), fmt.Sprintf(
				"nothing from this bundle was published (the mirror serves tree %d), but part of tree %d is stored: import the same bundle again once the cause is fixed, and it resumes", n, after.staged.N))
		}
		if h := mirrorDiskHint(err, cfg.Mirror); h != "" {
			return withHint(fmt.Errorf("%s: %w", bundle, err), fmt.Sprintf("nothing from this bundle was published (the mirror serves tree %d); %s", n, h))
		}
		return withHint(fmt.Errorf("%s: %w", bundle, err), fmt.Sprintf(
			"nothing from this bundle was published (the mirror serves tree %d); if it was damaged on the way, fetch it again, or export one with -since %d, and import that", n, n))
	}
	rate := ""
	if s := time.Since(start).Seconds(); s > 0 && st.Records > 0 {
		rate = fmt.Sprintf(", %.0f records/s", float64(st.Records)/s)
	}
	fmt.Fprintf(stdout, "imported %s: %s tree %d (was %d), %d records in %d commits in %s%s\n",
		bundle, h.Name, st.To.N, st.From.N, st.Records, st.Commits, time.Since(start).Round(time.Millisecond), rate)
	// A private bundle of a tree the mirror holds stores nothing and
	// leaves a public mirror public: say so only of one left private.
	if mc, err := mirror.ReadConfig(ctx, l); st.Header.Private && err == nil && mc != nil && servedCreds(mc) != "" {
		fmt.Fprintf(stdout, "the bundle comes from a private mirror (its origin asks for credentials): sumd serve serves %s only to clients it asks for credentials too (-read-auth basic or bearer, or -tls-client-roles)\n", cfg.Mirror)
	}
	return nil
}

// testImport, set by tests, changes each import's context and options:
// smaller steps, an interruption part way.
var testImport func(context.Context, *mirror.ImportOptions) context.Context

// saveImportKeys stores the keys an import ran with (-origin-key, else
// those the mirror remembers) in the mirror's configuration, where later
// commands and sumd serve -mirror take them from; importOne calls it when,
// as for saveMirrorConfig, the import succeeded or changed the mirror: a
// bundle's head verified under them. The configuration is read again, as
// Import may have changed it (a partial bundle).
func saveImportKeys(l *itlog.Log) error {
	ctx := context.Background()
	c, err := mirror.ReadConfig(ctx, l)
	if err != nil {
		return err
	}
	if c == nil {
		c = &mirror.Config{}
	}
	if slices.Equal(c.VerifierKeys, l.VerifierKeys()) {
		return nil
	}
	c.VerifierKeys = l.VerifierKeys()
	return mirror.WriteConfig(ctx, l, c)
}

// openBundle opens a bundle file for Import, which reads it once per
// pass through one descriptor; "-" is standard input. A bundle that is not
// a regular file (a pipe, a FIFO, a device) cannot be read again: it is
// copied once (copyBundle) into a temporary file in dir (the mirror's
// directory: a full bundle is as large as the log), unlinked at once, so
// that no copy outlives the process, even one ended by a signal or a
// crash. The copy keeps floor bytes free there
// (-min-free-disk; negative: none), as the mirror's commits do: a stream
// that filled the disk would fail the database's next commit, which stops
// the log.
func openBundle(name, dir string, floor int64) (io.ReadSeekCloser, error) {
	f, err := os.Stdin, error(nil)
	if name != "-" {
		f, err = os.Open(name)
	} else {
		name = "standard input"
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Mode().IsRegular() {
		return f, nil
	}
	defer f.Close()
	tmp, err := os.CreateTemp(dir, ".sumd-import-*.bundle")
	if err != nil {
		return nil, fmt.Errorf("failed to copy %s, which is not a regular file, to read it more than once: %w", name, err)
	}
	if err := os.Remove(tmp.Name()); err != nil { // the open descriptor keeps the data
		tmp.Close()
		return nil, err
	}
	if err := copyBundle(tmp, f, floor); err != nil {
		tmp.Close() // and the copy, unlinked, is gone
		if errors.Is(err, itlog.ErrLowDisk) {
			err = withHint(fmt.Errorf("failed to copy %s, which is not a regular file, into %s to read it more than once: %w", name, dir, err),
				"nothing was imported; save the bundle to a file (on another disk if need be) and import that, or free space in the mirror's directory, or lower -min-free-disk")
		} else {
			err = fmt.Errorf("%s, which is not a regular file: %w", name, err)
		}
		return nil, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		return nil, err
	}
	return tmp, nil
}

// copyBundle copies the bundle stream src into tmp, above floor: its
// header first, and no more than a bundle of the trees the header names
// can hold (mirror.MaxBundleSize), so that a stream that is not a bundle
// is refused at its start, and one too large once it is, rather than
// filling the disk to its floor before anything reads it.
func copyBundle(tmp *os.File, src io.Reader, floor int64) error {
	w := &itlog.FloorWriter{W: tmp, Path: tmp.Name(), Guard: itlog.SpaceGuard{Floor: floor, Free: itlog.FreeSpace}}
	copied := &countingWriter{w: w}
	h, err := mirror.ReadBundleHeader(io.TeeReader(src, copied)) // what it reads ahead is copied too
	if copied.err != nil {
		return copied.err
	}
	if err != nil {
		return fmt.Errorf("not a sumd mirror bundle: %w", err)
	}
	limit, err := mirror.MaxBundleSize(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(copied, io.LimitReader(src, limit-copied.n+1))
	switch {
	case err != nil:
		return err
	case copied.n > limit:
		return fmt.Errorf("the stream is larger than any bundle from tree %d to %d can be (%d bytes): it is no bundle, or not the one its header says", h.From, h.To, limit)
	}
	return nil
}

// A countingWriter counts what it writes, and keeps its error.
type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(b []byte) (int, error) {
	k, err := c.w.Write(b)
	c.n += int64(k)
	if err != nil && c.err == nil {
		c.err = err
	}
	return k, err
}

// batchGC lets the heap grow to five times what is live before a garbage
// collection, in the batch commands that move records in bulk (mirror,
// import, restore): their live heap is a few steps of records (tens of
// MB), and collecting less often saves about a quarter of their CPU time
// (measured by BenchmarkMirror, which does the same). A GOGC the operator
// set stands: off stays off, and a lower percent, chosen for memory, is
// kept.
func batchGC() {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(400)
}
