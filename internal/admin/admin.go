// Package admin is sumd's operator API: an http.Handler for /admin/ that
// adds module versions to the log on request, and the Go client that
// "sumd add -server" uses.
//
//	POST /admin/fetch   module, version (form or JSON)
//	    fetch the version from the upstream proxy and record it
//	POST /admin/upload  multipart: module, version, zip (file), mod (optional file)
//	    hash an uploaded module zip as the go command would and record it
//	POST /admin/add[?check=1]  go.sum lines (both lines of each version), the body itself (not a form)
//	    record hashes computed elsewhere (CI systems, other sumds), all or
//	    nothing; with check=1, record nothing and list the conflicts
//	GET /admin/backup
//	    a consistent copy of the database, taken while the server runs
//
// Fetch and upload answer 200 with JSON {"id", "record", "tree_size"[,
// "present"]} (see Result), add
// with {"records", "new", "tree_size"[, "conflicts"]} (see AddResult); or a
// text/plain error: 400 bad input, 401 bad token (the access layer's), 403 sent by another
// site's page in a browser, 404 admin disabled, 409
// the version is recorded with other hashes (both shown; for add, every
// such version, by line), 410 not found upstream or invalid there (fetch)
// or refused by the upstream cross-check (any of the three: the public
// checksum database lacks the version or has other hashes; the text
// begins "not found: M@V:" as upstream.Error's does), 413 too large,
// 422 invalid module zip (upload), 502/504
// upstream failure, 503 the log is busy, or (add) other adds hold the
// memory adds may take (Retry-After), 507 (upload) no room above
// -min-free-disk in TempDir for the zip. backup answers 200
// with the copy, a bbolt database file, or 501 when the database cannot
// copy itself (the reason names its own backup tools), 503 while another
// backup is made, 507 when TempDir has no room for the copy.
//
// An add is one atomic append: a request with one bad line (malformed, a
// version with one line only, two hashes for one line) or one version the
// log holds with other hashes adds nothing, and its answer names every such
// line. Clients split large inputs into requests of at most
// tlog.MaxAddRecords versions; each request is atomic, so a client that
// stops half way runs again, and what is already recorded is "present".
//
// A request (a POST, or a GET of /admin/backup) that a browser marks as
// sent by a page of another site (Sec-Fetch-Site, Origin) is refused with
// 403 before anything else: browsers attach cached credentials to
// cross-site form submissions and image loads.
//
// The handler authenticates no one itself: sumd serve puts its access
// layer (internal/access) in front, which checks the admin token, read
// again when its file changes, answers 401 for a wrong one and 404 while
// there is no usable token, and lets only the admin through. A Handler
// built without Options.Authenticated answers every path with 404.
//
// It is a package of its own, not part of internal/upstream, because it is
// a second HTTP surface with its own credential (the admin token) and body limits, and
// its client must be importable by the CLI without the server side.
package admin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/sync/semaphore"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/secret"
	"github.com/sumd-project/sumd/internal/tlog"
)

// MinTokenLength is the shortest token the API accepts: guessable tokens
// disable it instead.
const MinTokenLength = 16

// maxTokenFile caps the token file.
const maxTokenFile = 4 << 10

// Recorder is what the API needs from the log. *upstream.Recorder
// implements it. Methods are called concurrently.
type Recorder interface {
	// Record fetches m from upstream, checks and records it, and returns
	// its id and record. A version recorded with other hashes is a
	// *tlog.ConflictError; other errors may carry an HTTPStatus.
	Record(ctx context.Context, m module.Version) (int64, gosum.Record, error)
	// Add checks and records rec, with errors as Record's.
	Add(ctx context.Context, rec gosum.Record) (int64, error)
	// AddRecords checks and records recs, all or nothing, and returns
	// their ids and which of them this call appended (tlog.Log.AddNew),
	// with errors as Record's (the first conflict only). recs are
	// well-formed (gosum.Record.Check): the handler refuses any other line
	// by line, before it calls AddRecords or CheckRecords.
	AddRecords(ctx context.Context, recs []gosum.Record) (ids []int64, added []bool, err error)
	// CheckRecords reports what AddRecords would do, recording nothing:
	// the ids of the versions recorded (-1: not recorded), and for each
	// version recorded with other hashes its conflict (conflicts is nil
	// if there are none; otherwise it has an entry per record, nil for
	// those that do not conflict).
	CheckRecords(ctx context.Context, recs []gosum.Record) (ids []int64, conflicts []*tlog.ConflictError, err error)
	// Signed returns the latest signed tree head. After Record or Add
	// returns an id, the head covers it.
	Signed(ctx context.Context) ([]byte, error)
}

