// Package sumdbclient is verified fetching from a Go checksum database over
// its HTTP protocol: the signed tree head (/latest), lookups
// (/lookup/M@V), hash tiles (/tile/8/L/N[.p/W]) and data tiles
// (/tile/8/data/N[.p/W]), from sumd, sum.golang.org, a mirror, or a module
// proxy relaying one under a base URL with a path.
//
// It is shared by the auditor (internal/audit), which checks a database
// and stores nothing, and the mirror (internal/mirror), which checks a
// database and stores what it proved. Both trust only verifier keys:
//
//   - A signed tree head is believed once Verifiers.Open has checked its
//     signature (other signatures on the note, witnesses', are ignored).
//   - A hash tile is believed once read through x/mod's
//     tlog.TileHashReader over a TileReader of this package, which
//     authenticates it against a signed head; the TileReader itself only
//     fetches (with the go command's fallback from a gone partial tile to
//     the full one).
//   - A record is believed once its hash matched an authenticated leaf.
//
// Everything a server sends is capped in size (MaxLatest, MaxLookup,
// MaxHashTile, MaxDataTile) and parsed strictly (SplitDataTile,
// ParseLookup); failures to obtain data are *FetchError, which says
// nothing about the database's honesty.
package sumdbclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/sumd-project/sumd/internal/redirect"
)

// Response size caps. A hash tile is at most 256 hashes of 32 bytes; a data
// tile holds 256 records of at most a few hundred bytes each in practice
// (gosum.MaxRecordSize is 2 KiB), so 1 MiB, the limit common clients use,
// leaves ample room. A signed head is about 200 bytes even with a few
// witness cosignatures; a lookup is an id, a record and a head, and its
// record may be as large as a data tile (what a mirror stores of an
// origin's records: tlog.MaxMirroredRecord).
const (
	MaxHashTile = 256 * 32
	MaxDataTile = 1 << 20
	MaxLatest   = 16 << 10
	MaxLookup   = 32 + MaxDataTile + MaxLatest
)

// A FetchError is a request the server did not answer with 200 OK and a
// body within its size cap, even after retries: the data needed could not
// be obtained, which says nothing either way about the database's honesty.
type FetchError struct {
	Path   string // the protocol path, e.g. /tile/8/data/000
	Status int    // the HTTP status, 0 if there was no response
	Err    error  // the cause
}

func (e *FetchError) Error() string { return fmt.Sprintf("failed to fetch %s: %v", e.Path, e.Err) }
func (e *FetchError) Unwrap() error { return e.Err }

// NotFound reports whether err is a 404 or 410 answer, but for a mirror's
// saying it cannot reach its origin (ErrOffline).
func NotFound(err error) bool {
	var fe *FetchError
	return errors.As(err, &fe) && (fe.Status == http.StatusNotFound || fe.Status == http.StatusGone) && !errors.Is(err, ErrOffline)
}

