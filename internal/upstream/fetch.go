package upstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/redirect"
	"github.com/sumd-project/sumd/internal/regfile"
	"github.com/sumd-project/sumd/internal/scratch"
	"github.com/sumd-project/sumd/internal/tlog"
)

// DefaultTimeout bounds one upstream request, body included.
const DefaultTimeout = time.Minute

// FetcherOptions configure a Fetcher.
type FetcherOptions struct {
	// Sources are the upstream proxies, in order (see ParseList). Required.
	Sources []Source
	// Timeout bounds each request, reading the body included (default
	// DefaultTimeout). A request that takes longer is a KindTimeout error.
	Timeout time.Duration
	// MaxZipSize and MaxModSize cap the .zip and .mod files (default the go
	// command's limits, modhash.MaxZipFile and modhash.MaxGoMod). A larger
	// file makes the version invalid. Tests lower them.
	MaxZipSize, MaxModSize int64
	// TempDir holds a zip from an HTTP source larger than memoryZip while
	// it is hashed ("" means os.TempDir()); see package scratch.
	TempDir string
	// MinFree is the space, in bytes, a zip written to TempDir leaves
	// free on its file system: a zip that would take it lower fails with
	// a *tlog.LowDiskError (KindLocal) before the write, so that first
	// lookups never eat the room the log's commits need when TempDir
	// shares the database's disk (as it does by default). 0 means
	// tlog.DefaultMinFree, negative no floor.
	MinFree int64
	// HTTPClient sends the requests; nil means a client of sumd's own.
	// Unless it has a CheckRedirect of its own, the Fetcher follows
	// redirects as the go command does: never from https to http, at most
	// 10, and without credentials once one leaves their origin.
	HTTPClient *http.Client
	// Logger receives a debug record per upstream attempt; nil means
	// slog.Default(). It never sees credentials.
	Logger *slog.Logger
	// Metrics, if non-nil, counts fetches.
	Metrics *Metrics
}

// A Fetcher fetches module versions from upstream proxies and hashes them
// as the go command would. It is safe for concurrent use and keeps no state
// between calls but its sources' runs of failures, for the server's health:
// a failed version leaves no trace.
type Fetcher struct {
	sources []Source
	opts    FetcherOptions
	client  opener
	log     *slog.Logger
	metrics *Metrics
	// createTemp creates the file a zip larger than memoryZip is
	// downloaded to in dir: scratch.Create, or in tests a file that fails.
	createTemp func(dir string) (tempFile, error)
	// freeSpace is tlog.FreeSpace, or in tests a disk filling up.
	freeSpace func(path string) (int64, bool)
	// health is what fetches saw of each source, for Recorder.Problems:
	// the only state a Fetcher keeps between calls.
	health *sourceHealth
}

// A tempFile is where downloadZip stores a large zip: an *os.File.
type tempFile interface {
	io.Writer
	Name() string
	Close() error
}

// NewFetcher checks opts, reading every credential file once so that a
// misconfiguration is found at start, and returns a Fetcher.
func NewFetcher(opts FetcherOptions) (*Fetcher, error) {
	if len(opts.Sources) == 0 {
		return nil, errors.New("no upstream proxy configured")
	}
	opts = opts.withDefaults()
	for _, src := range opts.Sources {
		if err := checkSource(src); err != nil {
			return nil, err
		}
		if err := src.Auth.check(); err != nil {
			return nil, fmt.Errorf("upstream proxy %s: %w", src.URL, err)
		}
		if src.Auth.Kind != AuthNone && strings.HasPrefix(src.URL, "http://") && !isLoopback(src.URL) {
			opts.Logger.Warn("upstream credentials are sent in clear text over http", "source", src.URL)
		}
	}
	return &Fetcher{
		sources: opts.Sources,
		opts:    opts,
		client:  opener{client: opts.HTTPClient},
		log:     opts.Logger,
		metrics: opts.Metrics,
		createTemp: func(dir string) (tempFile, error) {
			return scratch.Create(dir, scratch.Upstream)
		},
		freeSpace: tlog.FreeSpace,
		health:    &sourceHealth{runs: make([]sourceRun, len(opts.Sources))},
	}, nil
}

