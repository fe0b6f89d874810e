package audit

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/testnet"
)

// The fetcher's retries, timeouts and caps are tested in
// internal/sumdbclient; these tests check how an audit reports them.

// TestSizeCaps checks that an oversized body is refused, even without a
// Content-Length, and is not retried.
func TestSizeCaps(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.(http.Flusher).Flush() // no Content-Length: the cap must hold while reading
		w.Write(make([]byte, sumdbclient.MaxLatest+1))
	}))
	defer srv.Close()
	rep, err := audit(t, srv.URL, testVerifierKey(t), nil)
	if err == nil || !strings.Contains(err.Error(), "response too large: more than the 16384 bytes allowed") || calls.Load() != 1 {
		t.Errorf("audit of a huge /latest = %v after %d calls", err, calls.Load())
	}
	if rep.OK || rep.Error == "" {
		t.Errorf("report %+v, want not OK with the error", rep)
	}
}

// TestUserAgentAndPath checks the requests: the User-Agent, and paths
// under the base URL's path.
func TestUserAgentAndPath(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("User-Agent")+" "+r.URL.Path)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	audit(t, srv.URL+"/sumdb/sum.golang.org", testVerifierKey(t), func(o *Options) { o.UserAgent = "sumd-verify/v1.2.3" })
	if len(got) != 1 || got[0] != "sumd-verify/v1.2.3 /sumdb/sum.golang.org/latest" {
		t.Errorf("requests %q", got)
	}
}

// TestUnreachable checks that a server that is not there is an error (the
// audit could not run), not a problem.
func TestUnreachable(t *testing.T) {
	url := "http://" + testnet.RefusingAddr(t)
	rep, err := audit(t, url, testVerifierKey(t), nil)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Status != 0 || len(rep.Problems) != 0 || rep.OK {
		t.Errorf("audit of a closed port = %v, %s", err, problems(rep))
	}
}

// TestBadOptions checks the options Run refuses before any request.
func TestBadOptions(t *testing.T) {
	for _, tc := range []struct{ url, vkey, want string }{
		{"ftp://x", testVerifierKey(t), "want http:// or https://"},
		{"http://x/?q=1", testVerifierKey(t), "no ?query"},
		{"http://user:secret@x/?q", testVerifierKey(t), "http://user:xxxxx@x/"},
		{"http://x", "sum.example+1234+AAAA", "invalid verifier key"},
	} {
		_, err := audit(t, tc.url, tc.vkey, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("audit(%q, %q) = %v, want %q", tc.url, tc.vkey, err, tc.want)
		}
	}
}

func testVerifierKey(t *testing.T) string {
	_, vkey := newFakeLog(t, nil)
	return vkey
}

// TestLatestNotANote: a /latest answered 200 with a page that is not a
// signed note at all (a corporate proxy's, a captive portal's) was a
// signature problem, though nothing in it claims to be the database's
// head. It is a failure to fetch now, naming what came back (its type and
// length, not its bytes: a redirect may have led to a host only the
// auditor reaches); a signed note with a bad or unknown signature stays a
// signature problem (TestBadSignature, TestWrongKey).
func TestLatestNotANote(t *testing.T) {
	page := "<!DOCTYPE html>\n<html><head><title>Access denied</title></head><body>Sign in at http://sso.corp.internal/</body></html>\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(page))
	}))
	defer srv.Close()
	rep, err := audit(t, srv.URL, testVerifierKey(t), nil)
	var fe *FetchError
	var be *sumdbclient.BodyError
	if !errors.As(err, &fe) || fe.Path != "/latest" || !errors.As(err, &be) || len(rep.Problems) != 0 || rep.OK {
		t.Fatalf("audit of an HTML /latest = %v, %s; want a failure to fetch naming the body, no problem", err, problems(rep))
	}
	for _, want := range []string{"text/html", fmt.Sprintf("%d bytes", len(page)), "not a signed note", srv.URL + "/latest"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("audit of an HTML /latest = %v, want it to say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "corp.internal") || rep.Error != err.Error() {
		t.Errorf("audit of an HTML /latest = %v (report %q), want the body not quoted", err, rep.Error)
	}
}

// TestTilesAndLookupsNotProtocol: a proxy that answers 200 with its page
// for some paths only (hash tiles, data tiles, lookups) made the audit
// report a tile mismatch, malformed data tiles or lookups that do not
// verify, findings about the database, as the mirror no longer does. Such
// a body claims nothing: the audit stops on a failure to fetch naming it,
// as for /latest (TestLatestNotANote), with no problem reported. A body
// that begins as a data tile or a lookup does stays a finding
// (TestMalformedDataTile, TestGosumTamperedLookup), as does a hash tile
// of the right length whose hashes do not match (TestTamperedHashTile).
func TestTilesAndLookupsNotProtocol(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	page := []byte("<!DOCTYPE html>\n<html><body>Sign in at http://sso.corp.internal/</body></html>\n")
	gosum := func(o *Options) { o.GoSum = []string{writeGoSum(t, goSumOf(3, 300))} }
	for _, c := range []struct {
		prefix      string
		afterLookup bool // only once a lookup was asked: the hash tiles the go.sum check reads
		set         func(*Options)
	}{
		{"/tile/8/0/", false, nil},
		{"/tile/8/1/", false, nil},
		{"/tile/8/", true, gosum},
		{"/tile/8/data/", false, func(o *Options) { o.Full = true }},
		{"/lookup/", false, gosum},
	} {
		var looked atomic.Bool
		srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
			if strings.HasPrefix(path, "/lookup/") {
				looked.Store(true)
			}
			if strings.HasPrefix(path, c.prefix) && (!c.afterLookup || looked.Load()) {
				return http.StatusOK, page
			}
			return status, body
		})
		rep, err := audit(t, srv.URL, tl.vkey, c.set)
		var be *sumdbclient.BodyError
		if !errors.As(err, &be) || len(rep.Problems) != 0 || rep.OK {
			t.Errorf("%s answered with a page: audit = %v, %s; want a failure to fetch naming the body, no problem", c.prefix, err, problems(rep))
			continue
		}
		if strings.Contains(err.Error(), "corp.internal") {
			t.Errorf("%s answered with a page: audit = %v, want the body not quoted", c.prefix, err)
		}
	}
}
