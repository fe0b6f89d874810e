package tuf

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"golang.org/x/mod/sumdb/note"

	"github.com/sumd-project/sumd/internal/tlog"
)

// TestFirstFetch bootstraps a go-tuf client from root version 1 and gets
// the database as published.
func TestFirstFetch(t *testing.T) {
	vkey := newVKey(t)
	f := newFixture(t, vkey)
	d := f.mustFetch("")
	if d.Name != testName || !slices.Equal(d.VerifierKeys, []string{vkey}) || d.URL != "https://"+testName || d.TileHeight != 8 {
		t.Errorf("fetched %+v, want %s with key %s", d, testName, vkey)
	}
	if got, want := d.GOSUMDB(), vkey+" https://"+testName; got != want {
		t.Errorf("GOSUMDB() = %q, want %q", got, want)
	}
}

// TestTimestampRefresh moves the clock two days in six-hour steps: each
// step re-signs the timestamp alone (24 h expiry), at the time as its
// version, and a client keeping a cache follows every version.
func TestTimestampRefresh(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	for i := range 8 {
		f.clock.advance(TimestampRenewAfter - time.Second)
		if s := f.signOnline(); s.Timestamp || s.Snapshot {
			t.Fatalf("step %d: re-signed a timestamp younger than %v", i, TimestampRenewAfter)
		}
		f.clock.advance(time.Second)
		s := f.signOnline()
		if !s.Timestamp || s.Snapshot {
			t.Fatalf("step %d: signed snapshot %v, timestamp %v; want the timestamp alone", i, s.Snapshot, s.Timestamp)
		}
		if got, want := s.Status.Expires[metadata.TIMESTAMP], f.clock.Now().Add(TimestampExpiry); !got.Equal(want) {
			t.Errorf("step %d: timestamp expires %v, want %v", i, got, want)
		}
		f.mustFetch(cache)
		if v := cachedVersion(t, cache, metadata.TIMESTAMP); v != f.clock.Now().Unix() {
			t.Errorf("step %d: client holds timestamp version %d, want %d (the time)", i, v, f.clock.Now().Unix())
		}
	}
}