// Options configure a Handler.
type Options struct {
	// Authenticated says that a layer in front has authenticated every
	// request and let only the admin role through (internal/access, in
	// sumd serve): the handler checks no credentials. Without it the API
	// is off: every path answers NotEnabled's 404.
	Authenticated bool
	// MaxZipSize and MaxModSize cap uploaded files (default the go
	// command's limits, modhash.MaxZipFile and modhash.MaxGoMod).
	MaxZipSize, MaxModSize int64
	// TempDir holds uploaded zips while they are hashed ("" means
	// os.TempDir()); see package scratch.
	TempDir string
	// MinFree is the space a backup's copy into TempDir leaves free on its
	// file system (-min-free-disk): 0 means tlog.DefaultMinFree, negative
	// none.
	MinFree int64
	// UploadTimeout is how long an authenticated upload may take to arrive
	// and be answered (default DefaultUploadTimeout). It overrides the
	// server's read and write timeouts, which are sized for lookups, for
	// that one request: a 500 MiB zip over a slow link needs longer.
	UploadTimeout time.Duration
	// Logger receives a record per request; nil means slog.Default().
	Logger *slog.Logger
	// Snapshot, if set, starts a consistent copy of the database for GET
	// /admin/backup (tlog.Log.Snapshot); nil: the route answers 501.
	Snapshot func(ctx context.Context) (tlog.Snapshot, error)
	// BackupTimeout is how long a backup download may take (default
	// DefaultBackupTimeout).
	BackupTimeout time.Duration
}

// A Handler serves /admin/. It is safe for concurrent use.
type Handler struct {
	rec  Recorder
	opts Options
	log  *slog.Logger

	backups    chan struct{}       // holds a token while a backup is being made
	bodyMemory *semaphore.Weighted // of maxBodyMemory bytes: adds' bodies and uploads' large go.mod files
	// memoryZip is the size up to which an uploaded zip is hashed in
	// memory (the constant memoryZip; smaller in the fuzz test, to reach
	// both paths).
	memoryZip int64
}

var _ http.Handler = (*Handler)(nil)

// NotEnabled answers every admin request while the API is off, whether
// configured off (a server routes /admin/ to it) or its token file
// unusable: one 404 text, so that clients learn nothing about which.
var NotEnabled http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store") // as every error: a cache must not keep it past the API's enabling
	w.WriteHeader(http.StatusNotFound)
	io.WriteString(w, "the admin API is not enabled on this server (an operator enables it: docs/operations.md#the-admin-api)\n")
})

// DefaultUploadTimeout bounds one upload: 500 MiB at about 300 KiB/s.
const DefaultUploadTimeout = 30 * time.Minute

