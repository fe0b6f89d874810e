package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testproxy"
	"github.com/sumd-project/sumd/internal/tlog"
)

const testHash = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

// TestBackup downloads a backup through the API: it is a database that
// verifies in full and holds what the log held. A log whose store cannot
// copy itself, or a server without backups, answers 501; only GET and
// HEAD are allowed; a mirror-only server (no recorder) serves backups
// only.
func TestBackup(t *testing.T) {
	ctx := context.Background()
	s := newSetup(t, Options{})
	if _, err := s.log.Add(ctx, gosum.Record{Path: "example.com/m", Version: "v1.0.0", Hash: testHash, GoMod: testHash}); err != nil {
		t.Fatal(err)
	}
	s.srv.Config.Handler = New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: s.log.Snapshot})
	if _, err := s.client.Fetch(ctx, mv("example.com/m", "v1.0.0")); err == nil || !strings.Contains(err.Error(), "records nothing") {
		t.Errorf("fetch from a server without a recorder: %v, want 404", err)
	}
	var b bytes.Buffer
	n, err := s.client.Backup(ctx, &b, "", -1)
	if err != nil || n != int64(b.Len()) || n == 0 {
		t.Fatalf("Backup = %d, %v", n, err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	bs, err := tlog.OpenBolt(path, tlog.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	want, _ := s.log.Tree(ctx)
	if _, tree, err := tlog.CheckStore(ctx, bs, nil); err != nil || tree != want {
		t.Errorf("the backup: tree %v, %v; want %v", tree, err, want)
	}

	skey, _, _ := tlog.GenerateKey("sumd.test")
	k, _ := tlog.ParseKey(skey)
	mem, err := tlog.OpenStore(tlog.NewMemStore(), tlog.Options{Keys: []*tlog.Key{k}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for _, tc := range []struct {
		name   string
		h      http.Handler
		method string
		status int
		want   string
	}{
		{"no snapshots", New(nil, Options{Authenticated: true, Logger: quiet}), "GET", 501, "does not serve backups"},
		{"memory store", New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: mem.Snapshot}), "GET", 501, "cannot write a snapshot of itself: back its database up with the database's own tools (PostgreSQL: pg_dump"},
		{"POST", New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: s.log.Snapshot}), "POST", 405, "use GET"},
		{"HEAD", New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: s.log.Snapshot}), "HEAD", 200, ""},
	} {
		req := httptest.NewRequest(tc.method, "/admin/backup", nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		tc.h.ServeHTTP(rec, req)
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, rec.Code, rec.Body, tc.status, tc.want)
		}
	}
}

// TestBackupHeadSpoolsNothing: HEAD /admin/backup answers the headers
// without writing a snapshot (it spooled a whole one to disk and threw it
// away), and with no Content-Length, since no snapshot was measured.
func TestBackupHeadSpoolsNothing(t *testing.T) {
	s := newSetup(t, Options{})
	snapshots := 0
	h := New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: func(ctx context.Context) (tlog.Snapshot, error) {
		snapshots++
		return s.log.Snapshot(ctx)
	}})
	req := httptest.NewRequest(http.MethodHead, "/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || snapshots != 0 || rec.Header().Get("Content-Length") != "" || rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Errorf("HEAD /admin/backup: %d, %d snapshots, Content-Length %q, Content-Type %q; want 200, none, no length, application/octet-stream",
			rec.Code, snapshots, rec.Header().Get("Content-Length"), rec.Header().Get("Content-Type"))
	}
}

// fakeSnapshot writes "abc" a byte at a time. The first one made by a
// snapshots waits, after its first byte, until release is closed.
type fakeSnapshot struct {
	first   bool
	s       *snapshots
	written []error // each write's error
}

type snapshots struct {
	mu      sync.Mutex
	n       int
	started chan struct{} // closed when the first one has written a byte
	release chan struct{}
	last    *fakeSnapshot
}

func newSnapshots() *snapshots {
	return &snapshots{started: make(chan struct{}), release: make(chan struct{})}
}

func (s *snapshots) snapshot(ctx context.Context) (tlog.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	s.last = &fakeSnapshot{first: s.n == 1, s: s}
	return s.last, nil
}

