package upstream

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzFirstLine: whatever body an upstream sends with its 404, the reason
// sumd passes on to clients is one line of valid UTF-8 of at most about
// 300 bytes without control characters, and never names the upstream.
func FuzzFirstLine(f *testing.F) {
	for _, s := range []string{
		"not found: example.com/m@v1.0.0: invalid version: unknown revision v1.0.0\n",
		"gone from proxy.corp.example:3000 (see https://proxy.corp.example:3000/help)",
		"\x00\x1b[31mred\r\nsecond line", "", "\n\n",
	} {
		f.Add(s, "https://proxy.corp.example:3000")
	}
	f.Add("in /srv/goproxy/example.com", "file:///srv/goproxy")
	f.Fuzz(func(t *testing.T, body, base string) {
		srcs, err := ParseList(base)
		if err != nil || len(srcs) != 1 {
			return
		}
		src := srcs[0]
		resp := &http.Response{Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, Body: io.NopCloser(strings.NewReader(body))}
		msg := redactSource(firstLine(resp), src)
		if len(msg) > maxReason+len("…") || !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("reason %q: not one short line", msg)
		}
		for _, name := range []string{src.URL, hostOf(src.URL)} {
			if name != "" && strings.Contains(msg, name) {
				t.Fatalf("reason %q names the upstream %q", msg, name)
			}
		}
	})
}