// New returns the handler. rec may be nil on a server that records
// nothing (mirrors only): fetch and upload then answer 404.
func New(rec Recorder, opts Options) *Handler {
	if opts.MaxZipSize <= 0 {
		opts.MaxZipSize = modhash.MaxZipFile
	}
	if opts.MaxModSize <= 0 {
		opts.MaxModSize = modhash.MaxGoMod
	}
	if opts.UploadTimeout <= 0 {
		opts.UploadTimeout = DefaultUploadTimeout
	}
	if opts.BackupTimeout <= 0 {
		opts.BackupTimeout = DefaultBackupTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{rec: rec, opts: opts, log: opts.Logger, backups: make(chan struct{}, 1), bodyMemory: semaphore.NewWeighted(maxBodyMemory), memoryZip: memoryZip}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin.Check(asPost(r)); err != nil {
		h.fail(w, r, &httpError{http.StatusForbidden, crossOriginText})
		return
	}
	if !h.opts.Authenticated {
		NotEnabled.ServeHTTP(w, r)
		return
	}
	h.route(w, r)
}

// sameOrigin refuses a state-changing request that a browser says another
// site sent (Sec-Fetch-Site, else an Origin other than the Host): a page
// on any site could otherwise submit a form to /admin/add, and the browser
// would attach the Basic credentials (or client certificate) of an operator
// who had opened the status page, recording hashes for ever. Plain forms
// (text/plain, urlencoded, multipart) need no CORS preflight, so the
// browser's own rules do not stop them. sumd's client and tools such as
// curl send neither header and pass. GET and HEAD are checked as well
// (see asPost): a backup fetched cross-site goes to the operator, not to
// the site, but a page could fire many, and each copies the whole database.
var sameOrigin = http.NewCrossOriginProtection()

// asPost returns r, or a shallow copy of it as a POST if it is a GET or HEAD,
// which CrossOriginProtection lets through unchecked.
func asPost(r *http.Request) *http.Request {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return r
	}
	r = r.WithContext(r.Context())
	r.Method = http.MethodPost
	return r
}

// MirrorsOnlyText is the answer of a recording endpoint on a server that
// records nothing (New's rec is nil), a 404; clients tell it from an API
// that is off by it.
const MirrorsOnlyText = "this server records nothing (it serves mirrors only): only /admin/backup is here"

const crossOriginText = "cross-origin request refused: the admin API takes requests from sumd's own client " +
	"(sumd add -server) and tools such as curl, not from a page of another site in a browser"

// route serves an authenticated request.
func (h *Handler) route(w http.ResponseWriter, r *http.Request) {
	var route func(http.ResponseWriter, *http.Request)
	method := http.MethodPost
	switch r.URL.Path {
	case "/admin/fetch":
		route = h.fetch
	case "/admin/upload":
		route = h.upload
	case "/admin/add":
		route = h.add
	case "/admin/backup":
		route, method = h.backup, http.MethodGet
	}
	switch {
	case route == nil:
		h.fail(w, r, &httpError{http.StatusNotFound, "no such admin endpoint: want /admin/fetch, /admin/upload, /admin/add or /admin/backup"})
		return
	case h.rec == nil && method == http.MethodPost: // a mirror-only server
		h.fail(w, r, &httpError{http.StatusNotFound, MirrorsOnlyText})
		return
	}
	if r.Method != method && (method != http.MethodGet || r.Method != http.MethodHead) {
		w.Header().Set("Allow", method)
		h.fail(w, r, &httpError{http.StatusMethodNotAllowed, "use " + method})
		return
	}
	route(w, r)
}

// ReadTokenFile reads an admin token: the file's content without
// surrounding white space, at least MinTokenLength bytes. A file that other
// users may access is refused with a *secret.ModeError.
func ReadTokenFile(path string) (string, error) {
	data, _, err := secret.ReadFile(path, maxTokenFile)
	if err != nil {
		return "", fmt.Errorf("failed to read admin token: %w", err)
	}
	token, err := ParseToken(data)
	if err != nil {
		return "", fmt.Errorf("admin token file %s: %w", path, err)
	}
	return token, nil
}

// ParseToken returns the token a token file holds: its content without
// surrounding white space, at least MinTokenLength bytes, with no control
// character but tabs in it.
func ParseToken(data []byte) (string, error) {
	token := strings.TrimSpace(string(data))
	if len(token) < MinTokenLength {
		return "", fmt.Errorf("the token is shorter than %d bytes", MinTokenLength)
	}
	// No HTTP header carries a line break or another control character
	// (net/http refuses to send one): accepted, the API would be on with a
	// token no client can send.
	if i := strings.IndexFunc(token, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }); i >= 0 {
		return "", fmt.Errorf("the token holds a line break or another control character (%q at byte %d), which no HTTP header can carry: write the token on one line", token[i], i)
	}
	return token, nil
}
