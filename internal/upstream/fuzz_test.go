package upstream

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// leaky matches what a reason passed on to clients must not hold: a URL, an
// absolute path, a host:port, an IPv4 address or a dotted host name.
var leaky = regexp.MustCompile(`://|(^|[\s(\["'=])/[^\s/]|[\w\]]:\d|\d+\.\d+\.\d+\.\d+|[a-z0-9-]\.[a-z]{2,}`)

// FuzzFirstLine: whatever body an upstream sends with its 404, the reason
// sumd passes on to clients is one line of valid UTF-8 of at most about
// 300 bytes without control characters, and never names the upstream, the
// URL that answered, or any URL, path, address or dotted host name but the
// module's own.
func FuzzFirstLine(f *testing.F) {
	for _, s := range []string{
		"not found: example.com/m@v1.0.0: invalid version: unknown revision v1.0.0\n",
		"gone from proxy.corp.example:3000 (see https://proxy.corp.example:3000/help)",
		"not found: git ls-remote https://git.internal.corp:8443/secret/leak.git: exit status 128 (/var/lib/athens/cache/leak)",
		"not found on internal-artifactory.corp.local (127.0.0.1:18411) [::1]:80",
		"\x00\x1b[31mred\r\nsecond line", "", "\n\n",
	} {
		f.Add(s, "https://proxy.corp.example:3000", "http://internal-artifactory.corp.local/x")
	}
	f.Add("in /srv/goproxy/example.com", "file:///srv/goproxy", "")
	f.Add("athens says no", "https://athens", "http://athens:3000")
	f.Fuzz(func(t *testing.T, body, base, finalURL string) {
		srcs, err := ParseList(base)
		if err != nil || len(srcs) != 1 {
			return
		}
		src := srcs[0]
		final, err := url.Parse(finalURL)
		if err != nil || final.Host == "" {
			final = nil
		}
		m := mv("example.com/m", "v1.0.0")
		resp := &http.Response{Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, Body: io.NopCloser(strings.NewReader(body))}
		line, _ := firstLine(resp, nil)
		msg := redactReason(line, m, src, final)
		if len(msg) > maxReason+len("…") || !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("reason %q: not one short line", msg)
		}
		names := []string{src.URL, hostOf(src.URL)}
		if final != nil {
			names = append(names, final.Host)
		}
		// The module's own name may stay: the client asked for it.
		rest := strings.ReplaceAll(msg, m.Path, "")
		for _, w := range strings.Fields(rest) {
			core, _, _ := trimPunct(w)
			for _, name := range names {
				if name != "" && (core == name || strings.Contains(name, ".") && strings.Contains(core, name)) {
					t.Fatalf("reason %q names the upstream %q", msg, name)
				}
			}
		}
		if loc := leaky.FindStringIndex(strings.ToLower(rest)); loc != nil {
			t.Fatalf("reason %q shows %q", msg, rest[loc[0]:loc[1]])
		}
	})
}
