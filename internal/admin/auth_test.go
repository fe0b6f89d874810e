package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/testproxy"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/upstream"
)

// TestAuthenticated: behind an access layer (Authenticated), the handler
// checks no token; the client sends what its Auth hook adds.
func TestAuthenticated(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	s := newSetup(t, Options{Authenticated: true}, goodModule(m.Path, m.Version))
	var sent string
	c := &Client{URL: s.srv.URL, Token: "ignored", Auth: func(r *http.Request) error {
		r.SetBasicAuth("boss", "pw")
		sent = r.Header.Get("Authorization")
		return nil
	}}
	if _, err := c.Fetch(context.Background(), m); err != nil {
		t.Fatalf("Fetch behind an access layer: %v", err)
	}
	if !strings.HasPrefix(sent, "Basic ") {
		t.Errorf("client sent %q, want the Auth hook's basic credentials", sent)
	}
	if n := s.treeSize(t); n != 1 {
		t.Errorf("tree size %d, want 1", n)
	}
	c.Auth = func(*http.Request) error { return errors.New("no credentials") }
	if _, err := c.Fetch(context.Background(), m); err == nil || err.Error() != "no credentials" {
		t.Errorf("Fetch with a failing Auth hook: %v", err)
	}
}

// TestDisabled: a handler not told that a layer in front authenticated
// its requests (Authenticated) is off: 404 everywhere.
func TestDisabled(t *testing.T) {
	srv := httptest.NewServer(New(&fakeRecorder{}, Options{Logger: quiet}))
	defer srv.Close()
	_, err := (&Client{URL: srv.URL, Token: ""}).Fetch(context.Background(), mv("example.com/m", "v1.0.0"))
	wantStatus(t, err, http.StatusNotFound, "the admin API is not enabled on this server")
}

// fakeRecorder fails every request with err.
type fakeRecorder struct{ err error }

func (f *fakeRecorder) Record(ctx context.Context, m module.Version) (int64, gosum.Record, error) {
	return 0, gosum.Record{}, f.err
}
func (f *fakeRecorder) Add(ctx context.Context, rec gosum.Record) (int64, error) { return 0, f.err }
func (f *fakeRecorder) AddRecords(ctx context.Context, recs []gosum.Record) ([]int64, []bool, error) {
	return nil, nil, f.err
}
func (f *fakeRecorder) CheckRecords(ctx context.Context, recs []gosum.Record) ([]int64, []*tlog.ConflictError, error) {
	return nil, nil, f.err
}
func (f *fakeRecorder) Signed(ctx context.Context) ([]byte, error) { return nil, f.err }

