// Package config holds the configuration of the sumd subcommands: one struct
// per subcommand, validated in full before anything starts. The struct tags
// are the operator manual: `help` becomes the usage text of `sumd <cmd> -h`,
// `flag` names the option and `arg` is its placeholder in that text.
//
// An option is set from four layers, each winning over the ones before it:
//
//  1. the defaults of this package;
//  2. a YAML file named by -config FILE or, failing that, $SUMD_CONFIG;
//     a named file that does not exist is an error; -config= loads none;
//  3. SUMD_* environment variables (empty ones count as unset); one that
//     replaces a value of the file, unless a flag replaces it in turn,
//     gets a warning, as it may be set where the operator does not look
//     (the Dockerfile's SUMD_LISTEN);
//  4. command-line flags.
//
// Where a command takes one of two options (sumd backup's -server or -db),
// the one given as a flag wins over the other's value from a lower layer,
// which may be there for another command (exclusive.go).
//
// An option has the same name everywhere: the flag -shutdown-timeout, the YAML
// key shutdown-timeout and the environment variable SUMD_SHUTDOWN_TIMEOUT
// (upper case, "-" becomes "_"). The YAML file is a flat map of such keys:
//
//	db: /var/lib/sumd/sumd.db
//	name: sum.example.com
//	shutdown-timeout: 30s
//
// Durations use Go syntax ("10s", "1m30s"); a bare number is refused rather
// than read as nanoseconds. Numbers are decimal: 0100 is 100, and 0x40 is
// refused, where the flag package would read 64 for both. Relative paths are relative to the working
// directory, whichever layer sets them.
//
// A YAML key that no subcommand knows is an error naming it, so a typo cannot
// pass silently; a key that only another subcommand uses (listen, for sumd
// add) is ignored, so that one file can configure every subcommand. SUMD_*
// variables that name no option of any subcommand get a warning and are
// otherwise ignored (SUMD_CONFIG names the file).
//
// The YAML file is read as yaml.Nodes and each value is taken as written
// (1.10 stays "1.10", 0123 stays "0123": YAML would make them 1.1 and 83);
// the values of every layer are then parsed by the same flag.Value setters,
// so a bad value is reported with the file key, variable or flag it came
// from; a value Validate refuses that a file or variable set is followed by
// a line naming it, as is one its command refuses later (Sources). A key given twice in the file is an error, and so is a
// second YAML document (after --- or ...), whose keys would otherwise be
// ignored.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Database locates the checksum database and its signing key. The
// subcommands that open the database share it.
type Database struct {
	DB   string `flag:"db" arg:"FILE|URL" help:"database holding the records, tiles and signed tree heads: a bbolt file, or a PostgreSQL URL (postgres://user@host/db?sslmode=verify-full; any number of sumd processes may share one, see docs/ha.md)"`
	Key  string `flag:"key" secret:"true" arg:"FILE[,FILE]" help:"private signing key file (\"PRIVATE+KEY+<name>+...\"); during a key rotation the old and the new one, comma-separated; default keys/<name>.key, a / in the name becoming _; sumd serve creates it only on the first start of the default log (sumd.local: name, key and -db all defaults, neither file there, no other signing key in keys/)"`
	Name string `flag:"name" arg:"NAME" help:"checksum database name, host[/path] as in GOSUMDB (e.g. sum.example.com, corp.example/sumdb); default: the name in the key, or sumd.local when sumd generates the key"`
}

// DiskFloor is the free space the commands that write a bbolt file keep on
// its file system: a write that would leave less is refused, storing
// nothing (tlog.LowDiskError), rather than risking a failed write whose
// outcome bbolt cannot tell and which stops the log. Like Creating, it is
// embedded only by the commands that write (serve, add, key, sync, mirror,
// mirror import, copy, restore, backup): on the others it would do nothing.
type DiskFloor struct {
	MinFreeDisk int `flag:"min-free-disk" arg:"MIB" help:"MiB kept free on the file system of a bbolt database: a write that would leave less is refused and stores nothing (over HTTP a 503; the server keeps serving, /healthz says degraded, and writes resume once there is room), instead of failing half-way, which stops the log; 0: no floor; on PostgreSQL it applies only to what is written into -tmp-dir (the module zips of first lookups, uploads and sumd add -upstream PROXY -gosum FILE, and the sorted runs of sumd add -gosum)"`
}

