package main

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestOriginIsSumGolangOrg: the origins a new mirror without -origin-key
// may follow with sum.golang.org's built-in key are sum.golang.org itself
// and a proxy relaying it; any other gets the built-in key only by mistake.
func TestOriginIsSumGolangOrg(t *testing.T) {
	for url, want := range map[string]bool{
		"https://sum.golang.org":                         true,
		"https://sum.golang.org/":                        true,
		"https://SUM.golang.org:443":                     true,
		"https://proxy.golang.org/sumdb/sum.golang.org":  true,
		"https://athens.corp/sumdb/sum.golang.org/":      true,
		"https://sum.golang.google.cn":                   true,
		"http://127.0.0.1:8080":                          false,
		"https://sumd.corp.example/sumdb/sumd.local":     false,
		"https://sum.golang.org.evil.example":            false,
		"https://corp.example/sumdb/sum.golang.org/more": false,
	} {
		if got := originIsSumGolangOrg(url); got != want {
			t.Errorf("originIsSumGolangOrg(%q) = %v, want %v", url, got, want)
		}
	}
}

// TestMirrorInterruptedHint: a round interrupted (SIGINT, SIGTERM) while
// it waited on the origin fails with a *sumdbclient.FetchError of no
// status wrapping context.Canceled, which mirrorError sorted as an
// origin out of reach: exit 2 and "check -origin and that the origin is
// reachable", for a run the user stopped.
func TestMirrorInterruptedHint(t *testing.T) {
	for _, err := range []error{
		&sumdbclient.FetchError{Path: "/latest", Err: &url.Error{Op: "Get", URL: "https://origin.example/latest", Err: context.Canceled}},
		&sumdbclient.FetchError{Path: "/tile/8/0/000", Status: 503, Err: context.Canceled}, // cancelled in the wait before a retry
		context.Canceled,
	} {
		var ce *cliError
		if !errors.As(mirrorError(err), &ce) || ce.code != 1 || strings.Contains(ce.hint, "reachable") || !strings.Contains(ce.hint, "interrupted") {
			t.Errorf("mirrorError(%v) = %v; want exit 1 and a hint that the run was interrupted", err, mirrorError(err))
		}
	}
}
