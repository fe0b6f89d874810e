package server

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb"
)

// clientOps is what the go command gives sumdb.Client: HTTP to the server
// and in-memory config and cache.
type clientOps struct {
	t    testing.TB
	base string // URL of the database root
	key  string

	mu     sync.Mutex
	config map[string][]byte
	cache  map[string][]byte
}

var _ sumdb.ClientOps = (*clientOps)(nil)

func newClientOps(t testing.TB, base, key string) *clientOps {
	return &clientOps{t: t, base: base, key: key, config: map[string][]byte{}, cache: map[string][]byte{}}
}

func (c *clientOps) ReadRemote(path string) ([]byte, error) {
	resp, err := http.Get(c.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, data)
	}
	return data, nil
}

func (c *clientOps) ReadConfig(file string) ([]byte, error) {
	if file == "key" {
		return []byte(c.key), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.config[file], nil // nil: start from the empty tree
}

func (c *clientOps) WriteConfig(file string, old, new []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !bytes.Equal(c.config[file], old) {
		return sumdb.ErrWriteConflict
	}
	c.config[file] = new
	return nil
}

func (c *clientOps) ReadCache(file string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if data, ok := c.cache[file]; ok {
		return data, nil
	}
	return nil, fs.ErrNotExist
}

func (c *clientOps) WriteCache(file string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache[file] = data
}

func (c *clientOps) Log(msg string)           { c.t.Log(msg) }
func (c *clientOps) SecurityError(msg string) { c.t.Error(msg) }

// lookupAll looks up the first n records of f through client and checks
// that it returns exactly their go.sum lines.
func lookupAll(t *testing.T, client *sumdb.Client, f *fakeOps, n int) {
	t.Helper()
	for i := range n {
		m := f.mods[i]
		want := strings.Split(strings.TrimSuffix(string(f.records[i]), "\n"), "\n")
		for j, vers := range []string{m.Version, m.Version + "/go.mod"} {
			lines, err := client.Lookup(m.Path, vers)
			if err != nil {
				t.Fatalf("Lookup(%s, %s): %v", m.Path, vers, err)
			}
			if len(lines) != 1 || lines[0] != want[j] {
				t.Fatalf("Lookup(%s, %s) = %q, want %q", m.Path, vers, lines, want[j])
			}
		}
	}
}

// hits records the status of every request a handler served, by path.
type hits struct {
	next   http.Handler
	mu     sync.Mutex
	status map[string]int
}

func (h *hits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w}
	h.next.ServeHTTP(rec, r)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status[r.URL.Path] = rec.status
}

func (h *hits) get(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status[path]
}

// newTestServer serves f over HTTP with logs discarded.
func newTestServer(t *testing.T, f *fakeOps) (*httptest.Server, *hits) {
	h := &hits{next: New(testName, f, Options{Logger: quietLogger}), status: map[string]int{}}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, h
}

var quietLogger = slog.New(slog.DiscardHandler)

// TestClientLookup drives the handler with the go command's own client,
// which verifies every answer against signed tree heads and hash tiles, at
// both roots. 300 records need level-1 tiles as well as level-0 ones.
func TestClientLookup(t *testing.T) {
	f, vkey := newFakeOps(t, 300)
	for _, root := range []string{"", "/sumdb/" + testName} {
		t.Run("root="+root, func(t *testing.T) {
			ts, h := newTestServer(t, f)
			client := sumdb.NewClient(newClientOps(t, ts.URL+root, vkey))
			lookupAll(t, client, f, 300)
			for _, tile := range []string{"/tile/8/0/000", "/tile/8/0/001.p/44", "/tile/8/1/000.p/1"} {
				if got := h.get(root + tile); got != http.StatusOK {
					t.Errorf("GET %s: status %d, want the client to have fetched it with 200", root+tile, got)
				}
			}
		})
	}
}

// TestClientGrowingLog checks that a client that saw a smaller tree, then
// lost its tile cache (go clean -modcache keeps only the latest tree head),
// accepts the grown tree: proving consistency needs the partial tiles of the
// old size, so they must stay servable after their tiles have filled up.
func TestClientGrowingLog(t *testing.T) {
	f, vkey := newFakeOps(t, 600)
	f.publish(t, 300)
	ts, h := newTestServer(t, f)
	ops := newClientOps(t, ts.URL, vkey)
	lookupAll(t, sumdb.NewClient(ops), f, 300)

	f.publish(t, 600)
	ops.cache = map[string][]byte{}
	h.status = map[string]int{}
	lookupAll(t, sumdb.NewClient(ops), f, 600)
	if latest := string(ops.config[testName+"/latest"]); !strings.Contains(latest, "\n600\n") {
		t.Fatalf("client's latest tree is not the grown one:\n%s", latest)
	}
	if got := h.get("/tile/8/0/001.p/44"); got != http.StatusOK {
		t.Errorf("old partial tile: status %d, want the client to have fetched it with 200", got)
	}
}
