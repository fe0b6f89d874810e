package upstream

import (
	"strings"
	"testing"

	"golang.org/x/mod/module"
)

// TestRedactReasonSubdirTag: a module in a subdirectory of its repository
// is tagged "<subdir>/<version>", and a proxy's "unknown revision" names
// that tag: it comes from what the client asked for, so it stays, while
// anything else the reason names is redacted.
func TestRedactReasonSubdirTag(t *testing.T) {
	src := Source{URL: "https://athens.corp.example"}
	for _, c := range []struct {
		m          module.Version
		reason, in string
	}{
		{module.Version{Path: "example.com/repo/sub", Version: "v1.2.3"},
			"example.com/repo/sub@v1.2.3: invalid version: unknown revision sub/v1.2.3 at git.corp.example", "unknown revision sub/v1.2.3 at [redacted]"},
		{module.Version{Path: "example.com/repo/sub/v2", Version: "v2.0.1"},
			"invalid version: unknown revision sub/v2.0.1", "unknown revision sub/v2.0.1"},
	} {
		got := redactReason(c.reason, c.m, src, nil)
		if !strings.Contains(got, c.in) || strings.Contains(got, "git.corp.example") {
			t.Errorf("redactReason(%q) = %q, want it to contain %q and no host", c.reason, got, c.in)
		}
	}
}

// TestRedactReasonGuessedHost: a client asking for a module path that is
// the proxy's host name must not see that name where the proxy wrote it,
// or it could tell a right guess (the name shown) from a wrong one
// ("[redacted]"): the proxy's names are checked before the client's.
func TestRedactReasonGuessedHost(t *testing.T) {
	src := Source{URL: "https://athens.corp.example"}
	const reason = "not found on athens.corp.example"
	for _, path := range []string{"athens.corp.example", "other.corp.example"} {
		m := module.Version{Path: path, Version: "v1.0.0"}
		if got := redactReason(reason, m, src, nil); got != "not found on upstream proxy" {
			t.Errorf("module %s: redactReason(%q) = %q, want the host as %q", path, reason, got, "upstream proxy")
		}
	}
}
