package mirror

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
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	"github.com/sumd-project/sumd/internal/testlog"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestFollowFull mirrors a log of 5,000 records in steps of 1,024 (so
// through staging), then follows it as it grows, in one step; a round with
// nothing new commits nothing.
func TestFollowFull(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 5000)
	m, s := newMirror(t, o)
	var calls int
	f := newFollower(t, o, m, func(opts *Options) {
		opts.Progress = func(done, total int64) {
			calls++
			if done > total || total != 5000 && total != 300 {
				t.Errorf("progress %d of %d", done, total)
			}
		}
	})
	res, err := f.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.To.N != 5000 || res.Commits < 5 || res.Records != 5000 {
		t.Errorf("first round: %+v; want 5000 records in several commits", res)
	}
	sameAs(t, m, o.log, all)
	if calls < 5 {
		t.Errorf("progress called %d times", calls)
	}
	o.grow(5000, 300)
	if res, err = f.Sync(ctx); err != nil || res.Commits != 1 || res.To.N != 5300 {
		t.Fatalf("second round: %+v, %v; want one commit to 5300", res, err)
	}
	sameAs(t, m, o.log, all)
	before := s.Commits()
	if res, err = f.Sync(ctx); err != nil || res.Commits != 0 || s.Commits() != before {
		t.Fatalf("idempotent round: %+v, %v, %d commits", res, err, s.Commits()-before)
	}
	if st := f.Status(); st.TreeSize != 5300 || st.Lag != 0 || st.Checked == nil || st.Problem != "" {
		t.Errorf("status %+v", st)
	}
}

// TestFollowResumes interrupts a staged round after two steps; a new
// follower on the same log finishes it, byte-identical to the origin.
func TestFollowResumes(t *testing.T) {
	o := newOrigin(t, 6000)
	m, _ := newMirror(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	f := newFollower(t, o, m, func(opts *Options) {
		opts.Step = 512
		opts.Progress = func(done, total int64) {
			if steps++; steps == 3 {
				cancel()
			}
		}
	})
	if _, err := f.Sync(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted round: %v", err)
	}
	st, err := m.Staged(context.Background())
	if err != nil || st == nil || st.Size == 0 || st.Size >= 6000 {
		t.Fatalf("staging after the interruption: %+v, %v", st, err)
	}
	o.grow(6000, 100) // the origin moves on meanwhile
	f = newFollower(t, o, m, nil)
	res, err := f.Sync(context.Background())
	if err != nil || res.To.N != 6100 {
		t.Fatalf("resumed round: %+v, %v", res, err)
	}
	sameAs(t, m, o.log, all)
}

// TestFollowResumesBeforeSkeleton stops a staged round between its first
// two commits, the staged head and the skeleton's tiles (as a SIGKILL
// there does): the next round stages the skeleton again rather than
// looking for it, and finishes byte-identical to the origin.
func TestFollowResumesBeforeSkeleton(t *testing.T) {
	o := newOrigin(t, 3000)
	m, store := newMirror(t, o)
	store.SetHooks(itlog.MemHooks{BeforeCommit: func(b *itlog.Batch) error {
		if b != nil && len(b.Tiles) > 0 {
			return fmt.Errorf("the disk is full: %w", itlog.ErrNotPersisted)
		}
		return nil
	}})
	f := newFollower(t, o, m, func(opts *Options) { opts.Step = 512 })
	if _, err := f.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "the disk is full") {
		t.Fatalf("round whose skeleton is not stored: %v", err)
	}
	st, err := m.Staged(context.Background())
	if err != nil || st == nil || st.Size != 0 || st.Tree.N != 3000 {
		t.Fatalf("staging after the failed skeleton: %+v, %v; want a staged head and nothing staged", st, err)
	}
	store.SetHooks(itlog.MemHooks{})
	res, err := newFollower(t, o, m, nil).Sync(context.Background())
	if err != nil || res.To.N != 3000 {
		t.Fatalf("resumed round: %+v, %v", res, err)
	}
	sameAs(t, m, o.log, all)
}

