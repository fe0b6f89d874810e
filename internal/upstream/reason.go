package upstream

import (
	"net/url"
	"strings"
	"unicode"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// maxReason caps an upstream's reason as sumd passes it on.
const maxReason = 300

// redacted stands for what redactReason removes.
const redacted = "[redacted]"

// redactReason returns msg, a text an upstream wrote about m, as clients
// may see it. Real proxies put their internals there, as Athens does:
//
//	not found: git ls-remote https://git.corp:8443/x.git: exit status 128 (/var/lib/athens/x)
//
// or a proxy behind a redirect: "not found on artifactory.corp (10.0.0.7:8081)".
// So it keeps a word only if it plainly names nothing (letters, digits,
// hyphens, underscores and apostrophes only), is m's path, version or both,
// a release version or "go.mod". Every other word (a URL, a host name with
// a dot, a host:port, an address, a path) becomes "[redacted]". The
// source's URL and host, and those of final, the URL that answered after
// redirects, become "upstream proxy", even as a plain word ("athens"), and
// even where they spell m's path: the client may have asked for the
// proxy's host name to see whether the reason keeps it.
//
// A single-label host name not in those URLs (a word like "buildhost") is
// kept: it cannot be told from an English word.
func redactReason(msg string, m module.Version, src Source, final *url.URL) string {
	secrets := sourceNames(src, final)
	allowed := moduleNames(m)
	words := strings.Fields(msg)
	for i, w := range words {
		core, pre, post := trimPunct(w)
		switch {
		case core == "":
			continue
		case secrets[core] || strings.HasPrefix(core, src.URL):
			// Before the client's words: a client asking for the
			// proxy's host name as a module path would otherwise see
			// it kept, and a wrong guess redacted.
			core = "upstream proxy"
		case plainWord(core) || allowed[core] || stableVersion(core):
			continue
		default:
			core = redacted
		}
		words[i] = pre + core + post
	}
	msg = strings.Join(words, " ")
	// The replacements may have made it longer than firstLine allowed.
	if len(msg) > maxReason {
		msg = strings.ToValidUTF8(msg[:maxReason], "") + "…"
	}
	return msg
}

// sourceNames are the names of the source and of the URL that answered
// that a reason must not show.
func sourceNames(src Source, final *url.URL) map[string]bool {
	names := map[string]bool{src.URL: true}
	urls := []*url.URL{final}
	if u, err := url.Parse(src.URL); err == nil {
		urls = append(urls, u)
		if src.isFile() {
			names[u.Path] = true
		}
	}
	for _, u := range urls {
		if u != nil {
			names[u.Host], names[u.Hostname()] = true, true
		}
	}
	delete(names, "")
	return names
}

// moduleNames are the spellings of m that a reason may show: the client
// asked for m by them.
func moduleNames(m module.Version) map[string]bool {
	names := map[string]bool{m.Path: true, m.Version: true, m.String(): true, "go.mod": true}
	if p, err := module.EscapePath(m.Path); err == nil {
		names[p] = true
	}
	if v, err := module.EscapeVersion(m.Version); err == nil {
		names[v] = true
	}
	// The tag of a module in a subdirectory of its repository is
	// "<subdir>/<version>" (without a /vN suffix): "unknown revision
	// sub/v1.2.3" names what the client asked for.
	elems := strings.Split(m.Path, "/")
	if _, major, ok := module.SplitPathVersion(m.Path); ok && major != "" {
		elems = strings.Split(strings.TrimSuffix(m.Path, major), "/")
	}
	for i := 1; i < len(elems); i++ {
		names[strings.Join(elems[i:], "/")+"/"+m.Version] = true
	}
	delete(names, "")
	return names
}

// trimPunct splits w into its core and the punctuation around it, as in
// "(v1.2.3):". A leading '[' or ':' stays in the core: "[::1]:80" is one
// address.
func trimPunct(w string) (core, pre, post string) {
	core = strings.TrimLeft(w, "({<\"'`")
	pre = w[:len(w)-len(core)]
	core = strings.TrimRight(core, ")]}>\"'`,;:.!?")
	post = w[len(pre)+len(core):]
	return core, pre, post
}

// plainWord reports whether w is made of letters, digits, hyphens,
// underscores and apostrophes only: no dot, colon or slash, so no URL,
// address, path or host name but a single label.
func plainWord(w string) bool {
	return !strings.ContainsFunc(w, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' && r != '_' && r != '\''
	})
}

// stableVersion reports whether w is a release version ("v1.2.3",
// "v2.0.0+incompatible"): a pre-release may spell anything.
func stableVersion(w string) bool {
	return semver.IsValid(w) && semver.Prerelease(w) == "" && semver.Canonical(w) == strings.TrimSuffix(w, "+incompatible")
}