func (f *fakeSnapshot) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for i, b := range []byte("abc") {
		if i == 1 && f.first {
			close(f.s.started)
			<-f.s.release
		}
		_, err := w.Write([]byte{b})
		f.written = append(f.written, err)
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (f *fakeSnapshot) Size() int64  { return 3 }
func (f *fakeSnapshot) Close() error { return nil }

// TestBackupCrossSite: a GET of /admin/backup that a browser says another
// site sent is refused, as a POST is: each would make the server copy its
// whole database, with an operator's cached credentials.
func TestBackupCrossSite(t *testing.T) {
	snaps := newSnapshots()
	snaps.n = 1 // none waits
	h := New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: snaps.snapshot, TempDir: t.TempDir()})
	for _, tc := range []struct {
		header, value string
		want          int
	}{
		{"", "", http.StatusOK},
		{"Sec-Fetch-Site", "same-origin", http.StatusOK},
		{"Sec-Fetch-Site", "none", http.StatusOK},
		{"Sec-Fetch-Site", "cross-site", http.StatusForbidden},
		{"Sec-Fetch-Site", "same-site", http.StatusForbidden},
		{"Origin", "https://evil.example", http.StatusForbidden},
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			r := httptest.NewRequest(method, "https://sumd.example/admin/backup", nil)
			if tc.header != "" {
				r.Header.Set(tc.header, tc.value)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("%s with %s: %q: %d, want %d", method, tc.header, tc.value, w.Code, tc.want)
			}
		}
	}
}

// TestBackupOneAtATime: while one backup is being written, another is
// answered 503 with Retry-After, not a second copy of the database; once it
// is done, the next one is served.
func TestBackupOneAtATime(t *testing.T) {
	snaps := newSnapshots()
	h := New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: snaps.snapshot, TempDir: t.TempDir()})
	first := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(first, httptest.NewRequest("GET", "/admin/backup", nil))
	}()
	<-snaps.started
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/admin/backup", nil))
	close(snaps.release)
	<-done
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("a second backup at once: %d %q (Retry-After %q, Content-Type %q), want 503 text/plain with Retry-After",
			w.Code, w.Body, w.Header().Get("Retry-After"), w.Header().Get("Content-Type"))
	}
	if first.Code != http.StatusOK || first.Body.String() != "abc" {
		t.Errorf("the first backup: %d %q", first.Code, first.Body)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/admin/backup", nil))
	if w.Code != http.StatusOK || w.Body.String() != "abc" {
		t.Errorf("a backup after the first: %d %q", w.Code, w.Body)
	}
}

// TestBackupStopsWithRequest: a backup whose request ends stops copying
// the database into its temporary file, and leaves no file behind.
func TestBackupStopsWithRequest(t *testing.T) {
	snaps := newSnapshots()
	dir := t.TempDir()
	h := New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: snaps.snapshot, TempDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, httptest.NewRequestWithContext(ctx, "GET", "/admin/backup", nil))
	}()
	<-snaps.started
	cancel()
	close(snaps.release)
	<-done
	if got := snaps.last.written; len(got) != 2 || got[1] == nil {
		t.Errorf("writes of the copy: %v; want the second to fail once the request ended", got)
	}
	if w.Code == http.StatusOK {
		t.Errorf("a backup whose request ended: %d %q", w.Code, w.Body)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "sumd-backup-*")); len(files) != 0 {
		t.Errorf("left behind: %v", files)
	}
}

// TestBackupNeedsRoom: a backup is refused with a 507 saying so, before
// anything is copied, unless the temporary directory's file system has
// room for the whole copy and the floor the log keeps free: a copy of the
// database into -tmp-dir, by default on the database's own disk, must not
// fill it and stop the log's next commit.
func TestBackupNeedsRoom(t *testing.T) {
	defer func(f func(string) (int64, bool)) { freeSpace = f }(freeSpace)
	dir := t.TempDir()
	var free int64
	var asked string
	freeSpace = func(path string) (int64, bool) { asked = path; return free, true }
	snaps := newSnapshots()
	snaps.n = 1 // none waits
	h := New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: snaps.snapshot, TempDir: dir})
	free = 3 + tlog.DefaultMinFree - 1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/admin/backup", nil))
	if w.Code != http.StatusInsufficientStorage || !strings.Contains(w.Body.String(), "not enough free disk space") {
		t.Errorf("a backup without room: %d %q, want 507 saying there is not enough free disk space", w.Code, w.Body)
	}
	if filepath.Dir(asked) != dir {
		t.Errorf("free space asked of %q, want a file in %q", asked, dir)
	}
	if snaps.last == nil || len(snaps.last.written) != 0 {
		t.Errorf("a backup without room copied: %v", snaps.last)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "sumd-backup-*")); len(files) != 0 {
		t.Errorf("left behind: %v", files)
	}
	free = 3 + tlog.DefaultMinFree
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/admin/backup", nil))
	if w.Code != http.StatusOK || w.Body.String() != "abc" {
		t.Errorf("a backup with room: %d %q", w.Code, w.Body)
	}
}