// DefaultMinFreeDisk is min-free-disk's default, tlog.DefaultMinFree in MiB.
const DefaultMinFreeDisk = 64

// maxMinFreeDisk bounds min-free-disk: 1 PiB in MiB.
const maxMinFreeDisk = 1 << 30

// Bytes is the floor in bytes for tlog.BoltOptions.MinFree: -1 (none) for
// 0, and for a value Validate refuses.
func (d DiskFloor) Bytes() int64 {
	if d.MinFreeDisk <= 0 || d.MinFreeDisk > maxMinFreeDisk {
		return -1
	}
	return int64(d.MinFreeDisk) << 20
}

// Validate reports a floor out of range.
func (d DiskFloor) Validate() error {
	if d.MinFreeDisk < 0 || d.MinFreeDisk > maxMinFreeDisk {
		return fmt.Errorf("invalid min-free-disk %d: want MiB such as %d, or 0 for no floor", d.MinFreeDisk, DefaultMinFreeDisk)
	}
	return nil
}

// Creating is -create, embedded after Database by the commands that may
// start a new log (serve, add, sync) and only by them: on the others
// (restore, key, tuf) it would be a flag that does nothing.
type Creating struct {
	// Create is deliberately explicit: a log must never be re-created under
	// a name clients have used, since they would reject its new history.
	Create bool `flag:"create" help:"create the database file if it does not exist (a new, empty log); without it a missing database is an error, except on the first start of sumd serve's default log (see -key)"`
}

// DefaultName is the database name used when sumd generates the key.
const DefaultName = "sumd.local"

// Log configures the logger; see NewLogger.
type Log struct {
	Level  string `flag:"log-level" arg:"LEVEL" help:"least severe messages to log: debug, info, warn or error"`
	Format string `flag:"log-format" arg:"FORMAT" help:"log line format: text (key=value) or json"`
}

// Integrity checks of the database on open, the values of Serve.Verify.
const (
	VerifyTail = "tail" // recompute the root from the stored tiles and re-hash the last records
	VerifyFull = "full" // re-hash every record and tile
)

