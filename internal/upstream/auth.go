package upstream

import (
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

	"github.com/sumd-project/sumd/internal/secret"
)

// An AuthKind is how sumd authenticates to a source.
type AuthKind string

const (
	AuthNone   AuthKind = ""       // no credentials
	AuthBasic  AuthKind = "basic"  // HTTP basic: User and the password in File
	AuthBearer AuthKind = "bearer" // Authorization: Bearer <the token in File>
	AuthNetrc  AuthKind = "netrc"  // basic, with the credentials of the host in the .netrc File
)

// Auth says which credentials to send to one source. It holds no secret,
// only where to read it: secrets are read from File at every request, so
// they can be rotated without a restart and never sit in configuration,
// logs or error messages. Files are trimmed of surrounding white space.
type Auth struct {
	Kind AuthKind
	User string // basic only
	File string // password (basic), token (bearer) or .netrc (netrc) file
}

// maxSecretFile caps a password or token file; maxNetrcFile a .netrc.
const (
	maxSecretFile = 64 << 10
	maxNetrcFile  = 1 << 20
)

// ParseAuth parses an Auth written as
//
//	none                  no credentials (also the empty string)
//	basic:USER:FILE       basic auth, password read from FILE
//	bearer:FILE           bearer token read from FILE
//	netrc:FILE            basic auth from the .netrc FILE, matched by host
//	netrc                 the same with $NETRC, or ~/.netrc as the go command
func ParseAuth(s string) (Auth, error) {
	kind, rest, _ := strings.Cut(s, ":")
	var a Auth
	switch kind {
	case "", "none":
		if rest != "" {
			return Auth{}, fmt.Errorf("invalid auth %q: none takes no argument", s)
		}
	case "basic":
		user, file, ok := strings.Cut(rest, ":")
		if !ok || user == "" || file == "" {
			return Auth{}, errors.New("invalid basic auth: want basic:USER:PASSWORD_FILE")
		}
		a = Auth{Kind: AuthBasic, User: user, File: file}
	case "bearer":
		a = Auth{Kind: AuthBearer, File: rest}
	case "netrc":
		a = Auth{Kind: AuthNetrc, File: rest}
		if rest == "" {
			a.File = defaultNetrc()
		}
	default:
		return Auth{}, fmt.Errorf("invalid auth kind %q: want none, basic, bearer or netrc", kind)
	}
	if a.Kind != AuthNone && a.File == "" {
		return Auth{}, fmt.Errorf("invalid %s auth: no file named", a.Kind)
	}
	return a, nil
}

// ApplyAuth sets the credentials of sources from spec, as written in
// configuration: one Auth for all (see ParseAuth), or "HOST=AUTH,HOST=AUTH"
// for each proxy by host (host:port as in its URL; every source on that
// host). A host named twice, or one that is no source's, is an error: the
// credentials would silently go unused. One basic or bearer Auth for
// proxies on more than one host is an error too: it would hand one
// proxy's token or password to the others (an internal proxy's to
// proxy.golang.org, say); a .netrc picks by host and may serve them all.
// On error, sources are unchanged.
func ApplyAuth(sources []Source, spec string) error {
	hosts := make([]string, len(sources))
	for i, s := range sources {
		u, err := url.Parse(s.URL)
		if err != nil {
			return fmt.Errorf("invalid upstream proxy URL: %w", err)
		}
		hosts[i] = u.Host
	}
	if !strings.Contains(spec, "=") {
		a, err := ParseAuth(spec)
		if err != nil {
			return err
		}
		if a.Kind == AuthBasic || a.Kind == AuthBearer {
			if err := oneHost(hosts, a.Kind); err != nil {
				return err
			}
		}
		for i := range sources {
			sources[i].Auth = a
		}
		return nil
	}
	byHost := map[string]Auth{}
	for entry := range strings.SplitSeq(spec, ",") {
		host, as, ok := strings.Cut(entry, "=")
		if !ok || host == "" {
			return fmt.Errorf("malformed entry %q: want HOST=AUTH", entry)
		}
		a, err := ParseAuth(as)
		if err != nil {
			return fmt.Errorf("entry for %s: %w", host, err)
		}
		if _, dup := byHost[host]; dup {
			return fmt.Errorf("two entries for %s", host)
		}
		byHost[host] = a
	}
	used := map[string]bool{}
	for _, host := range hosts {
		used[host] = true
	}
	for host := range byHost {
		if !used[host] {
			return fmt.Errorf("credentials for %s, which is not an upstream proxy's host", host)
		}
	}
	for i, host := range hosts {
		if a, ok := byHost[host]; ok {
			sources[i].Auth = a
		}
	}
	return nil
}

