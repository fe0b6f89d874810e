package tuf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/fetcher"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/sumd-project/sumd/internal/redirect"
)

// ClientOptions configure Fetch.
type ClientOptions struct {
	// Root is the trusted root metadata, pinned out of band: any version
	// of the repository's N.root.json (1.root.json is always right).
	Root []byte
	// URL is the repository's base URL: metadata below URL/metadata/,
	// targets below URL/targets/. sumd serves it at <server>/tuf.
	URL string
	// CacheDir keeps what was verified between runs: the newest root,
	// which is the trust anchor from then on (TUF §5.2), and the timestamp
	// and snapshot, against which a rollback is detected. Each pinned root
	// and URL has a subdirectory of its own (pinDir), so one directory can
	// serve several repositories, and a client given a new pin starts from
	// it. Empty: a temporary directory, removed afterwards. A run holds
	// CacheDir/.lock from reading the cache to writing it back; a second
	// run on the same directory meanwhile waits for it, up to a minute,
	// then fails with ErrCacheInUse.
	CacheDir string
	// HTTPClient makes the requests; nil means one with a 30 s timeout.
	HTTPClient *http.Client
	// UserAgent is sent with every request, if set.
	UserAgent string
	// Now is the clock expiry is checked against; nil means time.Now.
	// Tests move it.
	Now func() time.Time
	// Logger gets warnings (a cached root that was ignored); nil means
	// slog.Default().
	Logger *slog.Logger
}

// Errors of Fetch a caller can branch on; each wraps go-tuf's own.
var (
	// ErrExpired means the newest metadata has expired: the server stopped
	// re-signing it (or was made to stop), or this machine's clock is off.
	ErrExpired = errors.New("the repository's TUF metadata has expired")
	// ErrRollback means the server sent metadata older than metadata this
	// client verified before, or a snapshot that no longer lists metadata
	// the one verified before listed.
	ErrRollback = errors.New("SECURITY ERROR: the repository's TUF metadata was rolled back")
	// ErrUntrusted means metadata or a target failed verification.
	ErrUntrusted = errors.New("SECURITY ERROR: the repository's TUF metadata does not verify")
	// ErrRefused means the server refused the client's credentials (401 or
	// 403): it serves the repository to authenticated clients only.
	ErrRefused = errors.New("the server refused to serve the TUF metadata without (other) credentials")
	// ErrNotTUF means the server answered with something that is not
	// what the repository serves at that path at all (metadata that is
	// not a JSON object, a target that is not text): the page of a proxy,
	// a captive portal or a login. Nothing in it claims to be the
	// repository's, so it is a failure to download, not ErrUntrusted.
	ErrNotTUF = errors.New("the server answered with a page that is not the TUF repository's file")
	// ErrCacheInUse means another run holds the cache (CacheDir): a run
	// reads it, verifies, and writes it back, and an older run writing
	// over a newer one's metadata would lose it. Unix only (flock).
	ErrCacheInUse = errors.New("another sumd run holds the TUF cache")
)

// Fetch runs the TUF client workflow with go-tuf's updater — root
// rotations N+1, N+2…, timestamp, snapshot, targets, each verified — and
// returns the database the repository publishes: its only
// sumdb/NAME.vkey target and the matching sumdb/NAME.json.
func Fetch(opts ClientOptions) (*Database, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	// go-tuf writes its cache without syncing anything: it works in a
	// directory of its own, and what it verified is copied into the cache
	// durably afterwards (keepCache).
	work, err := os.MkdirTemp("", "sumd-tuf-")
	if err != nil {
		return nil, fmt.Errorf("failed to create TUF work directory: %w", err)
	}
	defer os.RemoveAll(work)
	cache := "" // the cache's metadata directory, if any
	if opts.CacheDir != "" {
		unlock, err := lockCache(opts.CacheDir, log)
		if err != nil {
			return nil, err
		}
		defer unlock()
		cache = filepath.Join(opts.CacheDir, pinDir(opts.Root, opts.URL), metadataDir)
	}
	if err := seedCache(cache, filepath.Join(work, metadataDir), log); err != nil {
		return nil, err
	}
	d, err := fetch(opts, cache, work, log)
	// Even after a failure: go-tuf keeps only what it verified, such as
	// the newer roots it walked to before the timestamp failed.
	if kerr := keepCache(filepath.Join(work, metadataDir), cache); kerr != nil {
		return nil, errors.Join(err, kerr)
	}
	return d, err
}

