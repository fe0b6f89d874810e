package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb"
	"golang.org/x/term"

	"github.com/sumd-project/sumd/internal/access"
	"github.com/sumd-project/sumd/internal/admin"
	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/heapfloor"
	"github.com/sumd-project/sumd/internal/mirror"
	"github.com/sumd-project/sumd/internal/scratch"
	"github.com/sumd-project/sumd/internal/secret"
	"github.com/sumd-project/sumd/internal/serve"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/pgstore"
	"github.com/sumd-project/sumd/internal/tlscert"
	"github.com/sumd-project/sumd/internal/upstream"
)

// serveHeapFloor is the heap size below which sumd serve does not collect
// garbage (heapfloor.Keep): it lives on a few MiB, which GOGC=100 made it
// collect every few hundred lookups, a tenth of the CPU of a first lookup.
const serveHeapFloor = 64 << 20

func runServe(args []string, stdout, stderr io.Writer) error {
	// SIGHUP is caught before anything else, the configuration's read
	// included (see stopSignals).
	sig := stopSignals(stderr)
	defer sig.stop()
	cfg, err := loadFlags(config.LoadServe, args, stderr, onlyFlags("serve"))
	if err != nil {
		return err
	}
	up, err := parseUpstream(cfg)
	if err != nil {
		return err
	}
	sc, err := prepareSync(cfg.ServeSync)
	if err != nil {
		return err
	}
	// Every line a request causes names its credential: the audit trail.
	logger := slog.New(access.LogHandler(config.NewLogger(cfg.Log, stderr).Handler()))
	cert, tlsConf, err := loadTLS(cfg.TLSCert, cfg.TLSKey, logger)
	if err != nil {
		return err
	}
	clientCAs, err := clientCerts(tlsConf, cfg.Access, logger)
	if err != nil {
		return err
	}
	allowed, err := config.ParseAllowedHosts(cfg.AllowedHosts) // validated by LoadServe
	if err != nil {
		return err
	}
	if cfg.ReadAuth != config.ReadAuthNone && tlsConf == nil {
		logger.Warn("credentials travel in the clear unless a TLS proxy is in front: the go command sends them over HTTPS only", "read_auth", cfg.ReadAuth)
	}
	ac := access.Config{
		Mode: access.Mode(cfg.ReadAuth), File: cfg.ReadAuthFile,
		CertFile: cfg.TLSClientRoles, AdminTokenFile: cfg.AdminTokenFile, AllowedHosts: allowed,
	}
	if !cfg.MirrorOnly && !ac.Required() && credentialedUpstream(up.sources) {
		// Served all the same, as before: a proxy on a network of its own
		// may be meant to be so. But a lookup is a fetch anyone can
		// trigger, with credentials that may reach private modules.
		logger.Warn("-upstream-auth without -read-auth: any client that reaches sumd makes it fetch from upstream with these credentials, and reads the hashes it records, private modules' too; ask clients for credentials (-read-auth, or -tls-client-roles), or limit what is recorded (-record): docs/access.md",
			"upstream", upstream.FormatList(up.sources))
	}
	ownDB := cfg.DB
	if cfg.MirrorOnly {
		ownDB = "" // none: -tmp-dir, else a new directory of this process's own
	}
	tmpDir, removeTmp, err := scratchDir(cfg.TmpDir, ownDB)
	if err != nil {
		return err
	}
	defer removeTmp()
	cfg.TmpDir = tmpDir
	defer heapfloor.Keep(serveHeapFloor)() // see serveHeapFloor
	reg := serve.NewRegistry()
	reg.MustRegister(buildInfo())
	// The rest of the configuration is checked before the log is opened
	// (or created, with its key, on a first start): the cross-check's key
	// and state file, and that each -mirror exists.
	var upMetrics *upstream.Metrics
	if !cfg.MirrorOnly {
		upMetrics = upstream.NewMetrics(reg)
		if up.checker, err = newChecker(cfg.CrosscheckOptions, up.sources, cfg.UpstreamTimeout, cfg.DB, logger, upMetrics); err != nil {
			return err
		}
	}
	if err := checkMirrorFiles(cfg.MirrorList()); err != nil {
		return err
	}
	if !cfg.MirrorOnly {
		if err := newLogBesideMirrors(cfg.Database, cfg.Create, len(cfg.MirrorList()) > 0); err != nil {
			return err
		}
	}
	var certProblems serve.ProblemReporter // nil, not a nil *Reloader
	if cert != nil {
		cert.Register(reg)
		certProblems = cert
	}
	ctx := sig.start(logger)
	openOwn := func() (*tlog.Log, error) {
		return openLog(cfg.Database, openOptions{
			cmd: "serve", create: cfg.Create, firstStart: true, verify: verifyMode(cfg.Verify), minFree: cfg.DiskFloor.Bytes(),
			maxBatch: cfg.MaxBatch, logger: logger, metrics: tlog.NewMetrics(reg),
			refresh: cfg.RefreshInterval, maxHeadAge: cfg.MaxHeadAge, registry: reg,
			stop: ctx.Done(),
		}, stderr)
	}
	surface := func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) {
		// Once the log is open, its lock makes the directory ours.
		if err := openTmpDir(cfg.TmpDir, logger); err != nil {
			return nil, nil, err
		}
		return up.serverOps(ctx, cfg, l, upMetrics, logger)
	}
	watched := dbFile(cfg.DB)
	if cfg.MirrorOnly {
		openOwn, watched = nil, ""
		surface = func(l *tlog.Log) (sumdb.ServerOps, http.Handler, error) { return mirrorSurface(cfg, l, logger) }
	}
	parallel := cfg.UpstreamParallel
	if cfg.Upstream.Upstream == "" {
		parallel = 0 // no fetches
	}
	return serve.Run(ctx, serve.Config{
		Logger: logger, Registry: reg, Version: version(),
		Listen: cfg.Listen, AdminListen: cfg.AdminListen, MetricsListen: cfg.MetricsListen, ReadListen: cfg.ReadListen, TLS: tlsConf,
		Access:         ac,
		RequestTimeout: writeTimeout(cfg), ShutdownTimeout: cfg.ShutdownTimeout, MaxConnections: cfg.MaxConnections,
		UpstreamParallel: parallel,
		CacheBytes:       int64(cfg.Cache) << 20,
		OpenLog:          openOwn,
		Mirrors:          serveMirrors(cfg, mirror.NewMetrics(reg), logger),
		DBFile:           watched,
		MirrorFiles:      cfg.MirrorList(),
		MinFreeDisk:      cfg.DiskFloor.Bytes(),
		TLSProblems:      certProblems,
		ClientCAs:        clientCAsOf(clientCAs),
		Surface:          surface,
		TUF:              serveTUF(cfg.TUFServe),
		Sync:             sc.serveSync(cfg.ServeSync, cfg.TmpDir, up, reg, logger),
		PublicURL:        cfg.PublicURL,
		Ready: func(l *tlog.Log, url string) {
			// Behind a reverse proxy, users copy this line: the URL they
			// reach, not the listen address (which the log names).
			fmt.Fprintf(stdout, "GOSUMDB=\"%s %s\"\n", l.VerifierKey(), cmp.Or(cfg.PublicURL, url))
		},
	})
}