// Serve configures `sumd serve`.
type Serve struct {
	Database
	DiskFloor
	Creating
	Log
	Listen          string        `flag:"listen" arg:"HOST:PORT" help:"address to serve HTTP on; :8080 listens on every interface"`
	TLSCert         string        `flag:"tls-cert" arg:"FILE" help:"PEM certificate chain: serve HTTPS (with -tls-key); both files are read again when they change (a renewal needs no restart; a pair that cannot be loaded keeps the previous certificate, logged); within a week of expiry the server is degraded"`
	TLSKey          string        `flag:"tls-key" secret:"true" arg:"FILE" help:"PEM private key of -tls-cert"`
	PublicURL       string        `flag:"public-url" arg:"URL" help:"URL clients reach this server at when it is not the listen address, such as behind a reverse proxy that terminates TLS (https://sumd.corp.example): the GOSUMDB line printed at start and the page's name it (X-Forwarded-* headers are not trusted); empty: the listen address, and on the page the host a request reached"`
	ShutdownTimeout time.Duration `flag:"shutdown-timeout" help:"how long requests in flight may take to finish after SIGINT or SIGTERM (SIGHUP is logged and ignored, unless sumd runs on a terminal)"`
	MaxConnections  int           `flag:"max-connections" help:"most connections each listener serves at once; past it a new client takes the place of the longest-idle keep-alive connection, or with none idle waits until one closes. Each listener needs as many file descriptors (LimitNOFILE, docs/operations.md)"`
	MaxBatch        int           `flag:"max-batch" help:"most records appended in one group commit"`
	Cache           int           `flag:"cache-size" arg:"MIB" help:"MiB of memory for the answers that never change, kept ready to serve: full tiles and the records of found versions (the signed tree head is read for every lookup), for the own log and for each mirror served (on Linux a read listener keeps up to twice as much again of full data tiles in memory files, to send them with sendfile); 0: none"`
	Verify          string        `flag:"verify" arg:"MODE" help:"integrity check when opening the database: tail (recompute the root from the stored tiles and re-hash the last records) or full (re-hash every record and tile)"`
	RefreshInterval time.Duration `flag:"refresh-interval" help:"with a postgres:// database: how often this process reads the head that other sumd processes committed, to serve their records"`
	MaxHeadAge      time.Duration `flag:"max-head-age" help:"with a postgres:// database: how long this process serves a head it could not confirm against the database; past it, requests get 503 until the database is back"`
	Upstream
	TmpDir         string `flag:"tmp-dir" arg:"DIR" help:"directory of sumd's own for the module zips over 1 MiB it downloads from upstream or receives through the admin API, and those it reads from registries, while it hashes them, and for backups being sent; created 0700, and the files a crash left there are removed at start; default: the database file's name plus .tmp (data/sumd.db.tmp); with PostgreSQL or -mirror-only, a new directory under $TMPDIR, removed at exit"`
	AdminTokenFile string `flag:"admin-token-file" secret:"true" arg:"FILE" help:"file holding the bearer token (16 bytes or more) of the /admin/ API, readable by its owner only (chmod 600); read again when it changes, so a token can be rotated without a restart; a credential named admin-token with the admin role"`
	Access
	TUFServe
	ServeSync
	ServeMirrors
}

// Upstream configures recording on first lookup: a lookup of a version the
// log does not hold is fetched from the company's module proxy, checked,
// hashed and recorded, as sum.golang.org does with proxy.golang.org.
type Upstream struct {
	Upstream        string        `flag:"upstream" arg:"LIST" help:"GOPROXY-style list of module proxies (https://, http://, file://) to fetch unknown versions from; \",\" falls through on 404/410, \"|\" on any error; empty: never fetch"`
	UpstreamAuth    string        `flag:"upstream-auth" secret:"true" arg:"AUTH" help:"upstream credentials: none, basic:USER:PASSWORD_FILE, bearer:TOKEN_FILE or netrc[:FILE]; or HOST=AUTH,HOST=AUTH for one per proxy"`
	UpstreamTimeout time.Duration `flag:"upstream-timeout" help:"time limit of one upstream request, body included; past it a lookup gets 504 (a first lookup's fetch and cross-check get three of them and 30s in all)"`
	// UpstreamParallel bounds what anonymous clients can make sumd do: any
	// lookup of an unknown version starts a download of up to 500 MiB.
	UpstreamParallel int `flag:"upstream-parallel" help:"most versions fetched from upstream at once for first lookups; a lookup that would start one more gets 503 with Retry-After. The go command looks up as many versions at once as its machine has CPUs; each fetch may keep a zip of up to 500 MiB in -tmp-dir. Admin API fetches are not counted"`
	// UpstreamPerClient keeps one client from taking every slot of
	// UpstreamParallel. Clients are the connections' peers: sumd trusts
	// no X-Forwarded-For, so behind a reverse proxy every client is the
	// proxy, and this should be 0 there (or the proxy should limit).
	UpstreamPerClient int           `flag:"upstream-per-client" help:"most first lookups one client (an IPv4 address, an IPv6 /64) may have waiting for upstream at once; one more gets 503 with Retry-After. Admins are not limited. Off by default: the go command looks up as many versions at once as its machine has CPUs, so a limit below the builders' CPUs fails some first lookups of their cold builds. The client is the connection's peer (X-Forwarded-For is not trusted): behind a reverse proxy all clients are one, so set 0 there; 0: no per-client limit"`
	Record            string        `flag:"record" arg:"PATTERNS" help:"module path patterns (GOPRIVATE syntax) fetched on a miss; empty: all; other paths get 404. Keep golang.org/toolchain in: the go command looks toolchains up even under GONOSUMDB"`
	NegativeTTL       time.Duration `flag:"negative-ttl" help:"how long a version is remembered as not to record: one the upstream does not have (410), an invalid module, or one the cross-check contradicts; 0: not at all"`
	CrosscheckOptions
}

