package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestSelectedLookupFailureDoesNotStallRound: a go.sum version whose
// lookup the origin cannot answer (here the offline 404 of an origin that
// is itself a mirror; a persistent 5xx or damaged data likewise) failed
// every round before it fetched /latest, so a partial mirror never took a
// new head. The version is logged and counted as missing now, and the
// round goes on.
func TestSelectedLookupFailureDoesNotStallRound(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, _ := newMirror(t, o)
	gs := filepath.Join(t.TempDir(), "go.sum")
	lines := append([]byte(testRecord(5, 1).Text()), testRecord(99999, 1).Text()...)
	if err := os.WriteFile(gs, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	sel, err := ParseSelection([]string{gs})
	if err != nil {
		t.Fatal(err)
	}
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel })
	bad := "/lookup/" + testRecord(99999, 1).Path + "@"
	o.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, bad) {
			http.Error(w, "not found: x@v1.1.0: the mirror of "+testName+" "+sumdbclient.OfflineText+": it cannot reach its origin; its tree head (300 records) was never confirmed current", http.StatusNotFound)
			return
		}
		o.h.ServeHTTP(w, r)
	}))
	if _, err := f.Sync(ctx); err != nil {
		t.Fatalf("first round: %v", err)
	}
	o.grow(300, 100)
	res, err := f.Sync(ctx)
	if err != nil {
		t.Fatalf("second round: %v", err)
	}
	if n := m.Published().Tree.N; n != 400 {
		t.Errorf("the mirror holds tree %d, the origin serves 400: one unanswerable go.sum version stalls it", n)
	}
	if res.Missing != 1 {
		t.Errorf("the round counted %d versions missing, want the one its origin could not answer", res.Missing)
	}
	if _, err := m.ReadRecords(ctx, 5, 1); err != nil {
		t.Errorf("the version the origin answered was not stored: %v", err)
	}
}

// TestProblemTextOffline: an origin that is itself a mirror and answers
// its offline 404 is named so in the status, not as "answered 404".
func TestProblemTextOffline(t *testing.T) {
	err := &sumdbclient.FetchError{Path: "/lookup/x@v1.0.0", Status: http.StatusNotFound,
		Err: fmt.Errorf("404 Not Found: %w", sumdbclient.ErrOffline)}
	if got := problemText(err); strings.Contains(got, "404") || !strings.Contains(got, "cannot reach its own origin") {
		t.Errorf("problemText(%v) = %q, want it to say the origin cannot reach its own", err, got)
	}
	if !errors.Is(err, sumdbclient.ErrOffline) {
		t.Fatal("the test's error is not an offline 404")
	}
}
