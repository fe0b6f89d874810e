package tuf

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/sumd-project/sumd/internal/tlog"
)

const testName = "sum.tuf.example"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// A fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// A fixture is a repository served over loopback HTTP, as sumd serve -tuf
// serves it, with its keys and a fake clock shared by signer and clients.
type fixture struct {
	t       testing.TB
	dir     string // the repository
	offline string // root and targets keys
	online  string // snapshot and timestamp keys
	repo    *Repo
	clock   *fakeClock
	url     string // the repository's base URL, <server>/tuf
	handler *Handler
}

// newFixture creates a repository publishing vkeys (one new key if none),
// 1 of 1 keys for every role, at a fixed time.
func newFixture(t testing.TB, vkeys ...string) *fixture {
	t.Helper()
	if len(vkeys) == 0 {
		vkeys = []string{newVKey(t)}
	}
	base := t.TempDir()
	f := &fixture{
		t: t, dir: filepath.Join(base, "repo"), offline: filepath.Join(base, "offline"),
		clock: &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
	}
	f.online = filepath.Join(f.dir, DefaultOnlineKeys)
	repo, err := Init(f.dir, InitOptions{Database: mustDatabase(t, vkeys...), OfflineKeys: f.offline, Now: f.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	f.repo = repo
	h, err := NewHandler(f.dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	f.handler = h
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	f.url = srv.URL + "/tuf"
	return f
}

func newVKey(t testing.TB) string {
	t.Helper()
	_, vkey, err := tlog.GenerateKey(testName)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

func mustDatabase(t testing.TB, vkeys ...string) *Database {
	t.Helper()
	d, err := NewDatabase(vkeys, "https://"+testName)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// root returns version v of the root metadata, as a client pins it.
func (f *fixture) root(v int64) []byte {
	f.t.Helper()
	data, err := os.ReadFile(filepath.Join(f.dir, metadataDir, versionedName(v, metadata.ROOT)))
	if err != nil {
		f.t.Fatal(err)
	}
	return data
}

// fetch runs a go-tuf client pinned to root version 1, at the fake clock's
// time, keeping its metadata in cache ("" for none).
func (f *fixture) fetch(cache string) (*Database, error) {
	return Fetch(ClientOptions{Root: f.root(1), URL: f.url, CacheDir: cache, Now: f.clock.Now})
}

func (f *fixture) mustFetch(cache string) *Database {
	f.t.Helper()
	d, err := f.fetch(cache)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// signOnline runs the online step as sumd serve does on a tick.
func (f *fixture) signOnline() *Signing {
	f.t.Helper()
	s, err := f.repo.SignOnline([]string{f.online}, f.clock.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// publish publishes vkeys with the offline targets key, then signs online.
func (f *fixture) publish(vkeys ...string) {
	f.t.Helper()
	if _, err := f.repo.Publish(mustDatabase(f.t, vkeys...), []string{f.offline}, f.clock.Now().Add(DefaultTargetsExpiry)); err != nil {
		f.t.Fatal(err)
	}
	f.signOnline()
}

func (f *fixture) status() *Status {
	f.t.Helper()
	st, err := f.repo.Status()
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// cachedVersion is the version of role a client cached in cache.
func cachedVersion(t *testing.T, cache, role string) int64 {
	t.Helper()
	pins, _ := filepath.Glob(filepath.Join(cache, "pin-*"))
	if len(pins) != 1 {
		t.Fatalf("cache %s holds %d pinned roots' directories (%q), want 1", cache, len(pins), pins)
	}
	data, err := os.ReadFile(filepath.Join(pins[0], metadataDir, role+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Signed struct{ Version int64 }
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m.Signed.Version
}

func (f *fixture) readFile(elem ...string) []byte {
	f.t.Helper()
	data, err := os.ReadFile(filepath.Join(append([]string{f.dir}, elem...)...))
	if err != nil {
		f.t.Fatal(err)
	}
	return data
}

// writeFile replaces a repository file, as a misbehaving server would.
func (f *fixture) writeFile(data []byte, elem ...string) {
	f.t.Helper()
	if err := replaceFile(filepath.Join(append([]string{f.dir}, elem...)...), data); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) loadRoot() *metadata.Metadata[metadata.RootType] {
	f.t.Helper()
	root, err := f.repo.loadRoot()
	if err != nil {
		f.t.Fatal(err)
	}
	return root
}

// onlineKey returns the key the newest root lists for an online role.
func (f *fixture) onlineKey(role string) *Key {
	f.t.Helper()
	keys, err := roleKeys(f.loadRoot(), role, []string{f.online})
	if err != nil {
		f.t.Fatal(err)
	}
	return keys[0]
}

// newKeyFile generates a key of role and writes it to the directory sub
// beside the repository.
func (f *fixture) newKeyFile(role, sub string) *Key {
	f.t.Helper()
	k, err := GenerateKey()
	if err != nil {
		f.t.Fatal(err)
	}
	if err := k.WriteFile(filepath.Join(filepath.Dir(f.dir), sub, KeyFileName(role, k))); err != nil {
		f.t.Fatal(err)
	}
	return k
}

// forgeTimestamp writes a timestamp of the given version naming snapshot
// version snapshot, signed by k: what a holder of a timestamp key can do.
func (f *fixture) forgeTimestamp(k *Key, version, snapshot int64) {
	f.t.Helper()
	ts := metadata.Timestamp(expiry(f.clock.Now(), TimestampExpiry))
	ts.Signed.Version = version
	ts.Signed.Meta[metadata.SNAPSHOT+".json"] = metaFile(snapshot, f.readFile(metadataDir, versionedName(snapshot, metadata.SNAPSHOT)))
	data, err := signAndEncode(ts, []*Key{k})
	if err != nil {
		f.t.Fatal(err)
	}
	f.writeFile(data, metadataDir, timestampFile)
}

// httptestServer serves h over loopback HTTP until the test ends.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