// CrosscheckOptions configure the cross-check of public modules with an
// upstream checksum database before they are recorded: sumd serve's (from
// upstream, the admin API and OCI sync) and sumd sync's. The two share the
// options, so that one configuration file gives both the same policy.
type CrosscheckOptions struct {
	Private         string `flag:"private" arg:"PATTERNS" help:"module path patterns (GOPRIVATE syntax) of modules that exist only inside the company: never cross-checked"`
	Crosscheck      bool   `flag:"crosscheck" help:"check the hashes of public modules (outside -private) with an upstream checksum database before recording them; refuse on a mismatch"`
	CrosscheckKey   string `flag:"crosscheck-key" arg:"VKEY" help:"verifier key of the upstream checksum database; empty: sum.golang.org's"`
	CrosscheckURL   string `flag:"crosscheck-url" arg:"URL" help:"URL of the upstream checksum database; empty: through the upstream proxies' /sumdb/<name>/"`
	CrosscheckOpen  bool   `flag:"crosscheck-fail-open" help:"record without the cross-check while the upstream checksum database is unreachable (no answer, a 5xx, 408 or 429); an answer it should not give (a tree head no log has, an oversized answer, a full tile missing, 401/403), no proxy supporting it, or a refused redirect still refuses (default: refuse always; a lookup gets 502)"`
	CrosscheckState string `flag:"crosscheck-state" arg:"FILE" help:"file keeping the upstream checksum database's latest verified tree head across restarts; default: crosscheck-latest beside a bbolt database, data/crosscheck-latest in the working directory with PostgreSQL; its directory is created at start if missing"`
}

// validate refuses a crosscheck-key that is no verifier key here, with the
// other options' errors, so that the error names the variable or config
// file that set it (withSources); a private key is not quoted. A key kept
// unused (crosscheck: false, see checkNeeds) is not checked, as it was not
// before: nothing reads it, and a configuration holding it must start.
func (o *CrosscheckOptions) validate() error {
	const want = "want the upstream checksum database's verifier key (\"name+hash+base64\", as in GOSUMDB), or none for sum.golang.org's"
	switch {
	case o.CrosscheckKey == "" || !o.Crosscheck:
		return nil
	case IsPrivateKey(o.CrosscheckKey):
		return errors.New("invalid crosscheck-key: it is a private signing key, not a verifier key; " + want)
	}
	if err := CheckVerifierKeys([]string{o.CrosscheckKey}); err != nil {
		return fmt.Errorf("invalid crosscheck-key %q: %v; %s", o.CrosscheckKey, err, want)
	}
	return nil
}