// openTmpDir prepares the directory of temporary zips and removes the
// files a crash left there. It runs once the database is open, so that a
// second sumd on a database file fails on the database's lock first; the
// directory's own lock refuses a -tmp-dir that another sumd process holds
// (one given to two, which a shared PostgreSQL database does not prevent).
// The lock is held until the process exits.
func openTmpDir(dir string, logger *slog.Logger) error {
	removed, err := scratch.Open(dir)
	switch {
	case errors.Is(err, scratch.ErrInUse):
		return withHint(err, "stop the other sumd, or give this one a -tmp-dir of its own (with PostgreSQL, leaving -tmp-dir unset gives each process a new directory under $TMPDIR)")
	case err != nil:
		return withHint(err, "set -tmp-dir to a directory only sumd writes to (default: the database file's name plus .tmp)")
	}
	if len(removed) > 0 {
		logger.Info("removed temporary files left by a crash", "dir", dir, "files", len(removed))
	}
	return nil
}

// loadTLS reads the certificate and key for HTTPS, and keeps reading them
// when they change (tlscert); none means plain HTTP.
func loadTLS(certFile, keyFile string, logger *slog.Logger) (*tlscert.Reloader, *tls.Config, error) {
	if certFile == "" {
		return nil, nil, nil
	}
	r, err := tlscert.New(certFile, keyFile, logger)
	if err != nil {
		return nil, nil, tlsFileError(err)
	}
	return r, &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12}, nil
}

