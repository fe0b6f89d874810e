package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/admin"
)

// TestRemoteErrorHints: each answer of the admin API gets a hint that says
// what happened to the request and what to do; a refusal by the upstream
// cross-check is not presented as passing, and only a passing failure
// suggests trying again.
func TestRemoteErrorHints(t *testing.T) {
	for status, want := range map[int]string{
		http.StatusUnauthorized:        "credentials are missing or wrong",
		http.StatusConflict:            "can never change",
		http.StatusGone:                "upstream checksum database disagrees",
		http.StatusServiceUnavailable:  "try again shortly",
		http.StatusGatewayTimeout:      "try again shortly",
		http.StatusInternalServerError: "nothing from this request was added",
	} {
		var ce *cliError
		if !errors.As(remoteError(&admin.Error{Status: status, Message: "x"}), &ce) {
			t.Fatalf("status %d: no hint", status)
		}
		if !strings.Contains(ce.hint, want) {
			t.Errorf("status %d: hint %q, want one containing %q", status, ce.hint, want)
		}
		if status == http.StatusGone && strings.Contains(ce.hint, "again") {
			t.Errorf("status %d: hint %q suggests trying again a refusal that does not pass", status, ce.hint)
		}
	}
}