func (o FetcherOptions) withDefaults() FetcherOptions {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxZipSize <= 0 {
		o.MaxZipSize = modhash.MaxZipFile
	}
	if o.MaxModSize <= 0 {
		o.MaxModSize = modhash.MaxGoMod
	}
	if o.MinFree == 0 {
		o.MinFree = tlog.DefaultMinFree
	}
	o.HTTPClient = redirect.Client(o.HTTPClient)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// checkSource checks a Source built by hand rather than by ParseList.
func checkSource(src Source) error {
	canon, err := parseSourceURL(src.URL)
	if err != nil {
		return err
	}
	if canon != src.URL {
		return fmt.Errorf("upstream proxy URL %q is not canonical (want %q)", src.URL, canon)
	}
	return nil
}

func isLoopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()
}

// Fetch fetches m's .mod and .zip from the first source that has them,
// validates them as the go command does (modhash.HashZip) and returns m's
// record. Sources are tried in order: after a 404 or 410 the next one;
// after another error the next one only if the source is followed by "|".
//
// Errors are *Error, except ctx's own error when ctx ends first. A version
// no source has is KindGone; one that fails validation or a size limit is
// KindInvalid and stops the walk (it is what the source serves, not a
// transport failure); so does KindLocal, sumd's own failure to store the
// zip or read it back, which the next source's zip would meet too. A
// failure of some source beats "not found" from others, as in the go
// command, so a version is called gone only when every source tried said
// so. No error's text names a source or a local path
// (see Error).
func (f *Fetcher) Fetch(ctx context.Context, m module.Version) (gosum.Record, error) {
	start := time.Now()
	rec, err := f.fetch(ctx, m)
	f.metrics.observeFetch(ctx, err, time.Since(start))
	return rec, err
}

func (f *Fetcher) fetch(ctx context.Context, m module.Version) (gosum.Record, error) {
	// CheckModule, not CheckNewModule: sumd verify -recheck fetches the
	// versions a log holds, whatever made them; the Recorder refuses a
	// new one the go command never makes.
	if err := gosum.CheckModule(m.Path, m.Version); err != nil {
		return gosum.Record{}, &Error{Kind: KindInvalid, Module: m, Err: err}
	}
	var notFound, failed error
	for i, src := range f.sources {
		rec, err := f.fetchFrom(ctx, src, m)
		noted := f.health.note(ctx, i, err)
		if noted.recovered > 0 {
			f.log.InfoContext(ctx, "upstream proxy answers again", "source", src.URL, "failed_fetches", noted.recovered)
		}
		if noted.missRunReached {
			f.log.WarnContext(ctx, fmt.Sprintf("upstream proxy answered 404 or 410 to the last %d versions asked of it: if it should have some of them, check that its URL is the proxy's GOPROXY base URL (one with its path prefix left out, or the proxy's web UI, answers so for every version); a proxy holding only some modules misses the others", missRun),
				"source", src.URL, "module", m.Path, "version", m.Version)
		}
		if err == nil {
			return rec, nil
		}
		f.log.DebugContext(ctx, "upstream fetch failed", "source", src.URL, "module", m.Path, "version", m.Version, "err", err)
		switch {
		case ctx.Err() != nil && errors.Is(err, ctx.Err()):
			return gosum.Record{}, ctx.Err()
		case isNotFound(err):
			notFound = err
		case kindOf(err) == KindInvalid, kindOf(err) == KindLocal:
			return gosum.Record{}, err
		default:
			failed = err
			if !src.FallBackOnError {
				return gosum.Record{}, err
			}
			// The next source may answer: the operator must still hear
			// of this one (Recorder.Problems reports a run of these),
			// once a run: the next failures of the run at debug level
			// (logged above), and its end at info level.
			if f.health.warn(i) {
				f.log.WarnContext(ctx, "upstream proxy failed; trying the next after \"|\" (its next failures are logged at debug level until it answers again)", "source", src.URL, "module", m.Path, "version", m.Version, "err", err)
			}
		}
	}
	if failed != nil {
		return gosum.Record{}, failed
	}
	return gosum.Record{}, notFound
}