// oneHost refuses one token or password for proxies on several hosts
// (file:// trees, with no host, take no credentials and do not count).
func oneHost(hosts []string, kind AuthKind) error {
	var distinct []string
	for _, h := range hosts {
		if h != "" && !slices.Contains(distinct, h) {
			distinct = append(distinct, h)
		}
	}
	if len(distinct) < 2 {
		return nil
	}
	return fmt.Errorf("one %s credential for proxies on %d hosts (%s) would send the same credentials to each: "+
		"name the host it belongs to, as HOST=%s:...,OTHERHOST=none (or use netrc, which picks by host)",
		kind, len(distinct), strings.Join(distinct, ", "), kind)
}

// defaultNetrc is the .netrc the go command reads.
func defaultNetrc() string {
	if f := os.Getenv("NETRC"); f != "" {
		return f
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".netrc")
}

// String describes a without any secret, for logs.
func (a Auth) String() string {
	switch a.Kind {
	case AuthNone:
		return "none"
	case AuthBasic:
		return "basic:" + a.User + ":" + a.File
	}
	return string(a.Kind) + ":" + a.File
}

// check reads a's file once, so that a missing or unreadable credential is
// found when sumd starts rather than at the first lookup.
func (a Auth) check() error {
	switch a.Kind {
	case AuthNone:
		return nil
	case AuthBasic:
		if strings.Contains(a.User, ":") {
			return errors.New("basic auth user name contains a colon")
		}
	case AuthBearer, AuthNetrc:
	default:
		return fmt.Errorf("unknown auth kind %q", a.Kind)
	}
	_, err := a.read()
	return err
}

// apply adds a's credentials to req. It re-reads the credential file.
func (a Auth) apply(req *http.Request) error {
	if a.Kind == AuthNone {
		return nil
	}
	secret, err := a.read()
	if err != nil {
		return err
	}
	switch a.Kind {
	case AuthBasic:
		req.SetBasicAuth(a.User, secret)
	case AuthBearer:
		req.Header.Set("Authorization", "Bearer "+secret)
	case AuthNetrc:
		// A host the file does not name gets no credentials, as with the
		// go command: the request goes out and the proxy decides.
		if e, ok := lookupNetrc(parseNetrc(secret), req.URL); ok {
			req.SetBasicAuth(e.login, e.password)
		}
	}
	return nil
}

// read returns the content of a's file, trimmed; a password or token file
// must not be empty. A password or token file is a secret like the signing
// key: refused (a *secret.ModeError) if other users may access it. A
// .netrc is the go command's, which reads it whatever its mode.
func (a Auth) read() (string, error) {
	var data []byte
	var err error
	if a.Kind == AuthNetrc {
		data, err = readCapped(a.File, maxNetrcFile)
	} else {
		data, _, err = secret.ReadFile(a.File, maxSecretFile)
	}
	if errors.Is(err, fs.ErrNotExist) && a.Kind != AuthNetrc {
		// Most likely the secret itself where its file belongs: say so
		// without echoing it.
		what := map[AuthKind]string{AuthBasic: "basic:USER:FILE names a FILE holding the password", AuthBearer: "bearer:FILE names a FILE holding the token"}[a.Kind]
		return "", fmt.Errorf("failed to read %s credentials: no such file; %s, not the secret itself", a.Kind, what)
	}
	if err != nil {
		return "", fmt.Errorf("failed to read %s credentials: %w", a.Kind, err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" && a.Kind != AuthNetrc {
		return "", fmt.Errorf("failed to read %s credentials: %s is empty", a.Kind, a.File)
	}
	return s, nil
}

// readCapped reads the file at path, of at most limit bytes.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	case int64(len(data)) > limit:
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