// IsFetchError reports whether err is a failure to obtain data (a
// *FetchError, or cancellation) rather than a finding about the data.
func IsFetchError(err error) bool {
	var fe *FetchError
	return errors.As(err, &fe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Options configure a Client.
type Options struct {
	// UserAgent is sent with every request (default "sumd/devel").
	UserAgent string
	// Timeout caps each HTTP request (default 30s).
	Timeout time.Duration
	// Parallel is how many requests the caller runs at once; the client
	// keeps that many idle connections (default 8).
	Parallel int
	// Backoff is the wait before the second try of a transient failure,
	// doubled after each (default 500ms). Three tries in all.
	Backoff time.Duration
	// Auth, if set, adds credentials to every request (a server behind an
	// access layer); an error fails the request without sending it.
	Auth func(*http.Request) error
	// Transport, if set, is given the client's own transport (its
	// timeouts and idle connections set) and returns the round tripper
	// the client uses: one presenting a client certificate to the base
	// URL's host alone, for one.
	Transport func(*http.Transport) http.RoundTripper
}

// A Client GETs protocol paths from one database. It is safe for
// concurrent use.
type Client struct {
	base     string // the base URL without a trailing slash; paths start with "/"
	client   *http.Client
	ua       string
	auth     func(*http.Request) error // adds credentials; nil: none
	attempts int                       // tries per request, the first included
	backoff  time.Duration             // wait before the second try; doubled after each
}

// New returns a client of the database at base, an http:// or https://
// URL with or without a path (https://proxy.example/sumdb/sum.golang.org).
func New(base string, opts Options) (*Client, error) {
	if _, err := CheckURL(base); err != nil {
		return nil, err
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "sumd/devel"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = opts.Timeout
	// Every worker keeps its connection between requests.
	tr.MaxIdleConnsPerHost = opts.Parallel + 2
	var rt http.RoundTripper = tr
	if opts.Transport != nil {
		rt = opts.Transport(tr)
	}
	return &Client{
		base:     strings.TrimSuffix(base, "/"),
		client:   &http.Client{Transport: rt, Timeout: opts.Timeout, CheckRedirect: redirect.Check},
		ua:       opts.UserAgent,
		auth:     opts.Auth,
		attempts: 3,
		backoff:  opts.Backoff,
	}, nil
}

// CheckURL accepts an http or https base URL, with or without a path.
func CheckURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("invalid database URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return nil, fmt.Errorf("invalid database URL %q: want http:// or https:// and a host", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("invalid database URL %q: a base URL has no ?query or #fragment", u.Redacted())
	}
	return u, nil
}

// URL returns the base URL with any password hidden.
func (c *Client) URL() string {
	u, err := url.Parse(c.base)
	if err != nil {
		return c.base
	}
	return u.Redacted()
}

// CloseIdleConnections closes the connections kept between requests.
func (c *Client) CloseIdleConnections() { c.client.CloseIdleConnections() }

// Latest fetches the signed tree head. It is not verified.
func (c *Client) Latest(ctx context.Context) ([]byte, error) {
	return c.Get(ctx, "/latest", MaxLatest)
}

// Get fetches path, whose body may be at most limit bytes. Transient
// failures (see retryable) are retried a few times with backoff; others
// are not, since retrying would get the same answer.
func (c *Client) Get(ctx context.Context, path string, limit int64) ([]byte, error) {
	wait := c.backoff
	for attempt := 1; ; attempt++ {
		data, status, err := c.getOnce(ctx, path, limit)
		if err == nil {
			return data, nil
		}
		if attempt >= c.attempts || !retryable(status, err) || ctx.Err() != nil {
			return nil, &FetchError{Path: path, Status: status, Err: err}
		}
		// Jitter keeps parallel workers from retrying in lockstep.
		d := wait + rand.N(wait/2+1)
		wait *= 2
		select {
		case <-ctx.Done():
			return nil, &FetchError{Path: path, Status: status, Err: ctx.Err()}
		case <-time.After(d):
		}
	}
}

// DamagedText is the whole body of the 500 a sumd server answers for data
// damaged in its database, which it does not serve: a record that does
// not hash to its leaf in the signed tree, an index entry naming another
// version's record, PostgreSQL reporting its files damaged. It names no
// path; the server's log says which data.
const DamagedText = "the data asked for is damaged in the server's database and is not served"

// ErrDamaged marks a server's answer that the data asked for is damaged
// in its database (a 500 with DamagedText): a finding about the database,
// not an outage; asking again gets the same answer.
var ErrDamaged = errors.New("the server reports this data damaged in its database")

// OfflineText is the part of the 404 a sumd mirror answers for a version
// it does not hold and cannot get, its origin out of reach, that says so:
// the line reads "not found: <module>@<version>: the mirror of <origin>
// " + OfflineText + ": <why>; <how old its head is>". The rest is for the
// go command's user; this part is fixed so that a client can tell the
// outage from a version the database lacks.
const OfflineText = "does not hold it and is offline"

// ErrOffline marks a mirror's 404 saying it cannot reach its origin (the
// line holds OfflineText): an outage, not a version the database lacks.
// NotFound is false for it.
var ErrOffline = errors.New("the mirror does not hold it and cannot reach its origin")

// ErrTooLarge marks a 200 whose body is over its cap (in a *FetchError):
// the server was reached and answered more than the protocol sends there;
// a retry would not shrink it.
var ErrTooLarge = errors.New("response too large")

// A BodyError is an answer of 200 OK whose body is not what the protocol
// serves at its path at all, such as a body that is not a signed note at
// /latest: the page of something between the client and the database (a
// corporate proxy's, a captive portal's, a login page) or a broken
// database's. Nothing in it claims to be the database's data, so it is no
// evidence of misbehaviour, as a signed note with a bad signature is. It
// comes wrapped in a *FetchError (NotProtocol): the data could not be
// obtained.
type BodyError struct {
	Want  string // what the protocol serves there, e.g. "a signed note"
	Size  int    // the body's length
	Type  string // its content type as sniffed (http.DetectContentType)
	Start []byte // its first bytes, at most MaxBodyStart; nil: not quoted
}

func (e *BodyError) Error() string {
	msg := fmt.Sprintf("the server answered with %d bytes of %s, not %s: a proxy's or a login page?", e.Size, e.Type, e.Want)
	if e.Start == nil {
		return msg + " They are not quoted"
	}
	return fmt.Sprintf("%s They begin %q", msg, e.Start)
}

// MaxBodyStart caps the bytes of a BodyError's body quoted.
const MaxBodyStart = 64

// NotProtocol returns the failure to fetch path, answered 200 with body,
// which is not want: a *FetchError wrapping a *BodyError that names the
// body's sniffed type and length and, if quote, its first bytes. A caller
// whose messages a database must not fill with a body from a host a
// redirect led to, which only the caller can reach, does not quote.
func NotProtocol(path, want string, body []byte, quote bool) error {
	be := &BodyError{Want: want, Size: len(body), Type: http.DetectContentType(body)}
	if quote {
		be.Start = append([]byte{}, body[:min(len(body), MaxBodyStart)]...)
	}
	return &FetchError{Path: path, Status: http.StatusOK, Err: be}
}

// IsNote reports whether msg is a signed note, whoever signed it: only a
// note claims to be a database's data and can be evidence against it; a
// body that is not one is a *BodyError (NotProtocol).
func IsNote(msg []byte) bool {
	_, err := note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	return errors.As(err, &unverified)
}

// retryable reports whether a failure may be transient: a server error, a
// rate limit, a timeout or a connection cut mid-way, before the answer or
// in a 200's body. A refused connection or an unknown host is not: the
// URL is wrong or the server is down, and saying so at once is more useful
// than retrying.
func retryable(status int, err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrDamaged):
		return false
	case status != 0 && status != http.StatusOK:
		return status >= 500 || status == http.StatusTooManyRequests
	case errors.As(err, &ne) && ne.Timeout():
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// getOnce makes one request and returns the body, the status and an error
// for anything but a 200 with a body within limit.
func (c *Client) getOnce(ctx context.Context, path string, limit int64) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("User-Agent", c.ua)
	if c.auth != nil {
		if err := c.auth(req); err != nil {
			return nil, 0, err
		}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, statusError(req.URL, resp)
	}
	if resp.ContentLength > limit {
		return nil, resp.StatusCode, fmt.Errorf("%w: %d bytes, more than the %d bytes allowed", ErrTooLarge, resp.ContentLength, limit)
	}
	data, err := readBody(resp, limit)
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("failed to read response: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, resp.StatusCode, fmt.Errorf("%w: more than the %d bytes allowed", ErrTooLarge, limit)
	}
	return data, resp.StatusCode, nil
}

// readBody reads up to limit+1 bytes of the body, in one allocation when
// the server says how long it is (data tiles are tens of KiB).
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	if n := resp.ContentLength; n >= 0 {
		data := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, data); err != nil {
			return nil, err
		}
		return data, nil
	}
	return io.ReadAll(io.LimitReader(resp.Body, limit+1))
}