// fetchFrom fetches, validates and hashes m from one source.
func (f *Fetcher) fetchFrom(ctx context.Context, src Source, m module.Version) (gosum.Record, error) {
	base, err := escapedBase(m)
	if err != nil {
		return gosum.Record{}, &Error{Kind: KindInvalid, Module: m, Err: err}
	}
	mod := newModBuffer(f.opts.MaxModSize)
	defer mod.free()
	err = f.download(ctx, src, m, base+".mod", mod, f.opts.MaxModSize, "go.mod file")
	for errors.Is(err, errModWaits) {
		// Waited for with its request open, the share would count
		// against -upstream-timeout, and a long wait fail as the
		// upstream's timeout: wait with none open, then ask again
		// (at most twice: see modBuffer.wait).
		if err = mod.wait(ctx); err == nil {
			err = f.download(ctx, src, m, base+".mod", mod, f.opts.MaxModSize, "go.mod file")
		}
	}
	if err != nil {
		return gosum.Record{}, err
	}
	var zipPath string
	var zipData []byte      // a small zip from HTTP, hashed in memory
	var local *regfile.File // a file:// tree's zip, hashed where it is
	if src.isFile() {
		local, err = f.localZip(ctx, src, m, base+".zip")
		if err == nil {
			defer local.Close()
			zipPath = local.Name()
		}
	} else {
		var release func()
		zipData, zipPath, release, err = f.downloadZip(ctx, src, m, base+".zip")
		defer release()
		if zipPath != "" {
			defer os.Remove(zipPath)
		}
	}
	if err != nil {
		return gosum.Record{}, err
	}
	goMod := mod.bytes()
	var sums modhash.Sums
	switch {
	case local != nil:
		sums, err = f.hashInPlace(ctx, src, m, base+".zip", local, goMod)
	case zipPath != "":
		sums, err = modhash.HashZipContext(ctx, m, zipPath, goMod)
	default:
		sums, err = modhash.HashZipDataContext(ctx, m, zipData, goMod)
	}
	var fe *Error
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// The hash stopped because every client waiting for it went
		// away (see Recorder.fly): a verdict on nothing, so as to free
		// the fetch slot now rather than when a large zip is hashed.
		return gosum.Record{}, ctx.Err()
	case errors.As(err, &fe):
		return gosum.Record{}, err
	case err != nil && modhash.IsFileError(err):
		// The zip sumd stored could not be opened or read again: it
		// was removed or damaged here, which says nothing of the
		// module (and must not be remembered as invalid).
		return gosum.Record{}, &Error{Kind: KindLocal, Module: m, Err: errReadBack,
			Cause: fmt.Errorf("failed to read back the module zip from the temporary directory: %w", err)}
	case err != nil:
		// Both texts are capped: x/mod's CheckZip lists every bad entry,
		// megabytes for a crafted zip, which the negative cache would
		// keep and the log print in full. The cause's chain is dropped
		// with it (keeping it would keep the megabytes); nothing tests
		// an invalid module's cause beyond its text.
		return gosum.Record{}, &Error{Kind: KindInvalid, Module: m, Err: invalidReason(err, zipPath),
			Cause: errors.New(modhash.Truncate(err.Error(), modhash.MaxCauseText))}
	}
	return gosum.Record{Path: m.Path, Version: m.Version, Hash: sums.Hash, GoMod: sums.GoMod}, nil
}

