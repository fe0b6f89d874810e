package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/sumd-project/sumd/internal/regfile"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// A statusError is a non-200 answer from an upstream.
type statusError struct {
	url    string
	final  *url.URL // the URL that answered, after redirects; nil if url
	status int
	msg    string // the first line of the body, if it was text
	// offline: a 404 whose line holds sumdbclient.OfflineText, a sumd
	// mirror's answer that it lacks the version and cannot reach its
	// origin: an outage, not a version the database lacks.
	offline bool
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("GET %s: %d %s", e.url, e.status, http.StatusText(e.status))
	if e.final != nil {
		s += " (from " + e.final.Redacted() + ")"
	}
	if e.msg != "" {
		s += ": " + e.msg
	}
	return s
}

// notFound reports whether the upstream said the file does not exist, the
// only answer after which a "," list moves on.
func (e *statusError) notFound() bool {
	return e.status == http.StatusNotFound || e.status == http.StatusGone
}

// isNotFound reports whether err is a 404 or 410 (or a missing file in a
// file:// tree).
func isNotFound(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.notFound()
}

// isOffline reports whether err is a sumd mirror's 404 saying it cannot
// reach its origin (statusError.offline).
func isOffline(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.offline
}

// errTooLarge is a file over its limit: the version is not a valid module.
type errTooLarge struct {
	what  string
	limit int64
}

func (e *errTooLarge) Error() string {
	return fmt.Sprintf("%s is larger than the limit of %d bytes", e.what, e.limit)
}

// An opener fetches files from upstreams: GET with credentials, or a read
// of a file:// tree. It never follows the body beyond the limit it is given.
type opener struct {
	client *http.Client
}

// open returns the body of base+"/"+rel and its length (-1 if unknown).
// Non-200 answers are *statusError.
func (o *opener) open(ctx context.Context, src Source, rel string) (io.ReadCloser, int64, error) {
	if src.isFile() {
		f, err := openFile(src.URL, rel)
		if err != nil {
			return nil, 0, err
		}
		return f, f.Size(), nil
	}
	return o.get(ctx, src.URL+"/"+rel, src.Auth)
}

// get sends a GET for u with auth and returns the body of a 200 answer.
func (o *opener) get(ctx context.Context, u string, auth Auth) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to build request: %w", err)
	}
	if err := auth.apply(req); err != nil {
		return nil, 0, err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, offline := firstLine(resp, sentSecrets(req))
		se := &statusError{url: u, status: resp.StatusCode, msg: msg, offline: offline && resp.StatusCode == http.StatusNotFound}
		if resp.Request != nil && resp.Request.URL.String() != u {
			se.final = resp.Request.URL
		}
		return nil, 0, se
	}
	return resp.Body, resp.ContentLength, nil
}

// maxReasonBody caps the text error body read for its first line: enough
// for a sumd mirror's offline 404 after a long module path.
const maxReasonBody = 8 << 10

// firstLine returns the first line of a short text error body, cut to 512
// bytes: proxies put their reason there ("not found: unknown revision
// v1.2.3"), and the go command's user deserves to see it. offline reports
// whether the whole line holds sumdbclient.OfflineText, which a long
// module path before it pushes beyond those 512 bytes. Each of secrets,
// the credentials the request carried, is cut out of the line, before it
// is cut to length, which could leave a part of one: a proxy may echo
// them, and the line goes to clients (a 404's) and to logs, which never
// see credentials.
func firstLine(resp *http.Response, secrets []string) (msg string, offline bool) {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		return "", false
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxReasonBody))
	line, _, _ := strings.Cut(string(data), "\n")
	offline = strings.Contains(line, " "+sumdbclient.OfflineText+": ")
	for _, s := range secrets {
		line = strings.ReplaceAll(line, s, redacted)
	}
	line = strings.ToValidUTF8(line[:min(len(line), 512)], "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(line)), offline
}