// TestFollowPartial keeps the records of one pattern and of a go.sum file:
// the others are not stored, every tile is.
func TestFollowPartial(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 3000)
	m, _ := newMirror(t, o)
	gosum := filepath.Join(t.TempDir(), "go.sum")
	var lines []byte
	for _, i := range []int{5, 1234, 2999} {
		lines = append(lines, testRecord(i, 1).Text()...)
	}
	if err := os.WriteFile(gosum, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	sel, err := ParseSelection([]string{"golang.org/x/*", gosum})
	if err != nil {
		t.Fatal(err)
	}
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel })
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	holds := func(id int64) bool { return id%10 == 3 || id == 5 || id == 1234 || id == 2999 }
	sameAs(t, m, o.log, holds)
	// A version added to the go.sum later, older than the held head, and
	// the records of the pattern the origin adds.
	o.grow(3000, 100)
	if err := os.WriteFile(gosum, append(lines, testRecord(7, 1).Text()...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sameAs(t, m, o.log, func(id int64) bool { return holds(id) || id == 7 })
}

// TestForward forwards lookups of versions a partial mirror lacks: stored
// and answered when the origin holds them (older than the mirror's head,
// or recorded since), a 404 with the origin's reason when it does not, and
// the offline 404 when it cannot be reached.
func TestForward(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 600)
	m, _ := newMirror(t, o)
	sel, _ := ParseSelection([]string{"golang.org/x/*"})
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel })
	if _, err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ops := f.Ops()
	old := testRecord(17, 1)
	if id, err := ops.Lookup(ctx, module.Version{Path: old.Path, Version: old.Version}); err != nil || id != 17 {
		t.Fatalf("forwarded lookup of an old version = %d, %v", id, err)
	}
	o.grow(600, 10)
	newer := testRecord(605, 1)
	if id, err := ops.Lookup(ctx, module.Version{Path: newer.Path, Version: newer.Version}); err != nil || id != 605 {
		t.Fatalf("forwarded lookup of a newer version = %d, %v", id, err)
	}
	if tree, _ := m.Tree(ctx); tree.N != 610 {
		t.Errorf("the mirror did not move to the lookup's head: %d", tree.N)
	}
	sameAs(t, m, o.log, func(id int64) bool { return id%10 == 3 || id == 17 || id == 605 })

	_, err := ops.Lookup(ctx, module.Version{Path: "example.com/nothere", Version: "v1.0.0"})
	if status(err) != http.StatusNotFound || !contains(err, "the origin sum.origin.example does not hold it") {
		t.Errorf("lookup of a version nobody holds = %v", err)
	}
	if contains(err, "404") || contains(err, "127.0.0.1") {
		t.Errorf("lookup of a version nobody holds = %v: quotes the origin's answer, which may name its network's hosts", err)
	}
	o.srv.Close()
	_, err = ops.Lookup(ctx, module.Version{Path: "example.com/mod1", Version: "v1.1.0"})
	if status(err) != http.StatusNotFound || !contains(err, "is offline: it cannot reach its origin") || !contains(err, "610 records") {
		t.Errorf("lookup while the origin is down = %v", err)
	}
}

func status(err error) int {
	var se *server.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

func contains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

// TestFollowLargeRecord follows an origin (x/mod's test server) holding, at
// id 512, a record of 2,553 bytes (a 1,217-byte module path: x/mod and the
// go command have no limit; a sumd primary has gosum.MaxRecordSize): it
// hashes to its leaf, so the mirror stores it, indexes it, and serves the
// data tile holding it byte for byte as the origin does.
func TestFollowLargeRecord(t *testing.T) {
	ctx := context.Background()
	skey, vkey, err := itlog.GenerateKey(testName)
	if err != nil {
		t.Fatal(err)
	}
	long := "example.com/" + strings.Repeat("a", 1205)
	ts := sumdb.NewTestServer(skey, func(path, vers string) ([]byte, error) {
		r := testRecord(0, 1)
		return fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod %s\n", path, vers, r.Hash, path, vers, r.GoMod), nil
	})
	for i := range 600 {
		path := fmt.Sprintf("example.com/mod%d", i)
		if i == 512 {
			path = long
		}
		if _, err := ts.Lookup(ctx, module.Version{Path: path, Version: "v1.0.0"}); err != nil {
			t.Fatal(err)
		}
	}
	if recs, _ := ts.ReadRecords(ctx, 512, 1); len(recs[0]) != 2553 {
		t.Fatalf("record 512 is %d bytes, want 2553", len(recs[0]))
	}
	osrv := httptest.NewServer(sumdb.NewServer(ts))
	defer osrv.Close()
	c, err := sumdbclient.New(osrv.URL, sumdbclient.Options{Backoff: time.Millisecond, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := sumdbclient.ParseVerifiers(vkey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := itlog.OpenStore(itlog.NewMemStore(), itlog.Options{VerifierKeys: []string{vkey}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	logs := new(testlog.Buffer)
	f, err := New(Options{Log: l, Client: c, Verifiers: vs, Logger: logs.Logger(), Step: 256})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := f.Sync(ctx); err != nil || res.To.N != 600 {
		t.Fatalf("Sync = %+v, %v; logs:\n%s", res, err, logs)
	}
	msrv := httptest.NewServer(server.New(testName, f.Ops(), server.Options{Logger: quiet}))
	defer msrv.Close()
	for _, p := range []string{"/tile/8/data/002.p/88", "/tile/8/0/002.p/88", "/tile/8/data/001", "/latest"} {
		want, got := get(t, osrv.URL+p), get(t, msrv.URL+p)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the mirror serves %d bytes unlike the origin's %d", p, len(got), len(want))
		}
	}
	// internal/server refuses a request path over 1024 bytes (414) on any
	// sumd, so the lookup is checked below HTTP.
	if id, err := f.Ops().Lookup(ctx, module.Version{Path: long, Version: "v1.0.0"}); err != nil || id != 512 {
		t.Errorf("lookup of the long path = %d, %v; want 512", id, err)
	}
	// Across an air gap too: the mirror's bundle imports into another.
	l2, err := itlog.OpenStore(itlog.NewMemStore(), itlog.Options{VerifierKeys: []string{vkey}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if st, err := importBundle(t, l2, vkey, export(t, l, 0), 0); err != nil || st.To.N != 600 {
		t.Fatalf("import of the mirror's bundle: %+v, %v", st, err)
	}
	if recs, err := l2.ReadRecords(ctx, 512, 1); err != nil || len(recs[0]) != 2553 {
		t.Errorf("the imported record 512: %d bytes, %v", len(recs[0]), err)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %q, %v", url, resp.StatusCode, body, err)
	}
	return body
}