// localZip opens the zip at rel in a file:// tree, checked as download
// checks what it copies (a regular file within MaxZipSize), so that it is
// hashed where it is: copying it first was a fifth of the CPU time of a
// first lookup.
func (f *Fetcher) localZip(ctx context.Context, src Source, m module.Version, rel string) (*regfile.File, error) {
	zf, err := openFile(src.URL, rel)
	if err != nil {
		return nil, f.failure(ctx, ctx, src, m, rel, "module zip", false, err)
	}
	if zf.Size() > f.opts.MaxZipSize {
		zf.Close()
		return nil, f.failure(ctx, ctx, src, m, rel, "module zip", true, &errTooLarge{"module zip", f.opts.MaxZipSize})
	}
	return zf, nil
}

// hashInPlace is modhash.HashZipFile of a file:// tree's zip, open as zf,
// where it lies (see localZip). If the file was written to meanwhile,
// nothing learnt from it holds, error or not: try again later. If it could
// not be read (an I/O error), the tree failed, not the module: that must
// not become a cached "invalid module", and after "|" the next source in
// the list may have the version.
func (f *Fetcher) hashInPlace(ctx context.Context, src Source, m module.Version, rel string, zf *regfile.File, goMod []byte) (modhash.Sums, error) {
	sums, err := modhash.HashZipFileContext(hashContext(ctx), m, zf, goMod)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return modhash.Sums{}, err
	}
	if cerr := unchanged(zf, m); cerr != nil {
		return modhash.Sums{}, cerr
	}
	if err != nil && modhash.IsFileError(err) {
		return modhash.Sums{}, f.failure(ctx, ctx, src, m, rel, "module zip", false, err)
	}
	return sums, err
}

// hashContext is the context hashInPlace hashes with: ctx. A test makes
// it one whose Err, which the hash of a large zip calls before each read,
// blocks, to hang up while a hash is provably under way: a regular file's
// reads cannot be held up from outside (TestAbandonedHashFreesSlot).
var hashContext = func(ctx context.Context) context.Context { return ctx }

// unchanged reports an error unless zf, after it was hashed, has the size
// and modification time it had when opened. A hash of a mix of two files
// must never be recorded, and the tree's owner may rewrite a zip while it
// is hashed.
//
// Why the open file's state is enough, where the name's was checked
// before and after: HashZipFile reads every byte it hashes through zf, so
// whatever happens to the name meanwhile (a new file renamed over it, the
// file removed) the bytes are all of the one file that was opened, as an
// HTTP proxy serves the file it opened. What could mix two contents is a
// write into that file while it is read, and a write sets the file's
// modification time, a truncation or extension its size too. Its limits
// are those the check of the name had: a write within the same tick of the
// file system's clock as the open, or one that set the time before the
// open and copied its bytes after it, goes unseen.
func unchanged(zf *regfile.File, m module.Version) error {
	changed, err := zf.Changed()
	if err == nil && !changed {
		return nil
	}
	return &Error{Kind: KindUnavailable, Module: m, Err: errors.New("the module zip changed in the upstream proxy's file tree while it was hashed; try again"),
		Cause: fmt.Errorf("%s changed while hashed: %v", zf.Name(), err)}
}

// smallMod is the size up to which a .mod is held without a share of
// modhash.MemoryBudget: most are a few KiB.
const smallMod = 64 << 10

// A modBuffer holds a .mod as download reads it (ReadFrom), in a buffer of
// the size the answer announces (Content-Length), so that a small .mod
// costs one allocation of its size and no copy buffer; of unknown size, in
// one that doubles from 512 bytes. A buffer over smallMod bytes takes a
// share of modhash.MemoryBudget, which it holds until free: a .mod is held
// until its version is hashed, and -upstream-parallel lookups of versions
// with go.mod files of up to 16 MiB (anyone may publish such a module, and
// make sumd look it up) would otherwise hold hundreds of MiB at once. The
// share is the announced size; with none it grows as the buffer doubles,
// up to MaxModSize and a byte (full), so that a .mod of unknown size does
// not hold 16 MiB while a few hundred KiB arrive. A body running past the
// size announced takes the full share. If the share is not free, ReadFrom
// fails with errModWaits, and the fetch waits for it (wait) with no
// request open, then downloads the .mod again: it waits rather than fails,
// as a zip would go to a file, since a go.mod cannot, and large ones are
// rare.
type modBuffer struct {
	full    int64  // the largest share, at most modhash.MemoryBudget
	size    int64  // the size the answer announced, or -1
	share   int64  // the share a buffer over smallMod takes, or wait waits for
	held    int64  // the share held
	release func() // gives back held; nil while it holds none
	waited  bool   // wait waited once
	data    []byte
	probe   [1]byte // reads whether a .mod ends at its announced size
}