// Add configures `sumd add`, which writes to the database file directly and
// so must run while no server holds it.
type Add struct {
	Database
	DiskFloor
	Creating
	Log
	Gosum    string `flag:"gosum" arg:"FILE|DIR" help:"go.sum file, or directory walked for go.sum files, whose module versions to add, instead of MODULE@VERSION DIR|ZIP; more files and directories may follow the flags. Any size and order: the lines are sorted through -tmp-dir, every version is checked against the log before any is added, and the records are committed in chunks of 16,384 (65,536 once the log holds 1M records), so a run cut short adds the rest when run again"`
	ProxyDir string `flag:"proxy-dir" arg:"DIR" help:"with MODULE@VERSION DIR|ZIP: once the version is recorded, also publish it in the GOPROXY file tree DIR (.info, .mod, .zip and list), which the go command reads with GOPROXY=file:///abs/DIR and any web server can serve"`
	Strict   bool   `flag:"strict" help:"with -gosum: add nothing if any version has only one of its two go.sum lines (with -upstream: one it could not complete), instead of adding the complete ones and listing the others"`
	TmpDir   string `flag:"tmp-dir" arg:"DIR" help:"with -gosum: directory for the go.sum lines being sorted (about 80 bytes a line; created 0700, and what a crash left there is removed); default: the database file's name plus .tmp, or with -server or a PostgreSQL database a new directory under $TMPDIR, removed at the end"`
	AddUpstream
	Server    string `flag:"server" arg:"URL" help:"add through the /admin/ API of the sumd serving URL instead of opening the database file; with only MODULE@VERSION, sumd fetches it from its upstream; with -gosum, the records go in by POST /admin/add, 16,384 a request"`
	TokenFile string `flag:"token-file" secret:"true" arg:"FILE" help:"file holding the admin API bearer token, with -server; without it, -auth names an admin's credentials"`
	InsecureHTTP
	ClientAuth
	ClientCert
}

// InsecureHTTP is the opt-in of the admin API's clients (add and backup
// -server) to send the admin token or -auth's credentials in clear.
type InsecureHTTP struct {
	InsecureHTTP bool `flag:"insecure-http" help:"send the admin token (-token-file) or -auth's credentials over plain http:// to a -server not on this machine, which is refused otherwise: only on a network you trust, where no one can read the traffic"`
}

// DefaultDB is the database file used unless configured otherwise.
const DefaultDB = "data/sumd.db"

// IsEmbeddedDefault reports whether d is the embedded default log: the
// default name, key file and database file, none of them configured to
// anything else. Only that log is created on a first start without -create.
func (d *Database) IsEmbeddedDefault() bool {
	return d.Name == DefaultName && d.Key == DefaultKeyFile(DefaultName) && d.DB == DefaultDB
}

// AddUpstream configures where sumd add -gosum completes the versions that
// have only one go.sum line. The options are those of sumd serve, and mean
// the same: the same fetching, validation and hashing.
type AddUpstream struct {
	Upstream     string `flag:"upstream" arg:"LIST" help:"with -gosum: GOPROXY-style list of module proxies to fetch the versions with only one go.sum line from (validated and hashed as sumd serve -upstream does, and checked against that line); empty: list them instead"`
	UpstreamAuth string `flag:"upstream-auth" secret:"true" arg:"AUTH" help:"upstream credentials, as for sumd serve: none, basic:USER:PASSWORD_FILE, bearer:TOKEN_FILE or netrc[:FILE]; or HOST=AUTH,HOST=AUTH"`
}

func defaultDatabase() Database { return Database{DB: DefaultDB} }

func defaultDiskFloor() DiskFloor { return DiskFloor{MinFreeDisk: DefaultMinFreeDisk} }
func defaultLog() Log             { return Log{Level: "info", Format: "text"} }

func defaultServe() Serve {
	return Serve{
		Database:        defaultDatabase(),
		DiskFloor:       defaultDiskFloor(),
		Log:             defaultLog(),
		Listen:          "127.0.0.1:8080",
		ShutdownTimeout: 10 * time.Second,
		MaxConnections:  10000, // serve.DefaultMaxConnections
		MaxBatch:        1024,
		Cache:           64, // server.DefaultCacheBytes
		Verify:          VerifyTail,
		RefreshInterval: time.Second,
		MaxHeadAge:      5 * time.Second,
		Upstream: Upstream{
			UpstreamTimeout:   time.Minute,
			UpstreamParallel:  16, // upstream.DefaultMaxFetches
			UpstreamPerClient: 0,  // upstream.DefaultMaxClientFetches: off
			NegativeTTL:       time.Minute,
		},
		Access:       defaultAccess(),
		ServeSync:    defaultServeSync(),
		ServeMirrors: ServeMirrors{MirrorInterval: time.Minute},
	}
}