func fetch(opts ClientOptions, cache, work string, log *slog.Logger) (*Database, error) {
	up, err := newUpdater(opts, cache, work, log)
	if err != nil {
		return nil, err
	}
	if err := up.Refresh(); err != nil {
		return nil, classify(fmt.Errorf("failed to update TUF metadata from %s: %w", opts.URL, err))
	}
	name, err := databaseName(slices.Collect(maps.Keys(up.GetTopLevelTargets())))
	if err != nil {
		return nil, err
	}
	return downloadDatabase(up, name)
}

// newUpdater returns go-tuf's client, trusting the newer of the pin and
// the root in cache, and working in work.
func newUpdater(opts ClientOptions, cache, work string, log *slog.Logger) (*updater.Updater, error) {
	root, err := trustedRoot(opts.Root, cache, log)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(opts.URL, "/")
	cfg, err := config.New(base+"/"+metadataDir, root)
	if err != nil {
		return nil, fmt.Errorf("invalid TUF repository URL: %w", err)
	}
	cfg.RemoteTargetsURL = base + "/" + targetsDir
	cfg.LocalMetadataDir = filepath.Join(work, metadataDir)
	cfg.LocalTargetsDir = filepath.Join(work, targetsDir)
	cfg.SnapshotMaxLength, cfg.TargetsMaxLength = maxMetadata, maxMetadata
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	client = redirect.Client(client)
	f := fetcher.NewDefaultFetcher()
	f.SetHTTPClient(client)
	f.SetHTTPUserAgent(opts.UserAgent)
	cfg.Fetcher = checkedFetcher{f, base + "/" + metadataDir + "/"}
	up, err := updater.New(cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("failed to load the trusted TUF root: %w", err))
	}
	if opts.Now != nil {
		up.UnsafeSetRefTime(opts.Now())
	}
	return up, nil
}

// checkedFetcher fails, as a failure to download (ErrNotTUF), a body that
// is not what the repository serves at its URL at all: metadata that is
// not a JSON object, a target that is not text. go-tuf would check a
// snapshot's, a targets version's or a target's length and hashes first,
// and report metadata that does not verify, a security finding, for the
// page of a proxy that answers some paths only; nothing in it claims to
// be the repository's. The body is named by its type and length, not
// quoted: a redirect may have led to a host only the client reaches.
type checkedFetcher struct {
	fetcher.Fetcher
	metadataURL string // URLs below it are metadata
}

func (f checkedFetcher) DownloadFile(url string, maxLength int64, timeout time.Duration) ([]byte, error) {
	data, err := f.Fetcher.DownloadFile(url, maxLength, timeout)
	if err != nil {
		return data, err
	}
	ctype := http.DetectContentType(data)
	if strings.HasPrefix(url, f.metadataURL) {
		if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
			return nil, fmt.Errorf("%w: %s is %d bytes of %s, not JSON metadata: a proxy's or a login page?", ErrNotTUF, url, len(data), ctype)
		}
	} else if !strings.HasPrefix(ctype, "text/plain") {
		return nil, fmt.Errorf("%w: %s is %d bytes of %s, not a text target: a proxy's or a login page?", ErrNotTUF, url, len(data), ctype)
	}
	return data, nil
}

