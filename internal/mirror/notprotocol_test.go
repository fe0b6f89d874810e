package mirror

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestNotProtocolBodyIsNoSecurityEvent: an origin's /latest, hash tiles or
// data tiles answered 200 with a page that is not the protocol's at all (a corporate
// proxy's, a captive portal's) were a SECURITY event, a signature or
// unverified data, which pages people. Nothing in such a page claims to be
// the origin's data, so it is a failure to fetch now, naming what came
// back: a round fails with a *sumdbclient.FetchError wrapping a
// *BodyError, counts no security event and says so in the status; a
// forwarded lookup whose proving tiles are such a page is a 502 saying
// so. TestRefuses keeps the signal for a signed note that is not the
// origin's, for a well-formed tile whose hashes do not match, and for a
// data tile of the origin's records that does not split into them.
func TestNotProtocolBodyIsNoSecurityEvent(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, s := newMirror(t, o)
	sel, _ := ParseSelection([]string{"golang.org/x/*"})
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel })
	page := "<!DOCTYPE html>\n<html><head><title>Access denied</title></head>\x1b[31m<body>Sign in at http://sso.corp.internal/</body></html>\n"
	portal := func(match func(string) bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !match(r.URL.Path) {
				o.h.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(page))
		})
	}
	isLatest := func(p string) bool { return p == "/latest" }
	isHashTile := func(p string) bool { return strings.HasPrefix(p, "/tile/8/") && !strings.HasPrefix(p, "/tile/8/data/") }
	round := func(name string, h http.Handler) {
		t.Helper()
		o.serve(h)
		before := s.Commits()
		_, err := f.Sync(ctx)
		var be *BodyError
		if IsSecurity(err) || !sumdbclient.IsFetchError(err) || !errors.As(err, &be) {
			t.Fatalf("%s: Sync = %v, want a failure to fetch naming the body, no security event", name, err)
		}
		if !strings.Contains(err.Error(), "text/html") || !strings.Contains(err.Error(), "<!DOCTYPE html>") || strings.Contains(err.Error(), "\x1b") {
			t.Errorf("%s: Sync = %v, want the body's type and its first bytes, escaped", name, err)
		}
		if s.Commits() != before {
			t.Errorf("%s: stored", name)
		}
		st := f.Status()
		if st.SecurityEvents != 0 || strings.Contains(st.Problem, "SECURITY") || !strings.Contains(st.Problem, "not the checksum database's") ||
			strings.Contains(st.Problem, "corp.internal") {
			t.Errorf("%s: status %+v, want no security event and a problem saying what came back, not quoting it", name, st)
		}
	}
	round("/latest answered with an HTML page, a new mirror", portal(isLatest))
	round("hash tiles answered with an HTML page, a new mirror", portal(isHashTile))
	o.serve(nil)
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	round("/latest answered with an HTML page", portal(isLatest))
	o.grow(300, 700)
	round("hash tiles proving the head answered with an HTML page", portal(isHashTile))
	round("data tiles answered with an HTML page", portal(isTile("data")))

	// A forwarded lookup needing tiles proving a newer head.
	o.serve(portal(isHashTile))
	r := testRecord(993, 1)
	before := s.Commits()
	_, err := f.Ops().Lookup(ctx, module.Version{Path: r.Path, Version: r.Version})
	if status(err) != http.StatusBadGateway || !contains(err, "the origin "+testName+" answered the tiles that prove its answer with something that is not") ||
		contains(err, "corp.internal") {
		t.Errorf("forwarded lookup whose tiles are an HTML page = %v (status %d), want a 502 saying so, quoting none of it", err, status(err))
	}
	if s.Commits() != before || f.Status().SecurityEvents != 0 {
		t.Errorf("forwarded lookup whose tiles are an HTML page: stored, or counted as a security event: %+v", f.Status())
	}
	o.serve(nil)
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sameAs(t, m, o.log, func(id int64) bool { return id%10 == 3 })
}