func defaultAdd() Add {
	return Add{Database: defaultDatabase(), DiskFloor: defaultDiskFloor(), Log: defaultLog()}
}

// DefaultKeyFile is where the signing key of the database called name lives
// unless configured otherwise. A "/" in the name would make a subdirectory,
// so it becomes "_".
func DefaultKeyFile(name string) string {
	return filepath.Join("keys", strings.ReplaceAll(name, "/", "_")+".key")
}

// Validate reports every problem of d, one per line.
func (d *Database) Validate() error {
	var errs []error
	if d.DB == "" {
		errs = append(errs, errors.New("db is empty: set -db or SUMD_DB to the database file or postgres:// URL"))
	}
	if d.Key == "" {
		errs = append(errs, errors.New("key is empty: set -key or SUMD_KEY to the signing key file"))
	}
	if d.Name != "" {
		errs = append(errs, CheckName(d.Name))
	}
	return errors.Join(errs...)
}

// Validate reports every problem of l, one per line.
func (l *Log) Validate() error {
	var errs []error
	if _, ok := parseLevel(l.Level); !ok {
		errs = append(errs, fmt.Errorf("invalid log-level %q: want debug, info, warn or error", l.Level))
	}
	if !strings.EqualFold(l.Format, "text") && !strings.EqualFold(l.Format, "json") {
		errs = append(errs, fmt.Errorf("invalid log-format %q: want text or json", l.Format))
	}
	return errors.Join(errs...)
}

// maxCacheMiB bounds cache-size: 1 TiB, far above any machine's memory,
// and far below where MiB in bytes overflows (2^43 MiB became "no cache").
const maxCacheMiB = 1 << 20

// AdminAPI reports whether the server serves /admin/: when some credential
// could have the admin role (the admin token, or a credential file).
func (c *Serve) AdminAPI() bool {
	return c.AdminTokenFile != "" || c.ReadAuth != ReadAuthNone || c.TLSClientRoles != ""
}