// tlsFileError explains why -tls-cert or -tls-key could not be loaded: a
// file this user may not read (a root-owned key under the unit's dynamic
// user, or mounted into the container) gets the signing key's hint, since
// it has the same causes and cures; anything else is not PEM.
func tlsFileError(err error) error {
	err = fmt.Errorf("failed to load TLS certificate: %w", err)
	var perr *fs.PathError
	if errors.As(err, &perr) && errors.Is(err, fs.ErrPermission) {
		return withHint(err, unreadableHint(perr.Path))
	}
	return withHint(err, secretHint(err, "-tls-cert and -tls-key must be the PEM certificate chain and its private key"))
}

// clientCerts makes the TLS listeners ask for client certificates signed
// by -tls-client-ca (mutual TLS). The handshake verifies them: an expired
// or untrusted certificate never reaches the access layer. The CA file is
// read again when it changes (the pool returned, nil without the option).
func clientCerts(conf *tls.Config, a config.Access, logger *slog.Logger) (*tlscert.CAPool, error) {
	if a.TLSClientCA == "" {
		return nil, nil
	}
	cas, err := tlscert.NewCAPool(a.TLSClientCA, logger)
	if err != nil {
		var fe *tlscert.FileError
		if errors.As(err, &fe) {
			err = fmt.Errorf("failed to read -tls-client-ca: %w", fe.Err)
		} else {
			err = fmt.Errorf("-tls-client-ca %s %w", a.TLSClientCA, err)
		}
		return nil, withHint(err, "give the PEM file of the CA certificates that issue client certificates")
	}
	conf.ClientCAs = cas.Pool()
	conf.ClientAuth = tls.RequireAndVerifyClientCert
	if a.TLSClientAuth == config.ClientAuthIfGiven {
		conf.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cas, nil
}

// clientCAsOf is cas as serve's Config takes it: nil, not a nil *CAPool.
func clientCAsOf(cas *tlscert.CAPool) serve.ClientCAs {
	if cas == nil {
		return nil
	}
	return cas
}

func treeSize(l *tlog.Log) int64 {
	t, _ := l.Tree(context.Background())
	return t.N
}

func verifyMode(s string) tlog.VerifyMode {
	if s == config.VerifyFull {
		return tlog.VerifyFull
	}
	return tlog.VerifyTail
}

// openOptions say how openLog opens the database.
type openOptions struct {
	cmd        string // the command ("serve", "key rotate") its hints name
	create     bool   // -create: starting a new log is intended
	firstStart bool   // the embedded default log may be created (see checkFirstStart)
	lockedHint string // what to do when another process holds the database; default: lockedHint
	lostKey    string // key retire: the verifier key retired, whose private key may be lost (tlog.Options.LostKey)
	minFree    int64  // a bbolt file's floor of free space (tlog.Options.MinFree); -1: none, for a command that only reads
	verify     tlog.VerifyMode
	maxBatch   int
	logger     *slog.Logger
	metrics    *tlog.Metrics
	refresh    time.Duration         // on PostgreSQL: tlog.Options.RefreshInterval
	maxHeadAge time.Duration         // on PostgreSQL: tlog.Options.MaxHeadAge
	registry   prometheus.Registerer // on PostgreSQL: receives sumd_postgres_*
	stop       <-chan struct{}       // ends the open's verification (tlog.Options.Stop): sumd serve's signals
}

// openLog reads the signing key and opens the database, generating both on
// the first start of the embedded default log when allowed (never for a
// PostgreSQL database: several processes share it, and each generating a
// key would race). A first start that fails before the database exists
// removes the key it generated.
func openLog(db config.Database, o openOptions, stderr io.Writer) (*tlog.Log, error) {
	if o.firstStart && db.IsEmbeddedDefault() && !exists(db.Key) && !exists(db.DB) {
		if err := checkFirstStart(db); err != nil {
			return nil, err
		}
		vkey := db.Key[:len(db.Key)-len(".key")] + ".vkey"
		if _, err := writeKey(db.Name, db.Key, vkey); err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "sumd: first start: generated signing key %s for %s\n", db.Key, db.Name)
		made, serr := os.Stat(db.Key)
		l, err := openLogWith(db, o, true)
		if err != nil && serr == nil {
			removeFirstStartKey(db, vkey, made, stderr)
		}
		if errors.Is(err, syscall.ENOTDIR) && !errors.As(err, new(*cliError)) {
			// The paths are relative: another directory has its own.
			return l, withHint(err, fmt.Sprintf("%s is a file, where the first start puts its database (%s): move it away, or start sumd in another directory; "+
				"the next start is a first start again", filepath.Dir(db.DB), db.DB))
		}
		return l, err
	}
	return openLogWith(db, o, o.create)
}

