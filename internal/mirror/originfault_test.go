package mirror

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestForwardOriginFaults: an origin that is reached and answers, but
// wrongly, is at fault, not out of reach: a lookup it answers 200 with a
// body that is not a lookup answer, a lookup or tiles proving an answer
// that it answers 200 with a body over the cap, a lookup it refuses with a
// 4xx, and tiles proving an answer that it refuses with a 404 each get a
// 502 saying which, naming no URL of the origin's and storing nothing.
// They were the offline 404, "it cannot reach its origin" and "it could
// not fetch in time the tiles".
func TestForwardOriginFaults(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, s := newMirror(t, o)
	sel, _ := ParseSelection([]string{"golang.org/x/*"})
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel })
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	o.grow(300, 10) // a lookup of a newer version needs the origin's tiles
	answer := func(match func(string) bool, status int, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !match(r.URL.Path) {
				o.h.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(status)
			w.Write([]byte(body))
		})
	}
	isLookup := func(p string) bool { return strings.HasPrefix(p, "/lookup/") }
	isAnyTile := func(p string) bool { return strings.HasPrefix(p, "/tile/") }
	for _, tc := range []struct {
		name string
		h    http.Handler
		rec  int    // the record looked up
		want string // in the 502's text
	}{
		{"a lookup answered 200 with an HTML page", answer(isLookup, http.StatusOK, "<html><body>Sign in at http://sso.corp.internal/</body></html>\n"),
			17, "the origin " + testName + " answered the lookup with a malformed answer"},
		{"a lookup answered 200 with a record but no head", answer(isLookup, http.StatusOK, "17\n"+string(testRecord(17, 1).Text())+"\n"),
			17, "the origin " + testName + " answered the lookup with a malformed answer"},
		{"a lookup answered 200 with a record and an HTML page for a head", answer(isLookup, http.StatusOK, "17\n"+string(testRecord(17, 1).Text())+"\n<html><body>Sign in</body></html>\n"),
			17, "the origin " + testName + " answered the lookup with a malformed answer"},
		{"a lookup answered 200 with a body over the cap", answer(isLookup, http.StatusOK, strings.Repeat("17\n", sumdbclient.MaxLookup/3+1)),
			17, "the origin " + testName + " answered the lookup with a body larger than"},
		{"the tiles answered 200 with a body over the cap", answer(isAnyTile, http.StatusOK, strings.Repeat("x", sumdbclient.MaxHashTile+1)),
			305, "the origin " + testName + " answered the tiles that prove its answer with a body larger than"},
		{"a lookup refused with a 403", answer(isLookup, http.StatusForbidden, "forbidden: see http://sso.corp.internal/"),
			17, "the origin " + testName + " refused the lookup"},
		{"the tiles refused with a 404", answer(isAnyTile, http.StatusNotFound, "not found: /srv/tiles"),
			305, "the origin " + testName + " refused the tiles that prove its answer"},
	} {
		o.serve(tc.h)
		r := testRecord(tc.rec, 1)
		before := s.Commits()
		_, err := f.Ops().Lookup(ctx, module.Version{Path: r.Path, Version: r.Version})
		if status(err) != http.StatusBadGateway || !contains(err, tc.want) {
			t.Errorf("%s: lookup = %v (status %d), want a 502 saying %q", tc.name, err, status(err), tc.want)
		}
		if contains(err, sumdbclient.OfflineText) || contains(err, "in time") {
			t.Errorf("%s: lookup = %v: the origin answered, so the mirror is not offline", tc.name, err)
		}
		if contains(err, "127.0.0.1") || contains(err, "corp.internal") || contains(err, "/srv") || contains(err, "/tile/") {
			t.Errorf("%s: lookup = %v: names the origin's URLs or answers, which anonymous clients must not read", tc.name, err)
		}
		if s.Commits() != before {
			t.Errorf("%s: stored", tc.name)
		}
	}
	o.serve(nil)
	r := testRecord(305, 1)
	if id, err := f.Ops().Lookup(ctx, module.Version{Path: r.Path, Version: r.Version}); err != nil || id != 305 {
		t.Fatalf("lookup once the origin answers well = %d, %v", id, err)
	}
	if st := f.Status(); st.SecurityEvents != 0 {
		t.Errorf("status %+v: an answer that is not one, or a refusal, is no security event", st)
	}
}