// TestBackupFloorIsMinFreeDisk: the room a backup leaves is the server's
// -min-free-disk (Options.MinFree), not a fixed 64 MiB: a larger floor is
// kept, and with none (negative) the copy alone must fit.
func TestBackupFloorIsMinFreeDisk(t *testing.T) {
	defer func(f func(string) (int64, bool)) { freeSpace = f }(freeSpace)
	var free int64
	freeSpace = func(string) (int64, bool) { return free, true }
	for _, c := range []struct {
		minFree, free int64
		want          int
	}{
		{1 << 30, 3 + 1<<30 - 1, http.StatusInsufficientStorage},
		{1 << 30, 3 + 1<<30, http.StatusOK},
		{-1, 3, http.StatusOK},
		{-1, 2, http.StatusInsufficientStorage},
	} {
		snaps := newSnapshots()
		snaps.n = 1
		h := New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: snaps.snapshot, TempDir: t.TempDir(), MinFree: c.minFree})
		free = c.free
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/admin/backup", nil))
		if w.Code != c.want {
			t.Errorf("floor %d, %d bytes free, a 3-byte backup: %d %q, want %d", c.minFree, c.free, w.Code, w.Body, c.want)
		}
	}
}

// TestUploadKeepsFloor: an uploaded zip too large for memory, streamed to
// -tmp-dir (by default on the database's disk), stops with a 507 before
// it would take that file system under -min-free-disk, as first lookups'
// downloads do: a commit failing on a full disk stops the log. Nothing is
// recorded and no file is left; with room, the same upload succeeds.
func TestUploadKeepsFloor(t *testing.T) {
	defer func(f func(string) (int64, bool)) { freeSpace = f }(freeSpace)
	m := mv("example.com/m", "v1.0.0")
	src := t.TempDir()
	testproxy.Build(src, []testproxy.Module{testproxy.WithNoise(goodModule(m.Path, m.Version), 3<<20)})
	tmp := t.TempDir()
	s := newSetup(t, Options{TempDir: tmp, MinFree: 64 << 20})
	// Room for the floor and 2 MiB when the upload starts; the disk then
	// fills by what the zip writes.
	free := int64(64<<20 + 2<<20)
	freeSpace = func(string) (int64, bool) {
		var written int64
		if es, _ := os.ReadDir(tmp); len(es) == 1 {
			if fi, err := es[0].Info(); err == nil {
				written = fi.Size()
			}
		}
		return free - written, true
	}
	_, err := s.client.Upload(context.Background(), m, testproxy.ZipPath(src, m), "")
	wantStatus(t, err, http.StatusInsufficientStorage, "not enough free disk space for the uploaded zip")
	if es, _ := os.ReadDir(tmp); len(es) != 0 {
		t.Errorf("%d files left in -tmp-dir", len(es))
	}
	if n := s.treeSize(t); n != 0 {
		t.Errorf("tree size %d after the refusal, want 0", n)
	}
	free = 1 << 40
	if _, err := s.client.Upload(context.Background(), m, testproxy.ZipPath(src, m), ""); err != nil {
		t.Fatalf("upload with room: %v", err)
	}
}