// removeFirstStartKey removes the key files a first start that failed
// generated (made is the signing key's), unless a database exists: the
// key signed nothing that was kept, and left alone it would turn the next
// start, a first start again, into a refusal of a key without its
// database. The check and the removal hold the key file's lock, which a
// creator holds from reading the key until its database exists
// (lockKeys): a sumd serve -create started meanwhile would otherwise
// create the database with the key between the two, a log whose key is
// gone. Only the file made is removed, never one put at the path since.
func removeFirstStartKey(db config.Database, vkey string, made os.FileInfo, stderr io.Writer) {
	f, err := lockKeyFile(db.Key, true)
	if err == nil && f == nil {
		return // gone already
	}
	if err == nil {
		defer f.Close()
		held, serr := f.Stat()
		if exists(db.DB) || serr != nil || !os.SameFile(held, made) {
			return
		}
		if firstStartRemoving != nil {
			firstStartRemoving()
		}
		err = errors.Join(removeKeyFile(db.Key), removeKeyFile(vkey))
	}
	if err == nil {
		fmt.Fprintf(stderr, "sumd: first start failed: removed the signing key %s generated for it\n", db.Key)
		return
	}
	// Else the next start is no first start, whatever the hint says, but
	// a refusal of the key.
	fmt.Fprintf(stderr, "sumd: first start failed, and the signing key generated for it could not be removed (%v): remove %s and %s before the next start\n", err, db.Key, vkey)
}

// lockKeys takes the shared lock of each key file (lockKeyFile) and
// returns its release: openLogWith holds it while it creates a database,
// so that a failed first start removes no key it signs with meanwhile
// (removeFirstStartKey). A key file that cannot be locked is read without
// it: the read says why it cannot be opened, and on a file system without
// locks the creation goes on as before them.
func lockKeys(files string) func() {
	var locked []*os.File
	for file := range strings.SplitSeq(files, ",") {
		if f, err := lockKeyFile(file, false); err == nil && f != nil {
			locked = append(locked, f)
		}
	}
	return func() {
		for _, f := range locked {
			f.Close()
		}
	}
}

// firstStartRemoving and keyLockWaiting, if set by a test, run when a
// failed first start is about to remove its key, holding its lock, and
// when lockKeyFile waits for another holder.
var firstStartRemoving, keyLockWaiting func()

// removeKeyFile is os.Remove; a test makes it fail.
var removeKeyFile = os.Remove

