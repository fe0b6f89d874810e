package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
)

// maxAnswer caps the answers the client reads: a JSON result or an error.
const maxAnswer = 1 << 20

// A Client calls the admin API of a running sumd.
type Client struct {
	// URL is sumd's base URL, such as https://sumd.example.com.
	URL string
	// Token is the admin token (see ReadTokenFile).
	Token string
	// Auth, if set, adds the credentials to each request instead of Token:
	// an admin's basic credentials or token, for a server whose access
	// layer knows them (sumd serve -read-auth).
	Auth func(*http.Request) error
	// HTTPClient sends the requests; nil means http.DefaultClient. Its
	// CheckRedirect is not used: no request follows a redirect (see
	// RedirectError).
	HTTPClient *http.Client

	// sleep waits between attempts (tests replace it); nil means a timer
	// that stops early when the context ends.
	sleep func(context.Context, time.Duration) error
}

// Fetch and Add are idempotent (a version recorded again with the same
// hashes is a no-op), so they are sent again when the server, or a proxy
// in front of it, answers that it cannot take them now: 503 (the log is
// busy, the disk is low, a restart behind a load balancer) or 429. They
// wait for the answer's Retry-After (at most maxRetryWait) or else 1, 2,
// 4 s, and give up after maxAttempts with the last answer. 502 and 504 are
// not retried: sumd answers them for its upstream's failures, a wrong
// credential as much as a timeout of a minute. Failures to connect are not
// retried either: they are more often a wrong -server than a restart, and
// a user should hear about that at once.
const (
	maxAttempts  = 4
	maxRetryWait = 30 * time.Second
)

// An Error is a non-200 answer of the API: its status and text.
type Error struct {
	Status  int
	Message string

	retryAfter time.Duration // the answer's Retry-After, if any
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Fetch asks sumd to fetch m from its upstream proxy and record it.
func (c *Client) Fetch(ctx context.Context, m module.Version) (*Result, error) {
	body, err := json.Marshal(map[string]string{"module": m.Path, "version": m.Version})
	if err != nil {
		return nil, err
	}
	data, err := c.doRetry(ctx, "/admin/fetch", "application/json", body)
	if err != nil {
		return nil, err
	}
	return decodeResult(data)
}

// Upload sends the module zip at zipPath, and the go.mod at modPath unless
// it is "", for sumd to hash and record as m. Files are streamed, not read
// into memory.
func (c *Client) Upload(ctx context.Context, m module.Version, zipPath, modPath string) (*Result, error) {
	files := []struct{ field, path string }{{"zip", zipPath}, {"mod", modPath}}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("failed to upload %s: %w", m, err)
		}
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeUpload(mw, m, files[0].path, files[1].path))
	}()
	res, err := c.post(ctx, "/admin/upload", mw.FormDataContentType(), pr)
	pr.Close() // stops the writer if the server answered early
	return res, err
}

// writeUpload writes the multipart body: text fields first, then files.
func writeUpload(mw *multipart.Writer, m module.Version, zipPath, modPath string) error {
	if err := mw.WriteField("module", m.Path); err != nil {
		return err
	}
	if err := mw.WriteField("version", m.Version); err != nil {
		return err
	}
	if err := writeFile(mw, "zip", zipPath); err != nil {
		return err
	}
	if modPath != "" {
		if err := writeFile(mw, "mod", modPath); err != nil {
			return err
		}
	}
	return mw.Close()
}

func writeFile(mw *multipart.Writer, field, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := mw.CreateFormFile(field, field)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}

// Add sends recs, at most tlog.MaxAddRecords, to be recorded all or
// nothing, as go.sum lines; with check, to be checked only (the answer
// lists the conflicts, each at the line of its record: record i's lines
// are 2i+1 and 2i+2). An add with conflicts is an *Error with status 409
// naming each.
func (c *Client) Add(ctx context.Context, recs []gosum.Record, check bool) (*AddResult, error) {
	var body bytes.Buffer
	for _, r := range recs {
		body.Write(r.Text())
	}
	path := "/admin/add"
	if check {
		path += "?check=1"
	}
	data, err := c.doRetry(ctx, path, "text/plain; charset=utf-8", body.Bytes())
	if err != nil {
		return nil, err
	}
	var res AddResult
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("failed to decode the answer: %w", err)
	}
	return &res, nil
}

