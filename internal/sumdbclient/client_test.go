package sumdbclient

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func newTestClient(t *testing.T, url string, timeout time.Duration) *Client {
	t.Helper()
	c, err := New(url, Options{UserAgent: "sumd/test", Timeout: timeout, Parallel: 1, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

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
	c := newTestClient(t, srv.URL, time.Second)

	data, err := c.Get(t.Context(), "/x", 10)
	if err != nil || string(data) != "ok" || calls.Load() != 3 {
		t.Errorf("get after two 503s = %q, %v after %d calls; want ok after 3", data, err, calls.Load())
	}
	calls.Store(10)
	_, err = c.Get(t.Context(), "/missing", 10)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Status != 404 || !NotFound(err) || !IsFetchError(err) || calls.Load() != 11 {
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
	c := newTestClient(t, srv.URL, 100*time.Millisecond)
	if data, err := c.Latest(t.Context()); err != nil || string(data) != "ok" || calls.Load() != 2 {
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
	c := newTestClient(t, srv.URL, time.Second)
	if _, err := c.Latest(t.Context()); err == nil || calls.Load() != 3 {
		t.Errorf("get = %v after %d calls, want an error after 3", err, calls.Load())
	}
}

// TestSizeCap checks that an oversized body is refused, even without a
// Content-Length, and is not retried.
func TestSizeCap(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.(http.Flusher).Flush() // no Content-Length: the cap must hold while reading
		w.Write(make([]byte, MaxLatest+1))
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, time.Second)
	if _, err := c.Latest(t.Context()); err == nil || !strings.Contains(err.Error(), "response too large") || calls.Load() != 1 {
		t.Errorf("get of a huge /latest = %v after %d calls", err, calls.Load())
	}
}

// TestFallbackToFullTile checks the go command's fallback: a partial tile
// the server no longer has is cut from the full tile.
func TestFallbackToFullTile(t *testing.T) {
	full := make([]byte, MaxHashTile)
	for i := range full {
		full[i] = byte(i)
	}
	tile := append(appendDataTile(nil, []byte("a 1\n"), []byte("b 2\n")), appendDataTile(nil, make254()...)...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/tile/8/0/001":
			w.Write(full)
		case "/tile/8/data/001":
			w.Write(tile)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, time.Second)
	got, err := c.HashTile(t.Context(), tlog.Tile{H: TileHeight, L: 0, N: 1, W: 3})
	if err != nil || string(got) != string(full[:3*32]) {
		t.Errorf("partial hash tile from the full one = %d bytes, %v", len(got), err)
	}
	recs, err := c.DataTile(t.Context(), DataTileOf(1, 256+2))
	if err != nil || len(recs) != 2 || string(recs[1]) != "b 2\n" {
		t.Errorf("partial data tile from the full one = %q, %v", recs, err)
	}
	if _, err := c.DataTile(t.Context(), DataTileOf(2, 3*256)); !NotFound(err) {
		t.Errorf("missing data tile: %v, want a 404", err)
	}
}

func make254() [][]byte {
	recs := make([][]byte, 254)
	for i := range recs {
		recs[i] = []byte("r\n")
	}
	return recs
}

// TestCheckURL checks the base URLs refused.
func TestCheckURL(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"ftp://x", "want http:// or https://"},
		{"http://x/?q=1", "no ?query"},
		{"http://user:secret@x/?q", "http://user:xxxxx@x/"},
		{"https://proxy.example/sumdb/sum.golang.org", ""},
	} {
		_, err := CheckURL(tc.url)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckURL(%q) = %v, want %q", tc.url, err, tc.want)
		}
	}
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
	c := newTestClient(t, srv.URL, time.Second)
	c.auth = func(r *http.Request) error { r.SetBasicAuth("auditor", "pw"); return nil }
	if data, err := c.Get(t.Context(), "/tile/8/data/000", 10); err != nil || string(data) != "ok" {
		t.Errorf("with credentials: %q, %v", data, err)
	}
	c.auth = func(r *http.Request) error { r.SetBasicAuth("reader", "pw"); return nil }
	_, err := c.Get(t.Context(), "/tile/8/data/000", 10)
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Status != 403 || calls.Load() != 2 || !strings.Contains(err.Error(), "auditor role") {
		t.Errorf("a refused credential: %v after %d calls, want one 403 quoting the reason", err, calls.Load()-1)
	}
	c.auth = func(*http.Request) error { return errors.New("no .netrc") }
	if _, err := c.Get(t.Context(), "/latest", 10); err == nil || calls.Load() != 2 {
		t.Errorf("a failing hook: %v after %d calls, want an error and no request", err, calls.Load()-2)
	}
}