// openLogWith is openLog once the key exists: create says whether a
// missing database may be created.
func openLogWith(db config.Database, o openOptions, create bool) (*tlog.Log, error) {
	if create && dbFile(db.DB) != "" && !exists(db.DB) {
		defer lockKeys(db.Key)()
	}
	keys, err := readKeys(db, o.cmd)
	if err != nil {
		return nil, err
	}
	opts := tlog.Options{
		Keys: keys, Create: create, Verify: o.verify, MaxBatch: o.maxBatch,
		Logger: o.logger, Metrics: o.metrics, RefreshInterval: o.refresh, MaxHeadAge: o.maxHeadAge,
		MinFree: o.minFree, LostKey: o.lostKey, Stop: o.stop,
	}
	if pgstore.IsURL(db.DB) {
		l, err := openPostgres(db.DB, opts, o.registry, o.cmd)
		warnCreateLeftOn(l, o, redact(db.DB))
		return l, err
	}
	l, err := tlog.Open(db.DB, opts)
	warnCreateLeftOn(l, o, db.DB)
	if hinted := openLogError(err, db, o, create); hinted != err {
		return nil, hinted
	}
	return l, err
}

// openLogError adds to err, the error of opening the bbolt database db, a
// hint saying what to do, or returns err itself when it has none.
func openLogError(err error, db config.Database, o openOptions, create bool) error {
	var other *tlog.OtherLogError
	switch {
	case errors.Is(err, tlog.ErrLocked):
		return withHint(err, cmp.Or(o.lockedHint, lockedHint))
	case errors.As(err, &other):
		return withHint(err, otherLogHint(other, db.DB, o.cmd))
	case errors.Is(err, tlog.ErrCorrupt):
		return withHint(err, ownHint(err, "do not serve this database: restore it from a backup and audit it (docs/design)"))
	case errors.Is(err, fs.ErrNotExist) && !exists(db.DB):
		return withHint(fmt.Errorf("database %s: %w", db.DB, fs.ErrNotExist), noLogHint(o.cmd))
	case errors.Is(err, tlog.ErrLowDisk) && create && !exists(db.DB):
		return withHint(err, lowDiskCreatingHint(o))
	case errors.Is(err, fs.ErrPermission):
		// A first-hour mistake: data/ made by root, or a volume mounted
		// for another user; bbolt's open says only "permission denied".
		return withHint(err, fmt.Sprintf("this user (uid %d) may not write %s or its directory %s: chown them to the user sumd runs as "+
			"(65532 in the container image), or give -db a path in a directory it may write", os.Geteuid(), db.DB, filepath.Dir(db.DB)))
	}
	return err
}

// lowDiskCreatingHint is the hint for -min-free-disk refusing the creation
// of a log, which removed the new database file: the store's own hint
// says the database is intact, and there is none.
func lowDiskCreatingHint(o openOptions) string {
	again := "run sumd " + o.cmd + " -create again once there is room"
	if !o.create {
		again = "run sumd " + o.cmd + " again once there is room: it is a first start again"
	}
	return "free space on that file system (the log grows by about 400 bytes per record), or lower -min-free-disk; " +
		"nothing was recorded and no database was left (the new file was removed): " + again
}

// otherLogHint is the hint for db, a database holding another log than
// the key's: most likely the first start's, given a new key without -db
// by a user who wanted a log of another name.
func otherLogHint(e *tlog.OtherLogError, db, cmd string) string {
	hint := db + " holds the log " + e.Stored + ": "
	if cmd != "serve" {
		return hint + "pass that log's key (-key), or the -db of " + e.Key + "'s log"
	}
	return hint + "serve it with that log's key; to start the log " + e.Key + ", give it a database of its own: sumd serve -name " +
		e.Key + " -db " + filepath.Join(filepath.Dir(db), e.Key+".db") + " -create"
}

// warnCreateLeftOn warns when sumd serve opened l, a log that existed,
// with -create. A create left on (in a config file, a unit, a container's
// command) turns a database that is missing one day (an unmounted volume, a
// moved path, a wrong PostgreSQL URL or a re-provisioned instance) into a
// new, empty log signed with the same key: a fork every client that saw
// the old one rejects.
func warnCreateLeftOn(l *tlog.Log, o openOptions, db string) {
	if l != nil && o.create && !l.Created() && o.cmd == "serve" {
		o.logger.Warn("-create is set but the database exists: remove create from the command line, environment or config file, so that a database missing one day is refused instead of replaced by a new, empty log", "db", db)
	}
}