// pinDir names the cache of one pinned root at one URL. A cached root
// newer than the pin is trusted over it (trustedRoot), which is right only
// for a root this pin's chain led to: were the cache shared, a re-pinned
// client (a new repository after its root keys were lost, or walked to an
// attacker's root) would go on trusting the old chain, and a second
// repository would be checked against the first one's keys.
func pinDir(root []byte, url string) string {
	h := sha256.New()
	h.Write(root)
	h.Write([]byte{0})
	h.Write([]byte(strings.TrimSuffix(url, "/")))
	return "pin-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// trustedRoot returns the newer of the pinned root and the root a
// previous run verified and cached in dir. Starting from the cached one is
// the TUF client workflow (§5.2); starting from the pin every time would
// let anyone holding old, rotated-out root keys replay an old chain.
//
// The cached root.json must be a regular file: like every reader of the
// package, trustedRoot follows no symbolic link (O_NOFOLLOW), even one
// that stays inside the cache. A linked (or unreadable) cached root is
// ignored with a warning and the client starts from its pin again,
// walking the chain forward: it loses the protection against an old chain
// replayed that the cached root gave, hence the warning. So is a cached
// root that is not root metadata: sumd before keepCache let go-tuf write
// it without syncing it, so a crash may have left it empty.
func trustedRoot(pinned []byte, dir string, log *slog.Logger) ([]byte, error) {
	pin, err := metadata.Root().FromBytes(pinned)
	if err != nil {
		return nil, fmt.Errorf("the pinned root is not TUF root metadata: %w", err)
	}
	if dir == "" {
		return pinned, nil // no cache
	}
	path := filepath.Join(dir, metadata.ROOT+".json")
	data, err := readCapped(path, maxMetadata)
	if errors.Is(err, fs.ErrNotExist) {
		return pinned, nil // no cache yet
	}
	if err != nil {
		log.Warn("ignoring the cached TUF root, starting from the pinned one (a symbolic link is never followed: make it a regular file)",
			"path", path, "err", err)
		return pinned, nil
	}
	cached, err := metadata.Root().FromBytes(data)
	if err != nil {
		log.Warn("ignoring the cached TUF root, which is not root metadata (a crash while an older sumd wrote it, which did not sync it?), starting from the pinned one; "+
			"remove it to be rid of this warning", "path", path, "err", err)
		return pinned, nil
	}
	if cached.Signed.Version <= pin.Signed.Version {
		return pinned, nil
	}
	return data, nil
}

// downloadDatabase downloads and checks the two targets of database name
// (a file name: "/" is "_").
func downloadDatabase(up *updater.Updater, name string) (*Database, error) {
	var files [2][]byte
	for i, path := range []string{"sumdb/" + name + ".vkey", "sumdb/" + name + ".json"} {
		info, err := up.GetTargetInfo(path)
		if err != nil {
			return nil, classify(fmt.Errorf("failed to find TUF target %s: %w", path, err))
		}
		if _, files[i], err = up.DownloadTarget(info, "", ""); err != nil {
			return nil, classify(fmt.Errorf("failed to download TUF target %s: %w", path, err))
		}
	}
	d, err := ParseDatabase(files[0], files[1])
	if err != nil {
		return nil, err
	}
	if fileName(d.Name) != name {
		return nil, fmt.Errorf("target sumdb/%s.json describes database %q", name, d.Name)
	}
	return d, nil
}

// classify adds Fetch's error kinds to go-tuf's errors.
func classify(err error) error {
	var down *metadata.ErrDownloadHTTP
	switch {
	case errors.As(err, &down) && (down.StatusCode == http.StatusUnauthorized || down.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%w: %w", ErrRefused, err)
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		return fmt.Errorf("%w: %w", ErrExpired, err)
	case errors.Is(err, &metadata.ErrBadVersionNumber{}), droppedMeta(err):
		return fmt.Errorf("%w: %w", ErrRollback, err)
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}), errors.Is(err, &metadata.ErrLengthOrHashMismatch{}):
		return fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return err
}

// droppedMeta reports whether err is go-tuf's refusal of a snapshot,
// signed by the snapshot key, that no longer lists metadata the snapshot
// verified before listed: the rollback check of TUF's client workflow
// (§5.5.5). go-tuf reports it as a plain repository error, which it
// uses for malformed metadata too, so it is told apart by its message.
func droppedMeta(err error) bool {
	var re *metadata.ErrRepository
	return errors.As(err, &re) && strings.HasPrefix(re.Msg, "new snapshot is missing info for ")
}