// newModBuffer is a modBuffer for a .mod of up to limit bytes.
func newModBuffer(limit int64) *modBuffer {
	full := min(limit+1, modhash.MemoryBudget) // +1: copyLimited reads a byte past limit
	return &modBuffer{full: full, size: -1}
}

// errModWaits is a .mod's download stopped because its share of
// modhash.MemoryBudget is not free: the fetch waits for it (modBuffer.wait)
// and downloads the .mod again.
var errModWaits = errors.New("a large go.mod waits for its share of the memory budget")

// expect is told the size the answer announces (-1 for none) before its
// body is read.
func (b *modBuffer) expect(size int64) {
	b.size = size
	if size >= 0 {
		b.share = max(b.share, min(size, b.full)) // a wait's share is kept
	}
}

// Write is io.Writer's, which download takes; its io.Copy calls ReadFrom.
func (b *modBuffer) Write(p []byte) (int, error) {
	if n := int64(len(b.data) + len(p)); n > smallMod {
		if err := b.hold(n); err != nil {
			return 0, err
		}
	}
	b.data = append(b.data, p...)
	return len(p), nil
}

// ReadFrom reads the .mod from r to its end. The bytes it read are kept
// even when it fails.
func (b *modBuffer) ReadFrom(r io.Reader) (int64, error) {
	start := len(b.data)
	for {
		if len(b.data) == cap(b.data) && int64(len(b.data)) == b.size {
			// All that was announced is here: see whether it ends.
			n, err := r.Read(b.probe[:])
			if n > 0 {
				if gerr := b.grow(); gerr != nil {
					return int64(len(b.data) - start), gerr
				}
				b.data = append(b.data, b.probe[0])
			}
			if err == io.EOF {
				return int64(len(b.data) - start), nil
			}
			if err != nil {
				return int64(len(b.data) - start), err
			}
			continue
		}
		if len(b.data) == cap(b.data) {
			if err := b.grow(); err != nil {
				return int64(len(b.data) - start), err
			}
		}
		n, err := r.Read(b.data[len(b.data):cap(b.data)])
		b.data = b.data[:len(b.data)+n]
		if err == io.EOF {
			return int64(len(b.data) - start), nil
		}
		if err != nil {
			return int64(len(b.data) - start), err
		}
	}
}

// grow makes room for more of the .mod: the size announced at first, then
// twice what the buffer has, taking the share of a buffer over smallMod
// and growing no further than it.
func (b *modBuffer) grow() error {
	next := int64(max(2*cap(b.data), 512))
	if cap(b.data) == 0 && b.size > 0 {
		next = b.size
	}
	if next > smallMod {
		if err := b.hold(next); err != nil {
			return err
		}
		if b.held > int64(len(b.data)) {
			// Else it holds the full share and MaxModSize is over
			// the budget: the buffer grows past it, as before.
			next = min(next, b.held)
		}
	}
	data := make([]byte, len(b.data), next)
	copy(data, b.data)
	b.data = data
	return nil
}