// statusError describes a non-200 answer to a request of asked, quoting
// the server's reason when it sends one as text/plain, as the go command
// does, but only the database's own: a redirect (followed as the go command
// does, since proxies relaying a database may redirect to storage) may
// lead to a host that only the client can reach, and a hostile database
// must not get that host's answers quoted in the client's logs.
func statusError(asked *url.URL, resp *http.Response) error {
	msg := resp.Status
	if u := resp.Request.URL; u.Scheme != asked.Scheme || u.Host != asked.Host {
		return fmt.Errorf("%s from %s, where a redirect led (its reason is not quoted)", msg, u.Host)
	}
	ctype, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ctype == "text/plain" {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxReason))
		line, _, _ := strings.Cut(string(body), "\n")
		if resp.StatusCode == http.StatusInternalServerError && strings.TrimSpace(line) == DamagedText {
			return fmt.Errorf("%s: %w", msg, ErrDamaged)
		}
		if reason := strings.TrimSpace(line); reason != "" {
			msg += ": " + Quote(reason)
		}
		// Anywhere in the line: a long module path comes before it.
		if resp.StatusCode == http.StatusNotFound && strings.Contains(line, " "+OfflineText+": ") {
			return fmt.Errorf("%s: %w", msg, ErrOffline)
		}
	}
	return errors.New(msg)
}

// maxReason caps the text error body read for its first line: the whole
// line of a mirror's offline 404, OfflineText after a module path of
// thousands of bytes.
const maxReason = MaxLatest

// maxQuote caps the server's text that Quote keeps: enough for any real
// module path and reason, and a report that quotes a record in each of
// its thousand problems stays under a megabyte.
const maxQuote = 512

// Quote returns s, text a server chose, fit to quote in an error or a
// report: cut to its first maxQuote bytes, with an ellipsis, since a
// hostile server could send a megabyte in a record or a reason, and with
// control characters replaced, since it could write escape sequences to
// the terminal showing them.
func Quote(s string) string {
	if len(s) > maxQuote {
		n := maxQuote
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return strings.Map(printable, s)
}

// printable replaces control characters, C1 ones too (a terminal may take
// U+009B for an escape sequence's start).
func printable(r rune) rune {
	if unicode.IsControl(r) {
		return '?'
	}
	return r
}
