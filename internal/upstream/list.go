package upstream

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// A Source is one upstream module proxy.
type Source struct {
	// URL is the proxy's base URL, https://, http:// or file:// (an absolute
	// path to a GOPROXY file tree), with no trailing slash, user info, query
	// or fragment.
	URL string
	// FallBackOnError is true when the list separator after this source is
	// "|": the next source is tried after any error. After ",", only a 404
	// or 410 moves on to the next source. Always false for the last source.
	FallBackOnError bool
	// Auth holds the credentials sent to this source; the zero value sends
	// none. ParseList leaves it empty: credentials never live in the list.
	Auth Auth
}

// ParseList parses a GOPROXY-style list of module proxies, as the go command
// does: entries separated by "," (fall through to the next entry only on
// 404 or 410) or "|" (fall through on any error), blank entries ignored, and
// a bare host ("proxy.example.com/go") taken as https://.
//
// "direct" and "off" are refused: sumd records only what a proxy serves, so
// that what it hashes is what the go command downloads. So is a URL with
// user info: credentials belong in a file (see Auth), never in configuration
// that gets logged.
func ParseList(s string) ([]Source, error) {
	var out []Source
	for s != "" {
		entry, fallBack := s, false
		if i := strings.IndexAny(s, ",|"); i >= 0 {
			entry, fallBack, s = s[:i], s[i] == '|', s[i+1:]
		} else {
			s = ""
		}
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		u, err := parseSourceURL(entry)
		if err != nil {
			return nil, err
		}
		out = append(out, Source{URL: u, FallBackOnError: fallBack})
	}
	if len(out) == 0 {
		return nil, errors.New("no upstream proxy: the list is empty")
	}
	out[len(out)-1].FallBackOnError = false // nothing comes after the last
	return out, nil
}

// FormatList is the inverse of ParseList: sources joined by their
// separators. It holds no credentials, so it is safe to log.
func FormatList(sources []Source) string {
	var b strings.Builder
	for i, src := range sources {
		if i > 0 {
			b.WriteString(separator(sources[i-1]))
		}
		b.WriteString(src.URL)
	}
	return b.String()
}

func separator(s Source) string {
	if s.FallBackOnError {
		return "|"
	}
	return ","
}

// parseSourceURL checks one list entry and returns its canonical URL.
func parseSourceURL(entry string) (string, error) {
	switch entry {
	case "direct":
		return "", errors.New(`"direct" is not supported: sumd fetches only from module proxies, never from version control`)
	case "off":
		return "", errors.New(`"off" is not supported: to record nothing from upstream, configure no upstream proxy`)
	}
	// As the go command does: single words are reserved, a full URL or an
	// absolute path is taken as is, and anything else is an https host.
	if !strings.ContainsAny(entry, ".:/") {
		return "", fmt.Errorf("invalid upstream proxy %q: want an https://, http:// or file:// URL", redact(entry))
	}
	if !strings.Contains(entry, ":/") && !path.IsAbs(entry) {
		entry = "https://" + entry
	}
	u, err := url.Parse(entry)
	if err != nil {
		return "", fmt.Errorf("invalid upstream proxy URL %q", redact(entry))
	}
	// Files are joined to the base with "/": drop the base's own.
	u.Path, u.RawPath = strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	if err := checkSourceURL(u); err != nil {
		return "", fmt.Errorf("invalid upstream proxy URL %q: %w", u.Redacted(), err)
	}
	// u.String() may decode "%2C" to ",", which would split the list when
	// it is written back out: keep the separators escaped.
	return strings.NewReplacer(",", "%2C", "|", "%7C").Replace(u.String()), nil
}

// checkSourceURL accepts exactly the URLs a base URL can be joined with.
func checkSourceURL(u *url.URL) error {
	switch {
	case u.User != nil:
		return errors.New("credentials in the URL are not allowed: give them in a file with -upstream-auth (verify: -recheck-auth), such as basic:USER:FILE or bearer:FILE")
	case u.Opaque != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "":
		return errors.New("a proxy URL has no query or fragment")
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" {
			return errors.New("no host")
		}
	case "file":
		if u.Host != "" || !path.IsAbs(u.Path) { // file:/// too: no tree at /
			return errors.New("want file:///absolute/path")
		}
	default:
		return fmt.Errorf("scheme %q is not supported: want https, http or file", u.Scheme)
	}
	return nil
}

// redact hides what may be a password in an entry that did not parse.
func redact(entry string) string {
	if i := strings.LastIndex(entry, "@"); i >= 0 {
		start := strings.Index(entry, "://") + len("://")
		if start < len("://") || start > i {
			start = 0
		}
		return entry[:start] + "xxxxx" + entry[i:]
	}
	return entry
}