// hold makes the share held cover a buffer of n bytes, taking the rest of
// the share if it is free now: a share grown to n, at least doubled, for a
// .mod of unknown size, the full share if n is over the announced size's.
// It fails with errModWaits if it is not free.
func (b *modBuffer) hold(n int64) error {
	if n <= b.held {
		return nil
	}
	switch {
	case n <= b.share:
	case b.size < 0:
		b.share = min(max(n, 2*b.share), b.full)
	default:
		b.share = b.full // the body runs past the size announced
	}
	if b.share <= b.held {
		return nil
	}
	release, ok := modhash.HoldMemory(b.share - b.held)
	if !ok {
		return errModWaits
	}
	b.add(release, b.share-b.held)
	return nil
}

func (b *modBuffer) add(release func(), n int64) {
	if prev := b.release; prev != nil {
		b.release = func() { prev(); release() }
	} else {
		b.release = release
	}
	b.held += n
}

// wait gives back what it holds and empties the buffer, for the .mod to
// be downloaded again, then takes the share, waiting for it until ctx is
// done. A second wait is for the full share, so that the waits end
// whatever sizes the answers announce.
func (b *modBuffer) wait(ctx context.Context) error {
	b.free()
	b.data = nil
	if b.waited {
		b.share = b.full
	}
	b.waited = true
	release, err := modhash.WaitMemory(ctx, b.share)
	if err != nil {
		return err
	}
	b.add(release, b.share)
	return nil
}

// bytes is the .mod, never nil: nil would tell HashZip to fall back to
// the zip's go.mod, and an empty .mod must be judged as the go command
// judges it.
func (b *modBuffer) bytes() []byte {
	if len(b.data) == 0 {
		return []byte{}
	}
	return b.data
}

// free gives back the share, if held.
func (b *modBuffer) free() {
	if b.release != nil {
		b.release()
		b.release, b.held = nil, 0
	}
}

// escapedBase is "<escaped path>/@v/<escaped version>", the proxy protocol's
// name of the version's files without the extension.
func escapedBase(m module.Version) (string, error) {
	p, err := module.EscapePath(m.Path)
	if err != nil {
		return "", err
	}
	v, err := module.EscapeVersion(m.Version)
	if err != nil {
		return "", err
	}
	return p + "/@v/" + v, nil
}

// invalidReason drops modhash's "failed to hash M@V" (the Error names the
// version already) and caps the rest with modhash.Reason: one line, the
// temporary file the zip was hashed from named as what it is (the reasons
// are about the zip's entries, but an I/O error would name the file).
func invalidReason(err error, zipPath string) error {
	if inner := errors.Unwrap(err); inner != nil {
		err = inner
	}
	return fmt.Errorf("invalid module: %s", modhash.Reason(err, zipPath, "module zip", modhash.MaxReasonText))
}

// memoryZip is the size up to which a zip from an HTTP source is kept in
// memory and hashed there (modhash.HashZipData): most module zips are
// small, and for them a temporary file's system calls (create, write,
// close, open again, read, remove) cost more than the hashing. Memory stays
// bounded: first lookups fetch at most -upstream-parallel (default 16)
// versions at once, and every zip held, the admin API's fetches' too, takes
// its share of modhash.MemoryBudget first, going to a file when it is spent
// (as a .mod over smallMod waits for its share: see modBuffer).
const memoryZip = 1 << 20

// downloadZip downloads the zip: one of up to memoryZip bytes is returned
// in memory, a larger one is streamed to a temporary file, so that memory
// stays bounded whatever its size, whose name is returned and which the
// caller removes. A failure to create or write the file (a full disk) is
// KindLocal.
//
// The memory comes from modhash.MemoryBudget, twice memoryZip (the buffer
// grows to about twice what it holds); release gives it back and is a
// no-op when the zip went to a file. With the budget spent, the zip goes to
// a file whatever its size.
func (f *Fetcher) downloadZip(ctx context.Context, src Source, m module.Version, rel string) (data []byte, path string, release func(), err error) {
	release, ok := modhash.HoldMemory(2 * memoryZip)
	zw := &zipWriter{create: f.createTemp, dir: f.opts.TempDir, space: tlog.SpaceGuard{Floor: f.opts.MinFree, Free: f.freeSpace}}
	if ok {
		zw.limit = memoryZip
	} else {
		release = func() {}
	}
	err = f.download(ctx, src, m, rel, zw, f.opts.MaxZipSize, "module zip")
	if zw.file == nil && err == nil {
		return zw.mem, "", release, nil
	}
	release()
	release = func() {}
	if zw.file == nil {
		return nil, "", release, err
	}
	path = zw.file.Name()
	if cerr := zw.file.Close(); err == nil && cerr != nil {
		err = storeError(m, filepath.Dir(path), fmt.Errorf("failed to write a temporary file: %w", cerr))
	}
	if err != nil {
		os.Remove(path)
		return nil, "", release, err
	}
	return nil, path, release, nil
}

