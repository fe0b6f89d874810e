package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// Response size caps. A hash tile is at most 256 hashes of 32 bytes; a data
// tile holds 256 records of at most a few hundred bytes each in practice
// (gosum.MaxRecordSize is 2 KiB), so 1 MiB, the limit common clients use,
// leaves ample room. A signed head is about 200 bytes even with a few
// witness cosignatures; a lookup is a record plus a head.
const (
	maxHashTile = 256 * 32
	maxDataTile = 1 << 20
	maxLatest   = 16 << 10
	maxLookup   = 32 << 10
)

// A FetchError is a request the server did not answer with 200 OK and a
// body within its size cap, even after retries. It stops the audit: the
// data needed could not be obtained, which says nothing either way about
// the database's honesty.
type FetchError struct {
	Path   string // the protocol path, e.g. /tile/8/data/000
	Status int    // the HTTP status, 0 if there was no response
	Err    error  // the cause
}

func (e *FetchError) Error() string { return fmt.Sprintf("failed to fetch %s: %v", e.Path, e.Err) }
func (e *FetchError) Unwrap() error { return e.Err }

// notFound reports whether err is a 404 or 410 answer.
func notFound(err error) bool {
	var fe *FetchError
	return errors.As(err, &fe) && (fe.Status == http.StatusNotFound || fe.Status == http.StatusGone)
}

// A fetcher GETs protocol paths from one database. It is safe for
// concurrent use.
type fetcher struct {
	base     string // the base URL without a trailing slash; paths start with "/"
	client   *http.Client
	ua       string
	auth     func(*http.Request) error // adds credentials; nil: none
	attempts int                       // tries per request, the first included
	backoff  time.Duration             // wait before the second try; doubled after each
}

func newFetcher(base, ua string, timeout time.Duration, parallel int) *fetcher {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = timeout
	// Every worker keeps its connection between requests.
	tr.MaxIdleConnsPerHost = parallel + 2
	return &fetcher{
		base:     strings.TrimSuffix(base, "/"),
		client:   &http.Client{Transport: tr, Timeout: timeout},
		ua:       ua,
		attempts: 3,
		backoff:  500 * time.Millisecond,
	}
}

// get fetches path, whose body may be at most limit bytes. Transient
// failures (see retryable) are retried a few times with backoff; others
// are not, since retrying would get the same answer.
func (f *fetcher) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	wait := f.backoff
	for attempt := 1; ; attempt++ {
		data, status, err := f.getOnce(ctx, path, limit)
		if err == nil {
			return data, nil
		}
		if attempt >= f.attempts || !retryable(status, err) || ctx.Err() != nil {
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

// errTooLarge marks a body over its cap; a retry would not shrink it.
var errTooLarge = errors.New("response too large")

// retryable reports whether a failure may be transient: a server error, a
// rate limit, a timeout or a connection cut mid-way. A refused connection
// or an unknown host is not: the URL is wrong or the server is down, and
// saying so at once is more useful than retrying.
func retryable(status int, err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, errTooLarge):
		return false
	case status != 0:
		return status >= 500 || status == http.StatusTooManyRequests
	case errors.As(err, &ne) && ne.Timeout():
		return true
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// getOnce makes one request and returns the body, the status and an error
// for anything but a 200 with a body within limit.
func (f *fetcher) getOnce(ctx context.Context, path string, limit int64) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+path, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("User-Agent", f.ua)
	if f.auth != nil {
		if err := f.auth(req); err != nil {
			return nil, 0, err
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, statusError(resp)
	}
	if resp.ContentLength > limit {
		return nil, resp.StatusCode, fmt.Errorf("%w: %d bytes, more than the %d bytes allowed", errTooLarge, resp.ContentLength, limit)
	}
	data, err := readBody(resp, limit)
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("failed to read response: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, resp.StatusCode, fmt.Errorf("%w: more than the %d bytes allowed", errTooLarge, limit)
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

// statusError describes a non-200 answer, quoting the server's reason when
// it sends one as text/plain, as the go command does.
func statusError(resp *http.Response) error {
	msg := resp.Status
	ctype, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ctype == "text/plain" {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if line, _, _ := strings.Cut(string(body), "\n"); strings.TrimSpace(line) != "" {
			msg += ": " + strings.Map(printable, strings.TrimSpace(line))
		}
	}
	return errors.New(msg)
}

// printable replaces control characters so that a hostile server cannot
// write escape sequences to the auditor's terminal.
func printable(r rune) rune {
	if r < ' ' || r == 0x7f {
		return '?'
	}
	return r
}