// sentSecrets returns the credentials req carries, longest first (one
// may hold another: a basic auth header holds the password): the
// Authorization header's value after its scheme, and a basic password.
func sentSecrets(req *http.Request) []string {
	var secrets []string
	if _, cred, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok && strings.TrimSpace(cred) != "" {
		secrets = append(secrets, strings.TrimSpace(cred))
	}
	if _, pass, ok := req.BasicAuth(); ok && pass != "" {
		secrets = append(secrets, pass)
	}
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	return secrets
}

// errNameTooLong is a file:// path with an element longer than the file
// system allows (255 bytes on Linux). Module paths may have longer elements,
// but no GOPROXY file tree can hold such a version: it is invalid there, not
// an upstream failure.
var errNameTooLong = errors.New("a path element is longer than the upstream proxy's file tree allows")

// openFile opens rel in the GOPROXY file tree at the file:// URL base. A
// missing file, or a path through a file or a directory where a file should
// be, is a 404 *statusError; so is anything but a regular file, a FIFO
// included, which regfile refuses rather than waiting for its writer. It
// opens with regfile, not os.Open: the poller registration of os.Open cost
// a first lookup 9 µs for each file. Other errors name the path; callers
// must not show them to clients.
func openFile(base, rel string) (*regfile.File, error) {
	name, err := filePath(base, rel)
	if err != nil {
		return nil, err
	}
	f, err := regfile.Open(name)
	switch {
	case errors.Is(err, regfile.ErrNotRegular):
		return nil, &statusError{url: base + "/" + rel, status: http.StatusNotFound}
	case err != nil:
		return nil, fileError(base, rel, err)
	}
	return f, nil
}

// filePath is the local name of rel in the file:// tree at base.
func filePath(base, rel string) (string, error) {
	u, err := url.Parse(base + "/" + rel)
	if err != nil {
		return "", fmt.Errorf("failed to parse %s/%s: %w", base, rel, err)
	}
	return filepath.FromSlash(u.Path), nil
}

// fileError maps a failure to open or stat rel in a file:// tree as a
// proxy's answer would: missing is a 404, unless the whole tree is
// (errNoTree).
func fileError(base, rel string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		if err := checkTree(base); err != nil {
			return err
		}
		return &statusError{url: base + "/" + rel, status: http.StatusNotFound}
	case errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("%w: %w", errNameTooLong, err)
	default:
		return err
	}
}

// errNoTree is a file:// tree whose root is missing or not a directory:
// a volume not mounted, a directory renamed. Every file in it is missing,
// but that says nothing of any version: the source is down, as a proxy
// that cannot be reached is, not a 404 that the negative cache remembers
// and after which a "," list moves on.
var errNoTree = errors.New("the upstream proxy's file tree is missing")

// checkTree returns errNoTree, with the root's path and why, unless the
// file:// tree at base has a directory at its root. Only a file found
// missing leads here: a lookup of a version the tree lacks costs one stat
// more.
func checkTree(base string) error {
	root, err := filePath(base, "")
	if err != nil {
		return err
	}
	root = filepath.Clean(root)
	fi, err := os.Stat(root)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", errNoTree, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory", errNoTree, root)
	}
	return nil
}

// isFile reports whether src is a file:// tree.
func (src Source) isFile() bool { return strings.HasPrefix(src.URL, "file://") }

// copyLimited copies body to w, failing with *errTooLarge once more than
// limit bytes arrive or are announced, and returns the bytes copied. A
// *writeError of w is returned as it is; other errors are body's.
func copyLimited(w io.Writer, body io.Reader, size, limit int64, what string) (int64, error) {
	if size > limit {
		return 0, &errTooLarge{what, limit}
	}
	n, err := io.Copy(w, io.LimitReader(body, limit+1))
	if we := (*writeError)(nil); errors.As(err, &we) {
		return n, err
	}
	if err != nil {
		return n, fmt.Errorf("failed to read %s: %w", what, err)
	}
	if n > limit {
		return n, &errTooLarge{what, limit}
	}
	return n, nil
}