// missingDatabase is the error openLog returns for db, a database file
// that does not exist, unless create is set (nil if it exists, or db is
// not a file): for a command to say so before it makes anything.
func missingDatabase(db string, create bool, cmd string) error {
	if create || dbFile(db) == "" || exists(db) {
		return nil
	}
	return withHint(fmt.Errorf("database %s: %w", db, fs.ErrNotExist), noLogHint(cmd))
}

// A stopper is the context sumd serve stops on, and what ends it.
type stopper struct {
	ctx    context.Context
	cancel context.CancelFunc
	sigs   chan os.Signal
	logger atomic.Pointer[slog.Logger] // set by start
	mu     sync.Mutex                  // orders start's Notify and the stop's Reset
}

// stopSignals returns a stopper whose context, once started, ends on
// SIGINT or SIGTERM, when sumd serve drains and stops (exit 0); a second
// one ends it at once. SIGHUP's default action would kill sumd without
// draining requests or saving the status history, so it is caught too. On
// a terminal it means the terminal closed: stop as for SIGTERM. Otherwise
// it comes from an operator or a tool expecting a reload (a logrotate or
// certbot hook, systemctl kill -s HUP); stopping would leave a unit with
// Restart=on-failure down (systemd counts a death by SIGHUP as a clean
// exit), and there is nothing to reload (certificates, token and
// credential files are read again when they change), so sumd logs that
// and carries on. runServe calls it first, so that SIGHUP is caught while
// the start reads its configuration too (logged as text on stderr until
// start); SIGINT and SIGTERM keep their default action, ending sumd at
// once, until start, when there is something to drain or close.
func stopSignals(stderr io.Writer) *stopper {
	s := &stopper{sigs: make(chan os.Signal, 1)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	signal.Notify(s.sigs, syscall.SIGHUP)
	onTerminal := isTerminal(stderr)
	early := slog.New(slog.NewTextHandler(stderr, nil))
	go func() {
		for {
			select {
			case <-s.ctx.Done():
				return
			case sig := <-s.sigs:
				logger := cmp.Or(s.logger.Load(), early)
				if sig == syscall.SIGHUP && !onTerminal {
					logger.Info("SIGHUP: nothing to reload (TLS certificates, tokens and credential files are read again when they change); sumd carries on: stop it with SIGTERM")
					continue
				}
				// A second SIGINT or SIGTERM takes the default action and
				// ends sumd at once, for whoever cannot wait for the
				// drain (-shutdown-timeout) or for a stuck part: safe,
				// since a crash at any instant is (what is acknowledged
				// is durable; opening re-verifies).
				s.mu.Lock()
				signal.Reset(syscall.SIGINT, syscall.SIGTERM)
				s.cancel()
				s.mu.Unlock()
				logger.Info("stopping: a second SIGINT or SIGTERM ends sumd at once", "signal", sig.String())
				return
			}
		}
	}()
	return s
}

// start catches SIGINT and SIGTERM too, logs to logger, and returns the
// context they end.
func (s *stopper) start(logger *slog.Logger) context.Context {
	s.logger.Store(logger)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() == nil { // not stopped by a terminal's SIGHUP
		signal.Notify(s.sigs, syscall.SIGINT, syscall.SIGTERM)
	}
	return s.ctx
}

// stop stops catching the signals and ends the context.
func (s *stopper) stop() {
	signal.Stop(s.sigs)
	s.cancel()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// noLogHint is the hint for a database without a log, opened by cmd: the
// commands that can create one (serve, add, sync) say how; the others work
// on an existing log only.
func noLogHint(cmd string) string {
	switch cmd {
	case "serve", "add", "sync":
		return "check -db; to start a new, empty log on purpose, add -create"
	}
	return "check -db: sumd " + cmd + " works on an existing log (sumd serve -create or sumd add -create starts one)"
}

// readKeys reads the signing key files of db.Key, a comma-separated list:
// one key, or the old and the new one during a key rotation. cmd ("serve",
// "key rotate") is the command the hints name.
func readKeys(db config.Database, cmd string) ([]*tlog.Key, error) {
	var keys []*tlog.Key
	for file := range strings.SplitSeq(db.Key, ",") {
		key, err := tlog.ReadKeyFile(file)
		if err != nil {
			return nil, keyFileError(db, file, err, cmd)
		}
		if db.Name != "" && key.Name() != db.Name {
			return nil, withHint(fmt.Errorf("key %s signs for %q, but the name is %q", file, key.Name(), db.Name),
				"drop -name (the key names the log) or use that log's key")
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// readKeyFile reads a signing key file; one that other users may access is
// refused with a chmod hint.
func readKeyFile(file string) (*tlog.Key, error) {
	key, err := tlog.ReadKeyFile(file)
	var mode *secret.ModeError
	if errors.As(err, &mode) {
		return nil, withHint(err, mode.Hint())
	}
	return key, err
}

// secretHint is the hint for err, an error reading a secret file: chmod for
// one other users may access, else hint.
func secretHint(err error, hint string) string {
	var mode *secret.ModeError
	if errors.As(err, &mode) {
		return mode.Hint()
	}
	return hint
}

// namedFile names the option of a secret file that is not there, which
// err does not: the name may be the secret itself (secret.NotExistError).
func namedFile(option string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", option, err)
	}
	return err
}

// exists reports whether path may exist: any answer of stat but "no such
// file" counts (a file this user may not stat may be there).
func exists(path string) bool {
	_, err := os.Stat(path)
	// ENOTDIR: a directory of path is a file, so path cannot exist (a
	// data/sumd.db under a file data was taken for a database).
	return !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR)
}

// serveMirrors returns the mirrors of -mirror: each database remembers its
// origin (made by sumd mirror or sumd mirror import), and the credentials
// it reads the origin with, which serve.Run refuses to serve to anonymous
// clients.
func serveMirrors(cfg *config.Serve, metrics *mirror.Metrics, logger *slog.Logger) []serve.Mirror {
	var out []serve.Mirror
	for _, path := range cfg.MirrorList() {
		var cert *tlscert.Reloader // the client certificate Open loads, nil: none
		out = append(out, serve.Mirror{
			Interval: cfg.MirrorInterval,
			Open: func() (*mirror.Follower, string, error) {
				s, err := tlog.OpenBolt(path, tlog.BoltOptions{MinFree: cfg.DiskFloor.Bytes()})
				if err != nil {
					return nil, "", mirrorOpenError(missingMirror(err, path), path)
				}
				l, stored, err := openMirrorStore(context.Background(), s, "", nil, false, "", logger)
				if err != nil {
					s.Close()
					return nil, "", mirrorOpenError(err, path)
				}
				mc := stored
				if mc == nil {
					// Made by a sumd mirror run that stored nothing (an
					// import saves a configuration first): it follows
					// sum.golang.org's built-in URL as that run did, and any
					// other origin not at all, having none.
					mc = &mirror.Config{VerifierKeys: l.VerifierKeys()}
					if l.Name() == sumdbclient.SumGolangOrg {
						mc.URL = sumdbclient.SumGolangOrgURL
					}
				}
				f, err := newFollower(l, mc, followerOptions{logger: logger, metrics: metrics, clientCert: &cert})
				if err != nil {
					l.Close()
					return nil, "", err
				}
				return f, servedCreds(mc), nil
			},
			// The certificate's expiry, or renewed files that cannot be
			// loaded: an expired one stops the mirror following an origin
			// that asks for it, which the failed rounds alone do not say.
			Problems: func() []string {
				if cert == nil {
					return nil
				}
				return cert.ClientProblems()
			},
			ClientCertExpiry: func() time.Time {
				if cert == nil {
					return time.Time{}
				}
				return cert.NotAfter()
			},
		})
	}
	return out
}

// originCreds names the credentials a mirror configured by mc sends to its
// origin, without the secret ("": none). A mirror made without -auth reads
// the go command's .netrc if it has one: that is not counted, as most
// mirrors so made follow a public origin (sum.golang.org). A client
// certificate (sumd mirror -client-cert) is a credential as a token is.
func originCreds(mc *mirror.Config) string {
	switch {
	case mc.URL == "":
		return ""
	case mc.ClientCert != "":
		return "client-cert:" + mc.ClientCert
	case mc.Auth == "":
		return ""
	}
	a, err := upstream.ParseAuth(mc.Auth)
	switch {
	case err != nil: // newFollower refuses it first
		return mc.Auth
	case a.Kind == upstream.AuthNone:
		return ""
	}
	return a.String()
}

// servedCreds names the credentials that make a mirror configured by mc
// private, which serve.Run refuses to serve to anonymous clients ("":
// none): those it reads its origin with, or, once forgotten, those its
// data was read with (mirror.Config.ReadWith), which it still holds.
func servedCreds(mc *mirror.Config) string {
	if c := originCreds(mc); c != "" {
		return c
	}
	if mc.ReadWith == mirror.ReadWithBundle {
		return "none of its own, but its data came from " + mc.ReadWith + "; only a new mirror, not made of one, starts public"
	}
	if mc.ReadWith != "" {
		return "forgotten since, but its data was read with " + mc.ReadWith + "; only a new mirror starts public"
	}
	return ""
}

// newLogBesideMirrors refuses the first start's new log (db the embedded
// default, none of it there) when mirrors are served and -create is not
// set: whoever names a mirror without -mirror-only most likely meant to
// serve only the mirror, and a new log would print its own GOSUMDB line.
// sumd serve checks it before serve.Run opens the mirrors (and so before
// openLog's first start), so that the mistake is named even when a mirror
// cannot be opened.
func newLogBesideMirrors(db config.Database, create, mirrors bool) error {
	if !mirrors || create || !db.IsEmbeddedDefault() || exists(db.Key) || exists(db.DB) {
		return nil
	}
	return withHint(fmt.Errorf("not creating a new log %s beside the mirrors: %s does not exist", db.Name, db.DB),
		"serve only the mirrors with -mirror-only, or pass -create to start a log of your own beside them")
}

// checkMirrorFiles refuses a -mirror file that does not exist, before the
// server opens (or creates) its own log or anything else.
func checkMirrorFiles(paths []string) error {
	for _, path := range paths {
		if _, err := os.Stat(path); err != nil {
			return mirrorOpenError(missingMirror(err, path), path)
		}
	}
	return nil
}

// missingMirror adds to err, if it says the mirror file at path does not
// exist, the hint to create it.
func missingMirror(err error, path string) error {
	if errors.Is(err, fs.ErrNotExist) {
		return withHint(err, "create the mirror first: sumd mirror -mirror "+path+" [-origin URL -origin-key VKEY]")
	}
	return err
}

// mirrorSurface is the surface of a mirror-only server: its first mirror
// (nil ops), and, if the admin role exists, the admin API with backups only.
// Backups spool in cfg.TmpDir, as on any server: -tmp-dir, or else, with
// no database of its own to put it beside, a new directory of this
// process's own (scratch.Dir), never the shared system directory.
func mirrorSurface(cfg *config.Serve, l *tlog.Log, logger *slog.Logger) (sumdb.ServerOps, http.Handler, error) {
	if !cfg.AdminAPI() {
		return nil, nil, nil
	}
	if err := openTmpDir(cfg.TmpDir, logger); err != nil {
		return nil, nil, err
	}
	return nil, admin.New(nil, admin.Options{Authenticated: true, TempDir: cfg.TmpDir, MinFree: cfg.DiskFloor.Bytes(), Logger: logger, Snapshot: l.Snapshot}), nil
}

// credentialedUpstream reports whether sumd sends credentials to one of
// the upstream proxies (-upstream-auth).
func credentialedUpstream(sources []upstream.Source) bool {
	return slices.ContainsFunc(sources, func(s upstream.Source) bool { return s.Auth.Kind != upstream.AuthNone })
}