// CheckAccess asks the server whether it would take this client's adds,
// changing nothing: a check (add?check=1) of one made-up version, whose
// answer is not read. A wrong URL or credentials, a server whose admin API
// is off or that records nothing, fail it as they would fail an add; a
// client with much to read first (sumd add -gosum sorts its files) asks
// it before, rather than learn them after.
func (c *Client) CheckAccess(ctx context.Context) error {
	_, err := c.Add(ctx, []gosum.Record{accessProbe}, true)
	return err
}

// accessProbe is CheckAccess's version: a module of the reserved domain
// .invalid, which no log holds, with no content's hashes.
var accessProbe = gosum.Record{Path: "sumd.invalid/access-check", Version: "v0.0.0", Hash: noContent, GoMod: noContent}

// post sends body to path and decodes the result.
func (c *Client) post(ctx context.Context, path, ctype string, body io.Reader) (*Result, error) {
	data, err := c.do(ctx, path, ctype, body)
	if err != nil {
		return nil, err
	}
	return decodeResult(data)
}

func decodeResult(data []byte) (*Result, error) {
	var res Result
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("failed to decode the answer: %w", err)
	}
	return &res, nil
}

// doRetry is do for an idempotent request, sent again while the answer says
// to try later (see maxAttempts).
func (c *Client) doRetry(ctx context.Context, path, ctype string, body []byte) ([]byte, error) {
	sleep := c.sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	backoff := time.Second
	for attempt := 1; ; attempt++ {
		data, err := c.do(ctx, path, ctype, bytes.NewReader(body))
		var ae *Error
		if err == nil || attempt == maxAttempts || !errors.As(err, &ae) || !retryable(ae.Status) {
			return data, err
		}
		wait := backoff
		if ae.retryAfter > 0 {
			wait = min(ae.retryAfter, maxRetryWait)
		}
		backoff *= 2
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%w (gave up waiting to try again: %w)", ae, err)
		}
	}
}

func retryable(status int) bool {
	switch status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		return true
	}
	return false
}

// retryAfter reads a Retry-After header, in seconds or as an HTTP date; 0
// if absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, int(maxRetryWait/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// do sends body to path and returns the body of a 200 answer; another
// status is an *Error.
func (c *Client) do(ctx context.Context, path, ctype string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("failed to build request: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("failed to read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &Error{Status: resp.StatusCode, Message: strings.TrimSpace(string(data)), retryAfter: retryAfter(resp.Header, time.Now())}
	}
	return data, nil
}

// send sends req with the client's credentials: Auth if set, else the admin
// token as a bearer token.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.Auth != nil {
		if err := c.Auth(req); err != nil {
			return nil, err
		}
	} else {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	client := http.Client{}
	if c.HTTPClient != nil {
		client = *c.HTTPClient
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
		resp.Body.Close()
		return nil, redirectError(req, resp.StatusCode, loc)
	}
	return resp, nil
}

// redirectError describes a redirect of req to loc.
func redirectError(req *http.Request, status int, loc string) *RedirectError {
	e := &RedirectError{Status: status, Location: loc}
	if u, err := req.URL.Parse(loc); err == nil {
		e.Location = u.Redacted()
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		// Only the API's path (/admin/...) is cut: the rest of the
		// request's path is the client URL's own (https://host/sumd), which
		// Base keeps.
		api := req.URL.Path[max(strings.LastIndex(req.URL.Path, "/admin/"), 0):]
		if base, ok := strings.CutSuffix(u.String(), api); ok {
			e.Base = base
		}
	}
	return e
}

// A RedirectError is a redirect answer to an admin request. The client
// follows none: net/http would carry the credentials to the same host on
// another scheme or port (see package redirect), and a redirected POST is
// better sent again, by the user, to the right URL.
type RedirectError struct {
	Status   int
	Location string // where the answer pointed, as sent
	// Base is Location without the API's path (/admin/...) and query, when
	// it ends with that path: the URL to use instead of Client.URL.
	Base string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("%d %s: the server redirected to %s, and admin requests do not follow redirects", e.Status, http.StatusText(e.Status), e.Location)
}