// TestErrorStatuses checks how Recorder errors are answered.
func TestErrorStatuses(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	tests := []struct {
		err     error
		status  int
		message string
	}{
		{&server.StatusError{Status: 503, Err: errors.New("failed to record example.com/m@v1.0.0: too many pending additions, try again later")}, 503, "try again later"},
		{&upstream.Error{Kind: upstream.KindGone, Module: m, Err: errors.New("upstream proxy has no such version")}, 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version"},
		{&upstream.Error{Kind: upstream.KindUnavailable, Module: m, Err: errors.New("connection refused")}, 502, "upstream proxy error: example.com/m@v1.0.0: connection refused"},
		{&upstream.Error{Kind: upstream.KindTimeout, Module: m, Err: errors.New("slow")}, 504, "upstream proxy error"},
		{upstream.ErrNoUpstream, 501, "no upstream proxy configured"},
		{errors.New("disk on fire"), 500, "internal error"},
	}
	for _, tt := range tests {
		s := newFakeSetup(t, &fakeRecorder{err: tt.err})
		_, err := s.Fetch(context.Background(), m)
		wantStatus(t, err, tt.status, tt.message)
		if e := err.(*Error); e.Status == 500 && strings.Contains(e.Message, "fire") {
			t.Errorf("an internal error's detail reached the client: %v", e)
		}
	}
}

// fakeSetup is the API over rec, with a client.
type fakeSetup struct {
	*Client
}

func newFakeSetup(t *testing.T, rec Recorder) fakeSetup {
	srv := httptest.NewServer(New(rec, Options{Authenticated: true, Logger: quiet}))
	t.Cleanup(srv.Close)
	return fakeSetup{&Client{URL: srv.URL, Token: testToken}}
}

// TestCrossCheckRefusals: an upload or add the upstream cross-check
// refuses keeps the 410 of upstream.Error, as documented (and as sumd add
// -server's hint for 410 expects): a 409 would be taken for a conflict with
// the log, and a 422 for an invalid zip.
func TestCrossCheckRefusals(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	dir := t.TempDir()
	if _, err := testproxy.Build(dir, []testproxy.Module{goodModule(m.Path, m.Version)}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []upstream.Kind{upstream.KindMismatch, upstream.KindGone} {
		refusal := &upstream.Error{Kind: kind, Module: m, Err: errors.New("the cross-check says no")}
		s := newFakeSetup(t, &fakeRecorder{err: refusal})
		_, err := s.Upload(context.Background(), m, testproxy.ZipPath(dir, m), "")
		wantStatus(t, err, http.StatusGone, "not found: example.com/m@v1.0.0: the cross-check says no")
		_, err = s.Add(context.Background(), []gosum.Record{fakeRec(0, "")}, false)
		wantStatus(t, err, http.StatusGone, "not found: example.com/m@v1.0.0: the cross-check says no")
	}
}

// TestRequests checks methods, paths, bodies and the 503 Retry-After.
func TestRequests(t *testing.T) {
	c := newFakeSetup(t, &fakeRecorder{err: &server.StatusError{Status: 503, Err: errors.New("busy")}})
	tests := []struct {
		method, path, ctype, body string
		status                    int
		message                   string
	}{
		{"GET", "/admin/fetch", "", "", 405, "use POST"},
		{"POST", "/admin/other", "", "", 404, "no such admin endpoint"},
		{"POST", "/admin/fetch", "application/json", `{"module": "example.com/m"`, 400, "invalid JSON body"},
		{"POST", "/admin/fetch", "application/json", `{"module": "example.com/m", "version": "v1.0.0", "x": 1}`, 400, `unknown field "x"`},
		{"POST", "/admin/fetch", "application/json", `{"module": "example.com/m", "version": "latest"}`, 400, "invalid"},
		// A repeated key, or one in another case: encoding/json took the last.
		{"POST", "/admin/fetch", "application/json", `{"module": "example.com/a", "version": "v1.0.0", "module": "example.com/b"}`, 400, `JSON field "module" given twice`},
		{"POST", "/admin/fetch", "application/json", `{"module": "example.com/a", "version": "v1.0.0", "MODULE": "example.com/b"}`, 400, `unknown field "MODULE"`},
		{"POST", "/admin/fetch", "application/json", `{"Module": "example.com/a", "version": "v1.0.0"}`, 400, `unknown field "Module"`},
		{"POST", "/admin/fetch", "application/json", `{"module": null, "version": "v1.0.0"}`, 400, `JSON field "module" must be a string`},
		{"POST", "/admin/fetch", "application/json", `{"module": {"a": 1}, "version": "v1.0.0"}`, 400, `JSON field "module" must be a string`},
		{"POST", "/admin/fetch", "application/json", `["example.com/m", "v1.0.0"]`, 400, "want a JSON object"},
		{"POST", "/admin/fetch", "application/json", `{"module": "example.com/m", "version": "v1.0.0"} {"module": "example.com/n", "version": "v1.0.0"}`, 400, "found data after it: more than one JSON value"},
		{"POST", "/admin/fetch", "application/json", `{"module": "example.com/m", "version": "v1.0.0"}]`, 400, "found data after it"},
		{"POST", "/admin/fetch", "application/json", `{"module": "example.com/m", "version": "v1.0.0"}x`, 400, "found data after it"},
		{"POST", "/admin/fetch", "application/x-www-form-urlencoded", "module=example.com%2Fm&version=v1.0.0&force=1", 400, `unexpected form field "force"`},
		{"POST", "/admin/fetch", "application/x-www-form-urlencoded", "module=example.com%2Fm&version=v1.0.0&module=example.com%2Fn", 400, `form field "module" given 2 times`},
		{"POST", "/admin/fetch", "application/x-www-form-urlencoded", "module=example.com%2Fm", 400, "want both module and version"},
		{"POST", "/admin/fetch", "application/x-www-form-urlencoded", "module=" + strings.Repeat("a", maxFetchBody), 413, "request body larger than"},
		{"POST", "/admin/upload", "application/json", "{}", 400, "want a multipart/form-data body"},
		{"POST", "/admin/upload", "multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"extra\"\r\n\r\nv\r\n--X--\r\n", 400, `unexpected field "extra"`},
		// A repeated module or version: the last one won (a team-a name, then team-b's).
		{"POST", "/admin/upload", "multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"module\"\r\n\r\nexample.com/a\r\n--X\r\nContent-Disposition: form-data; name=\"module\"\r\n\r\nexample.com/m\r\n--X--\r\n", 400, `repeated field "module"`},
		{"POST", "/admin/upload", "multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\nv0.0.1\r\n--X\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\nv1.0.0\r\n--X--\r\n", 400, `repeated field "version"`},
		{"POST", "/admin/upload", "multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"mod\"\r\n\r\nmodule a\r\n--X\r\nContent-Disposition: form-data; name=\"mod\"\r\n\r\nmodule b\r\n--X--\r\n", 400, `repeated field "mod"`},
		{"POST", "/admin/upload", "multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"module\"\r\n\r\nexample.com/m\r\n--X\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\nv1.0.0\r\n--X--\r\n", 400, "no zip file in the upload"},
		{"POST", "/admin/fetch", "application/json", `{"module": "example.com/m", "version": "v1.0.0"}`, 503, "busy"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, c.URL+tt.path, strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", tt.ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.message) {
			t.Errorf("%s %s %q: %d %q, want %d %q", tt.method, tt.path, tt.body, resp.StatusCode, body, tt.status, tt.message)
		}
		if tt.status == 503 && resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
}

// TestParseTokenControl: a token file whose token holds a line break (two
// lines) or another control character is refused: no HTTP header can carry
// it, so the API would be on with a token no client can send, and sumd add
// would fail with net/http's "invalid header field value" and a hint to
// check -server.
func TestParseTokenControl(t *testing.T) {
	for _, data := range []string{testToken + "\n" + testToken, testToken + "\r\nsecond", "0123456789\x00abcdef"} {
		if token, err := ParseToken([]byte(data)); err == nil || !strings.Contains(err.Error(), "control character") {
			t.Errorf("ParseToken(%q) = %q, %v; want an error saying the token holds a control character", data, token, err)
		}
	}
	// White space around the token is no part of it, and a tab inside
	// goes in a header (as do spaces).
	for _, data := range []string{"\n " + testToken + "\r\n\n", testToken + "\tx y"} {
		if _, err := ParseToken([]byte(data)); err != nil {
			t.Errorf("ParseToken(%q): %v", data, err)
		}
	}
}

// TestFetchBodyKinds: a fetch whose body is neither a form nor JSON (a
// multipart body, as curl -F sends and /admin/upload takes; no
// Content-Type) is refused saying which bodies /admin/fetch takes, and JSON
// sent as a form (curl -d without the header) says to set the header:
// both answered "want both module and version", or named the JSON as a
// form field, though the body held both.
func TestFetchBodyKinds(t *testing.T) {
	c := newFakeSetup(t, &fakeRecorder{err: errors.New("recorder reached")})
	json := `{"module":"example.com/m","version":"v1.0.0"}`
	tests := []struct{ ctype, body, message string }{
		{"multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"module\"\r\n\r\nexample.com/m\r\n--X\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\nv1.0.0\r\n--X--\r\n",
			"multipart/form-data"},
		{"", "module=example.com%2Fm&version=v1.0.0", "takes a form"},
		{"text/plain", json, "takes a form"},
		{"application/x-www-form-urlencoded", json, "Content-Type: application/json"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("POST", c.URL+"/admin/fetch", strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		if tt.ctype != "" {
			req.Header.Set("Content-Type", tt.ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tt.message) {
			t.Errorf("fetch with Content-Type %q: %d %q, want 400 saying %q", tt.ctype, resp.StatusCode, body, tt.message)
		}
	}
}
