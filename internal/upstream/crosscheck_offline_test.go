package upstream

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestCrossCheckOfflineMirror: a sumd mirror as the database that lacks
// the version and cannot reach its origin answers its lookup 404 with
// sumdbclient.OfflineText. That is an outage, not a version the database
// lacks: it fails closed as "could not be reached" by default and open
// when asked, even when the line is long (a long module path). It was
// "has no record of this version", cached as a gone version and never
// failing open.
func TestCrossCheckOfflineMirror(t *testing.T) {
	offline := func(pad int) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, "not found: example.com/m%s@v1.0.0: the mirror of %s %s: dial tcp: connection refused; its tree head (2 records) was last confirmed current 3h ago\n",
				strings.Repeat("x", pad), fakeSumName, sumdbclient.OfflineText)
		}
	}
	for _, tc := range []struct {
		name     string
		pad      int
		failOpen bool
	}{
		{"closed", 0, false},
		{"closed, long line", 600, false},
		{"open", 0, true},
		{"open, long line", 600, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCheckedSetup(t, CheckerOptions{FailOpen: tc.failOpen})
			s.db.add(t, otherRecord(0))
			answer := offline(tc.pad)
			s.proxy.setHook(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, "/supported") || !strings.HasPrefix(r.URL.Path, "/sumdb/") || !strings.Contains(r.URL.Path, "/lookup/") {
					return s.db.serve(w, r)
				}
				answer(w, r)
				return true
			})
			if tc.failOpen {
				s.lookup(t, 200, "0\n")
				if !strings.Contains(s.logs.String(), "recording unchecked (fail-open)") {
					t.Errorf("fail-open recording not logged:\n%s", s.logs)
				}
				return
			}
			s.lookup(t, 502, "upstream proxy error: example.com/m@v1.0.0: cannot cross-check with "+fakeSumName+": it could not be reached")
			if got := s.outcome(checkMissing); got != 0 {
				t.Errorf("missing cross-checks = %v, want 0", got)
			}
		})
	}
}