// TestBackupClientKeepsFloor: the client's copy of a backup keeps the floor
// free on the file system of the file it writes, so that a hostile or
// broken server (or a URL that streams forever) cannot fill the disk. With
// a floor above any disk's free space, a server that streams with no
// Content-Length is stopped before its first byte is written, and one
// whose Content-Length is past the free space is refused before its body
// is read.
func TestBackupClientKeepsFloor(t *testing.T) {
	const floor = 1 << 60
	ctx := context.Background()
	for _, length := range []bool{false, true} {
		var sent int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if length {
				w.Header().Set("Content-Length", "1099511627776") // 1 TiB
			}
			buf := make([]byte, 64<<10)
			for i := 0; i < 64; i++ { // 4 MiB: more than one look at the free space
				n, err := w.Write(buf)
				if sent += int64(n); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}))
		f, err := os.Create(filepath.Join(t.TempDir(), "backup.db"))
		if err != nil {
			t.Fatal(err)
		}
		c := &Client{URL: srv.URL, Token: testToken}
		n, err := c.Backup(ctx, f, f.Name(), floor)
		srv.Close()
		fi, _ := f.Stat()
		f.Close()
		if !errors.Is(err, tlog.ErrLowDisk) || n != 0 || fi.Size() != 0 {
			t.Errorf("backup (Content-Length: %v) under a floor above the free space: %d bytes, file of %d, %v; want nothing written and an ErrLowDisk",
				length, n, fi.Size(), err)
		}
		if length && !strings.Contains(fmt.Sprint(err), "1048576 MiB") {
			t.Errorf("backup of 1 TiB refused with %v, want its size in MiB", err)
		}
	}
}

// TestBackupClientRefusesOtherContent: a 200 answer that is not a database
// copy (a login page of a proxy in front of sumd, a -server that names
// another site) is refused before its body is written, saying what it is:
// written, it failed the copy's verification as "invalid database", with
// the hint to run the backup again, which fetched the same page.
func TestBackupClientRefusesOtherContent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<html><body>Please sign in</body></html>\n")
	}))
	defer srv.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "backup.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := (&Client{URL: srv.URL, Token: testToken}).Backup(context.Background(), f, f.Name(), -1)
	fi, _ := f.Stat()
	if err == nil || !strings.Contains(err.Error(), "text/html") || n != 0 || fi.Size() != 0 {
		t.Errorf("backup from a server answering an HTML page: %d bytes, file of %d, %v; want nothing written and an error naming text/html", n, fi.Size(), err)
	}
}

// TestBackupRoomOfTmpDir: the free space a backup needs is looked up on the
// file system of -tmp-dir itself, where the copy goes. tlog.FreeSpace
// takes a file's path and looks at its directory's file system; given
// -tmp-dir, it looked at its parent's, another file system when -tmp-dir
// is a mount point (the larger disk the 507 says to point it at), so a
// backup was refused, or let fill the disk, by another disk's space.
func TestBackupRoomOfTmpDir(t *testing.T) {
	defer func(f func(string) (int64, bool)) { freeSpace = f }(freeSpace)
	dir := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(dir, 0o700)
	freeSpace = func(path string) (int64, bool) { // as tlog.FreeSpace: the file system of path's directory
		if filepath.Dir(path) == dir {
			return 1 << 40, true // the disk mounted at dir
		}
		return 0, true // its parent's: full
	}
	snaps := newSnapshots()
	snaps.n = 1
	h := New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: snaps.snapshot, TempDir: dir})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/admin/backup", nil))
	if w.Code != http.StatusOK || w.Body.String() != "abc" {
		t.Errorf("a backup into a -tmp-dir with room on its own file system: %d %q, want 200", w.Code, w.Body)
	}
}

// TestBackupSpoolKeepsFloor: a backup's copy into -tmp-dir keeps the floor
// while it writes, not only at its start: the log, on that disk by
// default, grows meanwhile, and a copy that then wrote on to the last
// byte could fail a commit half-way, which stops the log. It stops with a
// 507, leaving no file.
func TestBackupSpoolKeepsFloor(t *testing.T) {
	defer func(f func(string) (int64, bool)) { freeSpace = f }(freeSpace)
	dir := t.TempDir()
	freeSpace = func(path string) (int64, bool) {
		if strings.HasSuffix(path, ".db") { // the copy being written: the disk filled meanwhile
			return tlog.DefaultMinFree, true
		}
		return 1 << 40, true
	}
	snaps := newSnapshots()
	snaps.n = 1 // none waits
	h := New(nil, Options{Authenticated: true, Logger: quiet, Snapshot: snaps.snapshot, TempDir: dir})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/admin/backup", nil))
	if w.Code != http.StatusInsufficientStorage || !strings.Contains(w.Body.String(), "not enough free disk space") {
		t.Errorf("a backup whose disk filled while it was copied: %d %q, want 507 saying there is not enough free disk space", w.Code, w.Body)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "sumd-backup-*")); len(files) != 0 {
		t.Errorf("left behind: %v", files)
	}
}