// Client texts of KindLocal errors: they name no path.
var (
	errStore    = errors.New("sumd cannot store the module zip now; try again later")
	errReadBack = errors.New("sumd could not read back the module zip it stored; try again later")
)

// storeError is a failure to keep a zip in the temporary directory dir,
// which the operator must see: the log names the directory, the -tmp-dir
// option.
func storeError(m module.Version, dir string, err error) *Error {
	return &Error{Kind: KindLocal, Module: m, Err: errStore, Cause: fmt.Errorf("temporary directory %s (-tmp-dir): %w", dir, err)}
}

// A zipWriter is where downloadZip writes a zip: memory while it is at
// most memoryZip bytes, then a temporary file in dir, created through
// create at the first write past that, and given what memory held first.
// Its writes to the file keep the floor free on the file system (space).
// io.Copy returns a failure to write as it returns a failure to read the
// body; zipWriter makes the first a *writeError, sumd's own failure
// rather than the upstream's.
type zipWriter struct {
	create func(dir string) (tempFile, error)
	dir    string          // FetcherOptions.TempDir
	limit  int             // the bytes it may hold in memory: memoryZip, or 0 with no budget left
	mem    []byte          // the zip so far, while file is nil
	file   tempFile        // nil until the zip outgrows memoryZip
	space  tlog.SpaceGuard // keeps FetcherOptions.MinFree free
}

func (z *zipWriter) Write(p []byte) (int, error) {
	if z.file == nil && len(z.mem)+len(p) <= z.limit {
		z.mem = append(z.mem, p...)
		return len(p), nil
	}
	if z.file == nil {
		if err := z.spill(); err != nil {
			return 0, err
		}
	}
	return z.write(p)
}

// spill creates the temporary file and moves what memory held to it.
func (z *zipWriter) spill() error {
	file, err := z.create(z.dir)
	if err != nil {
		return &writeError{dir: cmp.Or(z.dir, os.TempDir()), err: fmt.Errorf("failed to create a temporary file: %w", err)}
	}
	z.file = file
	held := z.mem
	z.mem = nil
	_, err = z.write(held)
	return err
}

func (z *zipWriter) write(p []byte) (int, error) {
	if err := z.space.Room(z.file.Name(), int64(len(p))); err != nil {
		return 0, &writeError{dir: filepath.Dir(z.file.Name()), err: err}
	}
	n, err := z.file.Write(p)
	if err != nil {
		return n, &writeError{dir: filepath.Dir(z.file.Name()), err: fmt.Errorf("failed to write a temporary file: %w", err)}
	}
	return n, nil
}

// A writeError is a failure to create or write a temporary file in dir.
type writeError struct {
	dir string
	err error
}

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// download copies one file from src to w within limit and the request
// timeout. Failures are *Error whose reason names neither src nor a path;
// the cause keeps them. A 404 or 410 is KindGone with the *statusError as
// its cause, for the walk over sources.
func (f *Fetcher) download(ctx context.Context, src Source, m module.Version, rel string, w io.Writer, limit int64, what string) error {
	rctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	body, size, err := f.client.open(rctx, src, rel)
	read := false
	if err == nil {
		var n int64
		read = true
		if s, ok := w.(interface{ expect(size int64) }); ok {
			s.expect(size) // see modBuffer
		}
		n, err = copyLimited(w, body, size, limit, what)
		body.Close()
		f.metrics.addBytes(n)
		if errors.Is(err, errModWaits) {
			return errModWaits // not the upstream's failure: see modBuffer
		}
	}
	return f.failure(ctx, rctx, src, m, rel, what, read, err)
}

