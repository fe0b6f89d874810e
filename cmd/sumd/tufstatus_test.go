package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/sumd-project/sumd/internal/tuf"
)

// TestTUFStatusExpiry: sumd tuf status, the command a ceremony checks its
// result with, printed an expired role as "expires ... (in -40h0m0s)" and
// said nothing of a root or targets about to expire, which sumd serve
// warns of 30 days ahead: an operator checking a repository by hand saw
// no problem. It now says "expired ... ago", and warns of a role expired
// and of a root or targets within tuf.ExpiryWarning of expiry, with what
// renews it.
func TestTUFStatusExpiry(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := &tuf.Status{
		Versions: map[string]int64{metadata.ROOT: 3, metadata.TARGETS: 7, metadata.SNAPSHOT: 1772366400, metadata.TIMESTAMP: 1772366400},
		Expires: map[string]time.Time{
			metadata.ROOT:      now.Add(10 * 24 * time.Hour),
			metadata.TARGETS:   now.Add(200 * 24 * time.Hour),
			metadata.SNAPSHOT:  now.Add(3 * 24 * time.Hour),
			metadata.TIMESTAMP: now.Add(-40 * time.Hour),
		},
	}
	var out, errOut bytes.Buffer
	printStatus(&out, st, now)
	printExpiry(&errOut, st, now)
	if !strings.Contains(out.String(), "timestamp version 1772366400 expires 2026-02-27T20:00:00Z (expired 40h ago)") {
		t.Errorf("status of an expired timestamp:\n%s", out.String())
	}
	for _, want := range []string{
		"sumd: warning: the root metadata expires in 10 days: renew it with sumd tuf rotate-root\n",
		"sumd: warning: the timestamp metadata expired 40h ago: clients refuse the repository until sumd serve -tuf re-signs it (with the online keys)\n",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("warnings lack %q:\n%s", want, errOut.String())
		}
	}
	if strings.Contains(errOut.String(), "targets") || strings.Contains(errOut.String(), "snapshot") {
		t.Errorf("warnings about roles far from expiry:\n%s", errOut.String())
	}
}
