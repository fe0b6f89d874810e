package audit

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetries checks that server errors are retried with backoff and
// succeed once the server recovers, and that a 404 is not retried.
func TestRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/missing":
			http.Error(w, "not found: nothing here", http.StatusNotFound)
		case n < 3:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	f := newFetcher(srv.URL, "sumd-verify/test", time.Second, 1)
	f.backoff = time.Millisecond

	data, err := f.get(t.Context(), "/x", 10)
	if err != nil || string(data) != "ok" || calls.Load() != 3 {
		t.Errorf("get after two 503s = %q, %v after %d calls; want ok after 3", data, err, calls.Load())
	}
	calls.Store(10)
	_, err = f.get(t.Context(), "/missing", 10)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Status != 404 || !notFound(err) || calls.Load() != 11 {
		t.Errorf("get of a 404 = %v after %d calls; want one try", err, calls.Load()-10)
	}
	if !strings.Contains(err.Error(), "failed to fetch /missing: 404 Not Found: not found: nothing here") {
		t.Errorf("error %q does not quote the server's reason", err)
	}
}

// TestRetryTimeout checks that a request that times out is retried.
func TestRetryTimeout(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select { // hang past the client's timeout
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	f := newFetcher(srv.URL, "ua", 100*time.Millisecond, 1)
	f.backoff = time.Millisecond
	if data, err := f.get(t.Context(), "/latest", 10); err != nil || string(data) != "ok" || calls.Load() != 2 {
		t.Errorf("get = %q, %v after %d calls; want ok after a timeout and a retry", data, err, calls.Load())
	}
}

// TestRetriesGiveUp checks that a server that keeps failing is tried a
// few times only.
func TestRetriesGiveUp(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	f := newFetcher(srv.URL, "ua", time.Second, 1)
	f.backoff = time.Millisecond
	if _, err := f.get(t.Context(), "/latest", 10); err == nil || calls.Load() != 3 {
		t.Errorf("get = %v after %d calls, want an error after 3", err, calls.Load())
	}
}

// TestSizeCaps checks that an oversized body is refused, even without a
// Content-Length, and is not retried.
func TestSizeCaps(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.(http.Flusher).Flush() // no Content-Length: the cap must hold while reading
		w.Write(make([]byte, maxLatest+1))
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
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

// TestAuth: every request carries the Auth hook's credentials; a refusal
// (403) is not retried, and a failing hook fails the request.
func TestAuth(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if u, p, _ := r.BasicAuth(); u != "auditor" || p != "pw" {
			http.Error(w, "data tiles need the auditor role", http.StatusForbidden)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	f := newFetcher(srv.URL, "ua", time.Second, 1)
	f.backoff = time.Millisecond
	f.auth = func(r *http.Request) error { r.SetBasicAuth("auditor", "pw"); return nil }
	if data, err := f.get(t.Context(), "/tile/8/data/000", 10); err != nil || string(data) != "ok" {
		t.Errorf("with credentials: %q, %v", data, err)
	}
	f.auth = func(r *http.Request) error { r.SetBasicAuth("reader", "pw"); return nil }
	_, err := f.get(t.Context(), "/tile/8/data/000", 10)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Status != 403 || calls.Load() != 2 || !strings.Contains(err.Error(), "auditor role") {
		t.Errorf("a refused credential: %v after %d calls, want one 403 quoting the reason", err, calls.Load()-1)
	}
	f.auth = func(*http.Request) error { return errors.New("no .netrc") }
	if _, err := f.get(t.Context(), "/latest", 10); err == nil || calls.Load() != 2 {
		t.Errorf("a failing hook: %v after %d calls, want an error and no request", err, calls.Load()-2)
	}
}