// TestResignerWithFakeClock runs the Resigner as sumd serve does, on a
// fake clock moved an hour at a time for four days: clients never see an
// expired timestamp, the timestamp is re-signed every 6 hours and the
// snapshot at half its 7-day life.
func TestResignerWithFakeClock(t *testing.T) {
	f := newFixture(t)
	start := f.clock.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	rs := &Resigner{Repo: f.repo, KeyDirs: []string{f.online}, Now: f.clock.Now, Interval: time.Millisecond, Logger: quiet}
	go func() { rs.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for range 96 {
		f.clock.advance(time.Hour)
		waitFor(t, func() bool {
			return f.status().Expires[metadata.TIMESTAMP].Sub(f.clock.Now()) > TimestampExpiry-TimestampRenewAfter
		})
		f.mustFetch("")
	}
	st := f.status()
	// Versions are the time of signing (online.go).
	if ts, snap := start.Add(96*time.Hour).Unix(), start.Add(84*time.Hour).Unix(); st.Versions[metadata.TIMESTAMP] != ts || st.Versions[metadata.SNAPSHOT] != snap {
		t.Errorf("after 96 hours: timestamp version %d, snapshot %d; want %d (signed every 6 h, the last at 96 h) and %d (at 84 h)",
			st.Versions[metadata.TIMESTAMP], st.Versions[metadata.SNAPSHOT], ts, snap)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}

// TestExpiredTimestampRejected stops re-signing: past the timestamp's
// expiry every client refuses the repository, until it is re-signed.
func TestExpiredTimestampRejected(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	f.clock.advance(TimestampExpiry + time.Second)
	for _, c := range []string{cache, ""} {
		if _, err := f.fetch(c); !errors.Is(err, ErrExpired) {
			t.Errorf("fetch (cache %q) with an expired timestamp: %v, want ErrExpired", c, err)
		}
	}
	f.signOnline()
	f.mustFetch(cache)
}

// TestKeyRotation follows a real log (internal/tlog) through a key
// rotation: after rotate + publish the client learns both keys, each of
// which verifies the log's signed head; after retire + publish, the new
// key alone.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := newLogKey(t), newLogKey(t)
	l, err := tlog.Open(filepath.Join(t.TempDir(), "sumd.db"), tlog.Options{Keys: []*tlog.Key{oldKey}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f := newFixture(t, l.VerifierKeys()...)
	cache := t.TempDir()
	f.mustFetch(cache)

	if err := l.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	f.publish(l.VerifierKeys()...)
	d := f.mustFetch(cache)
	if !slices.Equal(d.VerifierKeys, []string{oldKey.VerifierKey(), newKey.VerifierKey()}) {
		t.Fatalf("during the rotation the client learned %q, want the old and the new key", d.VerifierKeys)
	}
	if d.GOSUMDB() != oldKey.VerifierKey()+" https://"+testName {
		t.Errorf("GOSUMDB during the rotation = %q, want the old key (TestGOSUMDBDuringOverlap)", d.GOSUMDB())
	}
	head, err := l.Signed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, vkey := range d.VerifierKeys {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := note.Open(head, note.VerifierList(v)); err != nil {
			t.Errorf("published key %s does not verify the log's head: %v", vkey, err)
		}
	}

	if err := l.RemoveKey(ctx, oldKey.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	f.publish(l.VerifierKeys()...)
	if d := f.mustFetch(cache); !slices.Equal(d.VerifierKeys, []string{newKey.VerifierKey()}) {
		t.Errorf("after retiring the client learned %q, want the new key alone", d.VerifierKeys)
	}
	// Both publications signed a snapshot within the same second: the
	// time, then one past it.
	if st, snap := f.status(), f.clock.Now().Unix()+1; st.Versions[metadata.TARGETS] != 3 || st.Versions[metadata.SNAPSHOT] != snap {
		t.Errorf("after two publications: targets version %d, snapshot %d; want 3 and %d", st.Versions[metadata.TARGETS], st.Versions[metadata.SNAPSHOT], snap)
	}
}

func newLogKey(t *testing.T) *tlog.Key {
	t.Helper()
	skey, _, err := tlog.GenerateKey(testName)
	if err != nil {
		t.Fatal(err)
	}
	k, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRollbackRejected serves a client older metadata than it has seen: an
// older timestamp, then a new timestamp naming an older snapshot. Both
// fail; a client without a cache has no memory to catch them.
func TestRollbackRejected(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	ts1 := f.readFile(metadataDir, timestampFile)
	f.clock.advance(TimestampRenewAfter)
	f.signOnline()
	f.mustFetch(cache)

	ts2 := f.readFile(metadataDir, timestampFile)
	f.writeFile(ts1, metadataDir, timestampFile)
	if _, err := f.fetch(cache); !errors.Is(err, ErrRollback) {
		t.Errorf("fetch of timestamp version 1 after version 2: %v, want ErrRollback", err)
	}
	f.mustFetch("")
	f.writeFile(ts2, metadataDir, timestampFile)

	f.clock.advance(TimestampRenewAfter)
	f.publish(newVKey(t)) // snapshot 2, timestamp 3
	f.mustFetch(cache)
	f.forgeTimestamp(f.onlineKey(metadata.TIMESTAMP), 4, 1)
	if _, err := f.fetch(cache); !errors.Is(err, ErrRollback) {
		t.Errorf("fetch of a timestamp naming snapshot version 1 after version 2: %v, want ErrRollback", err)
	}
}

// TestRootRotation rotates the root keys twice: to two new keys with a
// threshold of 2 (signed by the old key and both new ones), then a renewal
// signed by those two. A client pinned to version 1 walks 1 → 2 → 3; one
// of the two keys cannot sign alone.
func TestRootRotation(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	a, b := f.newKeyFile(metadata.ROOT, "ab"), f.newKeyFile(metadata.ROOT, "ab")
	ch := RootChange{RootKeys: []*Key{a, b}, RootThreshold: 2, Expires: f.clock.Now().Add(DefaultRootExpiry)}
	if v, err := f.repo.RotateRoot(ch, []string{f.offline}); err != nil || v != 2 {
		t.Fatalf("RotateRoot = %d, %v; want version 2", v, err)
	}
	f.mustFetch(cache)
	if v := cachedVersion(t, cache, metadata.ROOT); v != 2 {
		t.Errorf("client with a cache holds root version %d, want 2", v)
	}

	renew := RootChange{Expires: f.clock.Now().Add(2 * DefaultRootExpiry)}
	if _, err := f.repo.RotateRoot(renew, []string{filepath.Join(f.dir, "..", "ab")}); err != nil {
		t.Fatal(err)
	}
	fresh := t.TempDir()
	f.mustFetch(fresh)
	if v := cachedVersion(t, fresh, metadata.ROOT); v != 3 {
		t.Errorf("client pinned to root version 1 reached version %d, want 3", v)
	}
	only := filepath.Join(t.TempDir(), "a")
	if err := a.WriteFile(filepath.Join(only, KeyFileName(metadata.ROOT, a))); err != nil {
		t.Fatal(err)
	}
	var missing *MissingKeysError
	if _, err := f.repo.RotateRoot(renew, []string{only}); !errors.As(err, &missing) || missing.Threshold != 2 {
		t.Errorf("RotateRoot with 1 of 2 root keys: %v, want a MissingKeysError", err)
	}
}

// TestForgedRootRejected writes a root version 2 signed only by a key the
// root does not list: clients refuse it, and so does the server side.
func TestForgedRootRejected(t *testing.T) {
	f := newFixture(t)
	mallory := f.newKeyFile(metadata.ROOT, "mallory")
	next, err := RootChange{RootKeys: []*Key{mallory}, Expires: f.clock.Now().Add(time.Hour)}.apply(f.loadRoot())
	if err != nil {
		t.Fatal(err)
	}
	data, err := signAndEncode(next, []*Key{mallory})
	if err != nil {
		t.Fatal(err)
	}
	f.writeFile(data, metadataDir, versionedName(2, metadata.ROOT))
	if _, err := f.fetch(""); !errors.Is(err, ErrUntrusted) {
		t.Errorf("fetch with a forged root version 2: %v, want ErrUntrusted", err)
	}
	if _, err := f.repo.SignOnline([]string{f.online}, f.clock.Now()); err == nil {
		t.Error("SignOnline accepted a forged root version 2")
	}
}

// TestRefused: a repository served to authenticated clients only (sumd
// serve -read-auth) refuses a client without credentials with ErrRefused,
// and serves one whose HTTP client sends them.
func TestRefused(t *testing.T) {
	f := newFixture(t)
	h, err := NewHandler(f.dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "dev" || p != "pw" {
			w.Header().Set("WWW-Authenticate", `Basic realm="sumd"`)
			http.Error(w, "credentials required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	opts := ClientOptions{Root: f.root(1), URL: srv.URL + "/tuf", Now: f.clock.Now}
	if _, err := Fetch(opts); !errors.Is(err, ErrRefused) {
		t.Errorf("Fetch without credentials: %v, want ErrRefused", err)
	}
	opts.HTTPClient = &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.SetBasicAuth("dev", "pw")
		return http.DefaultTransport.RoundTrip(r)
	})}
	if d, err := Fetch(opts); err != nil || d.Name != testName {
		t.Errorf("Fetch with credentials: %+v, %v", d, err)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestCachePerPin: one cache directory given to clients of two
// repositories, one of which rotated its root, keeps each client on its
// own pin's chain. Sharing one root cache made the second repository's
// metadata checked against the first one's root keys (a false SECURITY
// ERROR, or another repository's key holders trusted), and kept a client
// given a new pin on the chain its cache held.
func TestCachePerPin(t *testing.T) {
	a, b := newFixture(t), newFixture(t)
	cache := t.TempDir()
	a.mustFetch(cache)
	ch := RootChange{RootKeys: []*Key{a.newKeyFile(metadata.ROOT, "rotated")}, Expires: a.clock.Now().Add(DefaultRootExpiry)}
	if _, err := a.repo.RotateRoot(ch, []string{a.offline}); err != nil {
		t.Fatal(err)
	}
	a.mustFetch(cache)
	d, err := Fetch(ClientOptions{Root: b.root(1), URL: b.url, CacheDir: cache, Now: b.clock.Now})
	if err != nil {
		t.Fatalf("fetch of a second repository with the first one's cache: %v", err)
	}
	if want := b.mustFetch("").VerifierKeys; !slices.Equal(d.VerifierKeys, want) {
		t.Errorf("second repository's keys = %q, want %q", d.VerifierKeys, want)
	}
	if pinDir(a.root(1), a.url) == pinDir(b.root(1), a.url) || pinDir(a.root(1), a.url) != pinDir(a.root(1), a.url+"/") {
		t.Error("pinDir does not tell pins apart at one URL, or tells one URL apart by its trailing slash")
	}
}

// TestProxyPage: a proxy answering 200 with its page for some paths only
// (the snapshot, the targets metadata, a target) made the client report
// metadata that does not verify, a SECURITY ERROR (sumd verify exits 1),
// since go-tuf checks its length and hashes first: nothing in the page
// claims to be the repository's. It is a failure to download now, naming
// what came back, as a page where a root version is probed already was.
// A target of the right kind whose hash does not match stays untrusted.
func TestProxyPage(t *testing.T) {
	f := newFixture(t)
	page := []byte("<!DOCTYPE html><html><body>Sign in</body></html>\n")
	for _, c := range []struct {
		prefix string
		body   []byte
		want   error
	}{
		{"/tuf/metadata/1.snapshot.json", page, ErrNotTUF},
		{"/tuf/metadata/1.targets.json", page, ErrNotTUF},
		{"/tuf/metadata/timestamp.json", page, ErrNotTUF},
		{"/tuf/targets/", page, ErrNotTUF},
		{"/tuf/targets/", []byte(newVKey(t) + "\n"), ErrUntrusted},
		{"/tuf/metadata/1.snapshot.json", []byte(`{"signed": {}}`), ErrUntrusted},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, c.prefix) {
				w.Write(c.body)
				return
			}
			f.handler.ServeHTTP(w, r)
		}))
		_, err := Fetch(ClientOptions{Root: f.root(1), URL: srv.URL + "/tuf", Now: f.clock.Now})
		srv.Close()
		if !errors.Is(err, c.want) || (c.want == ErrNotTUF) == errors.Is(err, ErrUntrusted) {
			t.Errorf("%s answered with %.20q: %v, want %v", c.prefix, c.body, err, c.want)
		}
	}
}

// TestSnapshotDroppingTargetsIsRollback serves a client a snapshot, signed
// by the snapshot key, that no longer lists the targets metadata the
// snapshot it verified before listed: the rollback TUF's client workflow
// checks for (§5.5.5), what a holder of the online keys can do to keep
// clients from the published keys. It is ErrRollback, a finding, not a
// failure to learn the keys (sumd verify's exit status 1, not 2).
func TestSnapshotDroppingTargetsIsRollback(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	f.mustFetch(cache)
	snap := metadata.Snapshot(expiry(f.clock.Now(), SnapshotExpiry))
	snap.Signed.Version = cachedVersion(t, cache, metadata.SNAPSHOT) + 1
	clear(snap.Signed.Meta)
	data, err := signAndEncode(snap, []*Key{f.onlineKey(metadata.SNAPSHOT)})
	if err != nil {
		t.Fatal(err)
	}
	f.writeFile(data, metadataDir, versionedName(snap.Signed.Version, metadata.SNAPSHOT))
	f.forgeTimestamp(f.onlineKey(metadata.TIMESTAMP), cachedVersion(t, cache, metadata.TIMESTAMP)+1, snap.Signed.Version)
	if _, err := f.fetch(cache); !errors.Is(err, ErrRollback) {
		t.Errorf("fetch of a snapshot without the targets the last one listed: %v, want ErrRollback", err)
	}
}