// TestParseLookup: an answer splits into id, record and head; a
// non-canonical or negative id, a record without its blank line or with a
// control character, and a missing head are refused, each saying why.
func TestParseLookup(t *testing.T) {
	rec := string(testRecordText(7))
	head := "go.sum database tree\n8\nAAAA\n\n— sum.example.com AAAA\n"
	a, err := ParseLookup([]byte("7\n" + rec + "\n" + head))
	if err != nil || a.ID != 7 || string(a.Record) != rec || string(a.Head) != head {
		t.Fatalf("ParseLookup: %+v, %v", a, err)
	}
	for body, want := range map[string]string{
		"7":                           "not a record id line",
		"x\n" + rec + "\n" + head:     "not a record id line",
		"07\n" + rec + "\n" + head:    `record id "07"`,
		"+7\n" + rec + "\n" + head:    `record id "+7"`,
		"-7\n" + rec + "\n" + head:    `record id "-7"`,
		"7\n" + rec:                   "not a record id line",
		"7\n\x01" + rec + "\n" + head: "not a record id line",
		"7\n" + rec + "\n":            "no signed tree head",
	} {
		if a, err := ParseLookup([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseLookup(%q) = %+v, %v; want an error saying %q", body, a, err, want)
		}
	}
}

// TestAuthRedirect: credentials do not follow a redirect to another port
// of the same host (net/http would send them: the host name matches).
func TestAuthRedirect(t *testing.T) {
	got := make(chan string, 1)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		w.Write([]byte("ok"))
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, time.Second)
	c.auth = func(r *http.Request) error { r.SetBasicAuth("auditor", "pw"); return nil }
	if data, err := c.Get(t.Context(), "/latest", 10); err != nil || string(data) != "ok" {
		t.Fatalf("Get through a redirect: %q, %v", data, err)
	}
	if a := <-got; a != "" {
		t.Errorf("the other port got Authorization %q", a)
	}
}

// TestDamaged: a sumd server's 500 for data damaged in its database
// (DamagedText) is ErrDamaged, a finding about the database rather than
// an outage, and is not retried: the answer would be the same. Another 500
// is neither.
func TestDamaged(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path == "/tile/8/data/000" {
			http.Error(w, DamagedText, http.StatusInternalServerError)
			return
		}
		http.Error(w, "internal error", http.StatusInternalServerError)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, time.Second)
	_, err := c.Get(t.Context(), "/tile/8/data/000", MaxDataTile)
	var fe *FetchError
	if !errors.Is(err, ErrDamaged) || !errors.As(err, &fe) || fe.Status != http.StatusInternalServerError {
		t.Errorf("Get of a damaged tile = %v, want a 500 FetchError wrapping ErrDamaged", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("a damaged tile was asked for %d times, want once", n)
	}
	if _, err := c.Get(t.Context(), "/latest", MaxLatest); err == nil || errors.Is(err, ErrDamaged) {
		t.Errorf("Get answered 500 internal error = %v, want an error, not ErrDamaged", err)
	}
}

// TestOfflineLongPath: a mirror's offline 404 is ErrOffline, not a version
// the database lacks, however long the module path before OfflineText in
// its line. Only the first 512 bytes were searched, so for a path of 450
// bytes the outage was a 404 NotFound.
func TestOfflineLongPath(t *testing.T) {
	for _, n := range []int{1, 450, 4000} {
		path := "example.com/" + strings.Repeat("m", n)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "not found: "+path+"@v1.0.0: the mirror of sum.example.com "+OfflineText+
				": dial tcp: connection refused; its tree head (300 records) was last confirmed current 2h ago", http.StatusNotFound)
		}))
		c := newTestClient(t, srv.URL, time.Second)
		_, err := c.Get(t.Context(), "/lookup/"+path+"@v1.0.0", MaxLookup)
		srv.Close()
		if !errors.Is(err, ErrOffline) || NotFound(err) {
			t.Errorf("module path of %d bytes: Get = %v (NotFound %v), want ErrOffline", len(path), err, NotFound(err))
		}
	}
}

// TestRetryCutBody checks that a 200 whose body is cut mid-way (the
// connection closed before Content-Length bytes came) is retried as a
// transient failure, as a connection cut before the answer is.
func TestRetryCutBody(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, time.Second)
	if data, err := c.Latest(t.Context()); err != nil || string(data) != "ok" || calls.Load() != 2 {
		t.Errorf("get = %q, %v after %d calls; want ok after a cut body and a retry", data, err, calls.Load())
	}
}