// Validate reports every problem of c, one per line.
func (c *Serve) Validate() error {
	errs := []error{c.Log.Validate(), checkListen(c.Listen), c.Access.validate(c.Listen, c.TLSCert),
		c.TUFServe.Validate(), c.ServeSync.Validate(), c.ServeMirrors.Validate(), c.CrosscheckOptions.validate()}
	if !c.MirrorOnly { // a mirror-only server has no log of its own
		errs = append(errs, c.Database.Validate())
	}
	errs = append(errs, c.DiskFloor.Validate()) // its own file's and its mirrors'
	if c.PublicURL != "" {
		if err := checkURL(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("public-url: %w", err))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls-cert and tls-key go together: set both to serve HTTPS, or neither"))
	}
	if c.AdminListen != "" && !c.AdminAPI() {
		errs = append(errs, errors.New("admin-listen is set, but the server has no admin API: set -admin-token-file (or credentials with the admin role), or drop -admin-listen"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("invalid shutdown-timeout %v: want a positive duration such as 10s", c.ShutdownTimeout))
	}
	if c.MaxConnections <= 0 {
		errs = append(errs, fmt.Errorf("invalid max-connections %d: want a positive number of connections such as 10000", c.MaxConnections))
	}
	if c.MaxBatch <= 0 {
		errs = append(errs, fmt.Errorf("invalid max-batch %d: want a positive number of records such as 1024", c.MaxBatch))
	}
	if c.Cache < 0 || c.Cache > maxCacheMiB {
		errs = append(errs, fmt.Errorf("invalid cache-size %d: want MiB of memory such as 64 (at most %d), or 0 for none", c.Cache, maxCacheMiB))
	}
	if c.UpstreamTimeout <= 0 {
		errs = append(errs, fmt.Errorf("invalid upstream-timeout %v: want a positive duration such as 1m", c.UpstreamTimeout))
	}
	if c.NegativeTTL < 0 {
		errs = append(errs, fmt.Errorf("invalid negative-ttl %v: want a duration such as 1m, or 0 to remember nothing", c.NegativeTTL))
	}
	if c.UpstreamParallel <= 0 {
		errs = append(errs, fmt.Errorf("invalid upstream-parallel %d: want a positive number of fetches such as 16", c.UpstreamParallel))
	}
	if c.UpstreamPerClient < 0 {
		errs = append(errs, fmt.Errorf("invalid upstream-per-client %d: want a number of lookups such as 4, or 0 for no per-client limit", c.UpstreamPerClient))
	}
	if c.Verify != VerifyTail && c.Verify != VerifyFull {
		errs = append(errs, fmt.Errorf("invalid verify mode %q: want %s or %s", c.Verify, VerifyTail, VerifyFull))
	}
	if c.RefreshInterval <= 0 {
		errs = append(errs, fmt.Errorf("invalid refresh-interval %v: want a positive duration such as 1s", c.RefreshInterval))
	}
	if c.MaxHeadAge < 2*c.RefreshInterval {
		errs = append(errs, fmt.Errorf("invalid max-head-age %v: want at least twice refresh-interval (%v), such as 5s", c.MaxHeadAge, c.RefreshInterval))
	}
	return errors.Join(errs...)
}

// Validate reports every problem of c, one per line.
func (c *Add) Validate() error {
	return errors.Join(c.Database.Validate(), c.DiskFloor.Validate(), c.Log.Validate(), c.ClientCert.Validate())
}

func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid listen address %q: %v; want host:port such as 127.0.0.1:8080 or :8080", addr, err)
	}
	// net.Listen would also look up service names such as "http"; a number
	// is clearer in a configuration.
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid listen address %q: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}

// CheckName reports whether name can name a checksum database. The rules are
// the go command's ("https://"+name must parse as a URL with only a host and
// a path, cmd/go/internal/modfetch/sumdb.go) plus those of signed notes, whose
// signer names cannot hold "+" or spaces (golang.org/x/mod/sumdb/note).
func CheckName(name string) error {
	if reason := nameProblem(name); reason != "" {
		return fmt.Errorf("invalid name %q: %s; want host[/path] as in GOSUMDB, e.g. sum.example.com", name, reason)
	}
	return nil
}

func nameProblem(name string) string {
	switch {
	case name == "":
		return "it is empty"
	case strings.Contains(name, "://"):
		return "it must not start with a scheme such as https://"
	case strings.ContainsFunc(name, func(r rune) bool { return r == '+' || unicode.IsSpace(r) }):
		return "it must not contain + or spaces"
	case strings.HasSuffix(name, "/"):
		return "it must not end in /"
	}
	u, err := url.Parse("https://" + name)
	switch {
	case err != nil:
		return "it is not a valid URL host and path"
	case u.User != nil:
		return "it must not contain user information (user@)"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(name, "?#"):
		return "it must not contain ? or #"
	case u.Host == "":
		return "it has no host"
	case u.RawPath != "" || *u != (url.URL{Scheme: "https", Host: u.Host, Path: u.Path}):
		return "it must be a plain host and path, without escapes"
	}
	return ""
}

// durationString replaces a duration attribute by its string form.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, false
}

// NewLogger returns a logger writing to w as l says. l should have passed
// Validate; an unknown level means info and an unknown format text.
// Durations are written as Go durations ("1.5s") in both formats: JSON
// would otherwise print nanoseconds, a number nobody reads right.
func NewLogger(l Log, w io.Writer) *slog.Logger {
	level, _ := parseLevel(l.Level)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationString}
	if strings.EqualFold(l.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