// failure turns an error of reading rel from src into what download
// returns; rctx is the request's context, read whether the file was opened.
func (f *Fetcher) failure(ctx, rctx context.Context, src Source, m module.Version, rel, what string, read bool, err error) error {
	var tooLarge *errTooLarge
	var se *statusError
	var we *writeError
	switch {
	case err == nil, ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return err
	case errors.As(err, &we):
		return storeError(m, we.dir, err)
	case errors.As(err, &tooLarge):
		return &Error{Kind: KindInvalid, Module: m, Err: fmt.Errorf("invalid module: %w", err)}
	case errors.Is(err, errNameTooLong):
		return &Error{Kind: KindInvalid, Module: m, Err: fmt.Errorf("invalid module: %w", errNameTooLong), Cause: err}
	case errors.Is(rctx.Err(), context.DeadlineExceeded):
		return &Error{Kind: KindTimeout, Module: m, Err: fmt.Errorf("upstream proxy gave no complete answer within %s", f.opts.Timeout),
			Cause: fmt.Errorf("%s/%s: %w", src.URL, rel, err)}
	case errors.As(err, &se) && se.notFound():
		return &Error{Kind: KindGone, Module: m, Err: goneReason(se, src, m), Cause: err}
	case errors.As(err, &se):
		return &Error{Kind: KindUnavailable, Module: m, Err: fmt.Errorf("upstream proxy answered %d %s", se.status, http.StatusText(se.status)), Cause: err}
	case errors.Is(err, redirect.ErrInsecure), errors.Is(err, redirect.ErrTooMany):
		// The source's failure, not the version's: not remembered, and
		// after "|" the next source is tried.
		f.log.WarnContext(ctx, "upstream redirect refused", "source", src.URL, "module", m.Path, "version", m.Version, "err", err)
		reason := "upstream proxy redirected to an insecure (non-https) URL"
		if errors.Is(err, redirect.ErrTooMany) {
			reason = fmt.Sprintf("upstream proxy redirected more than %d times", redirect.Max)
		}
		return &Error{Kind: KindUnavailable, Module: m, Err: errors.New(reason), Cause: err}
	case errors.Is(err, errNoTree):
		// Every lookup fails until the operator mounts the tree again:
		// the log says where it should be, the client text does not.
		f.log.WarnContext(ctx, "upstream file tree missing", "source", src.URL, "module", m.Path, "version", m.Version, "err", err)
		return &Error{Kind: KindUnavailable, Module: m, Err: errNoTree, Cause: err}
	case read:
		return &Error{Kind: KindUnavailable, Module: m, Err: fmt.Errorf("failed to read the %s from the upstream proxy", what), Cause: err}
	case src.isFile():
		return &Error{Kind: KindUnavailable, Module: m, Err: errors.New("failed to read the upstream proxy's file tree"), Cause: err}
	}
	return &Error{Kind: KindUnavailable, Module: m, Err: errors.New("upstream proxy could not be reached"), Cause: err}
}

// goneReason is what the user sees for a version a source does not have:
// the proxy's own one-line explanation, if it gave one (proxies write it
// for the go command's user, as "unknown revision v1.2.3"), with every
// URL, host, address and path in it redacted (see redactReason).
func goneReason(se *statusError, src Source, m module.Version) error {
	msg := redactReason(se.msg, m, src, se.final)
	if msg == "" {
		return errors.New("upstream proxy has no such version")
	}
	return fmt.Errorf("upstream proxy has no such version: %s", msg)
}
