package mirror

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/server"
	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

func export(t *testing.T, l *itlog.Log, since int64) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := Export(context.Background(), l, &b, since); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func importBundle(t testing.TB, l *itlog.Log, key string, bundle []byte, step int64) (*ImportStats, error) {
	t.Helper()
	vs, err := sumdbclient.ParseVerifiers(key)
	if err != nil {
		t.Fatal(err)
	}
	return Import(context.Background(), l, vs, bytes.NewReader(bundle), ImportOptions{Step: step, Logger: quiet})
}

// TestBundle carries a mirror across an air gap: a full bundle, then an
// incremental one (proportional to what was added), into an empty mirror
// in steps and into one that already holds part of the tree; a partial
// mirror's bundle; and a bundle of a tree the mirror holds already.
func TestBundle(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 1000)
	a, _ := newMirror(t, o)
	fa := newFollower(t, o, a, nil)
	sync := func() {
		t.Helper()
		if _, err := fa.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	part, _ := newMirror(t, o) // holds 1000 records
	if _, err := importBundle(t, part, o.key.VerifierKey(), export(t, a, 0), 0); err != nil {
		t.Fatal(err)
	}
	o.grow(1000, 2000)
	sync()
	full := export(t, a, 0)

	b, _ := newMirror(t, o)
	st, err := importBundle(t, b, o.key.VerifierKey(), full, 512)
	if err != nil || st.To.N != 3000 || st.Records != 3000 || st.Commits < 4 {
		t.Fatalf("import of the full bundle in steps: %+v, %v", st, err)
	}
	sameAs(t, b, o.log, all)
	if st, err := importBundle(t, part, o.key.VerifierKey(), full, 512); err != nil || st.Records != 2000 {
		t.Fatalf("import of the full bundle into a mirror holding 1000: %+v, %v", st, err)
	}
	sameAs(t, part, o.log, all)

	o.grow(3000, 300)
	sync()
	incr := export(t, a, 3000)
	if len(incr) > len(full)/5 {
		t.Errorf("incremental bundle of 300 records is %d bytes, the full one of 3000 %d", len(incr), len(full))
	}
	if st, err := importBundle(t, b, o.key.VerifierKey(), incr, 0); err != nil || st.Commits != 1 || st.To.N != 3300 {
		t.Fatalf("incremental import: %+v, %v", st, err)
	}
	sameAs(t, b, o.log, all)
	if st, err := importBundle(t, b, o.key.VerifierKey(), full, 0); err != nil || st.To.N != 3300 || st.Commits != 0 {
		t.Errorf("import of an older bundle: %+v, %v; want nothing done", st, err)
	}
	empty, _ := newMirror(t, o)
	if _, err := importBundle(t, empty, o.key.VerifierKey(), incr, 0); err == nil || !strings.Contains(err.Error(), "starts at tree 3000, but the mirror holds only 0") {
		t.Errorf("incremental bundle into an empty mirror: %v", err)
	}

	// A partial mirror's bundle carries its records only.
	c, _ := newMirror(t, o)
	sel, _ := ParseSelection([]string{"golang.org/x/*"})
	if _, err := newFollower(t, o, c, func(opts *Options) { opts.Select = sel }).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfig(ctx, c, &Config{VerifierKeys: c.VerifierKeys(), Modules: []string{"golang.org/x/*"}}); err != nil {
		t.Fatal(err) // as sumd mirror -modules does: its bundles say partial
	}
	d, _ := newMirror(t, o)
	if _, err := importBundle(t, d, o.key.VerifierKey(), export(t, c, 0), 1024); err != nil {
		t.Fatal(err)
	}
	sameAs(t, d, o.log, func(id int64) bool { return id%10 == 3 })
	// d became partial with it: its own bundles say so, and a partial
	// bundle is still accepted into it.
	if cfg, err := ReadConfig(ctx, d); err != nil || cfg == nil || !cfg.Partial {
		t.Errorf("the mirror a partial bundle made: config %+v, %v; want partial", cfg, err)
	}
	var buf bytes.Buffer
	if st, err := Export(ctx, d, &buf, 0); err != nil || !st.Header.Partial {
		t.Errorf("export of the mirror a partial bundle made: %+v, %v; want a partial bundle", st, err)
	}
	if _, err := importBundle(t, d, o.key.VerifierKey(), export(t, c, 0), 0); err != nil {
		t.Errorf("a partial bundle into a partial mirror: %v", err)
	}
	// A mirror a partial bundle made before its configuration recorded
	// that (as with sumd before Config.Partial) lacks records: it still
	// takes partial bundles, and is recorded partial by the next one.
	if err := WriteConfig(ctx, d, &Config{VerifierKeys: d.VerifierKeys()}); err != nil {
		t.Fatal(err)
	}
	if _, err := importBundle(t, d, o.key.VerifierKey(), export(t, c, 0), 0); err != nil {
		t.Errorf("a partial bundle of its tree into a mirror made of partial bundles before it was recorded partial: %v", err)
	}
	if cfg, err := ReadConfig(ctx, d); err != nil || cfg == nil || cfg.Partial {
		t.Errorf("that mirror's config after a bundle of its tree: %+v, %v; want it unchanged", cfg, err)
	}
	o.grow(4000, 300)
	if _, err := newFollower(t, o, c, func(opts *Options) { opts.Select = sel }).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := importBundle(t, d, o.key.VerifierKey(), export(t, c, 0), 0); err != nil {
		t.Errorf("a partial bundle of a larger tree into it: %v", err)
	}
	if cfg, err := ReadConfig(ctx, d); err != nil || cfg == nil || !cfg.Partial {
		t.Errorf("that mirror's config after a bundle of a larger tree: %+v, %v; want partial", cfg, err)
	}
}

// TestBundleRefused offers an incremental bundle tampered in every way:
// each import fails naming the problem and stores nothing.
func TestBundleRefused(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 700)
	a, _ := newMirror(t, o)
	fa := newFollower(t, o, a, nil)
	if _, err := fa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	base := export(t, a, 0)
	o.grow(700, 1300)
	if _, err := fa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	good := export(t, a, 700)

	fork := openPrimary(t, o.key)
	addRecords(t, fork, 0, 690)
	addRecords(t, fork, 50_000, 1310)
	fm, _ := newMirror(t, o)
	ff := newFollower(t, o, fm, nil)
	o.serve(server.New(testName, fork, server.Options{Logger: quiet}))
	if _, err := ff.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	o.serve(nil)
	forked := export(t, fm, 700)

	entries := readEntries(t, good)
	for _, tc := range []struct {
		name   string
		bundle []byte
		want   string
	}{
		{"tampered tile", rewrite(t, entries, func(e []entry) []entry {
			i := slices.IndexFunc(e, func(x entry) bool { return strings.HasPrefix(x.name, "tile/8/0/") })
			e[i].data[7] ^= 1
			return e
		}), "tile tile/8/0/002 does not hash to its signed head"},
		{"tampered tile, then a broken records entry", rewrite(t, entries, func(e []entry) []entry {
			// Tile 3 is read past the skeleton, with its records, by
			// walkBundle's reading goroutine: the tile's error, first in
			// the bundle, is the one named.
			i := slices.IndexFunc(e, func(x entry) bool { return x.name == "tile/8/0/003" })
			e[i].data[7] ^= 1
			j := slices.IndexFunc(e, func(x entry) bool { return x.name == "records/3" })
			e[j].data = []byte("not records")
			return e
		}), "tile tile/8/0/003 does not hash to its signed head"},
		{"tampered record", rewrite(t, entries, func(e []entry) []entry {
			i := slices.IndexFunc(e, func(x entry) bool { return strings.HasPrefix(x.name, "records/") })
			h := bytes.Index(e[i].data, []byte("h1:")) + 3
			e[i].data[h] ^= 'A' ^ 'B' // another base64 digit
			return e
		}), "record 700 does not hash"},
		{"truncated", good[:len(good)/2], "truncated"},
		{"reordered", rewrite(t, entries, func(e []entry) []entry {
			e[4], e[6] = e[6], e[4]
			return e
		}), "out of order"},
		{"missing entry", rewrite(t, entries, func(e []entry) []entry { return append(e[:7:7], e[8:]...) }), "out of order"},
		{"extra entry", rewrite(t, entries, func(e []entry) []entry { return append(e, entry{"extra", []byte("x")}) }), "after its last one"},
		{"forked", forked, "SECURITY"},
		{"another origin", rewrite(t, entries, func(e []entry) []entry {
			e[1].data = bytes.Replace(e[1].data, []byte(testName), []byte("sum.other.example"), 1)
			return e
		}), "only: check -origin-key, or"},
		{"not a bundle", []byte("hello"), "truncated"},
		// The tar reader stops at the end marker: what follows it was
		// ignored, a second bundle appended to the first too.
		{"another bundle appended", append(bytes.Clone(good), good...), "data after its end"},
		{"a byte appended after the padding", append(append(bytes.Clone(good), make([]byte, 10240)...), 1), "data after its end"},
		{"too much padding", append(bytes.Clone(good), make([]byte, 1<<20+1)...), "bytes of padding after its end"},
		// A full bundle must carry every record from its "from" on: one
		// with records entries removed (keeping the first), or records
		// removed from an entry, lost those records for ever.
		{"records entries removed", rewrite(t, entries, func(e []entry) []entry {
			first := slices.IndexFunc(e, func(x entry) bool { return strings.HasPrefix(x.name, "records/") })
			return slices.DeleteFunc(e, func(x entry) bool { return strings.HasPrefix(x.name, "records/") && x.name != e[first].name })
		}), "has no entry records/"},
		{"last records entry removed", rewrite(t, entries, func(e []entry) []entry { return e[:len(e)-1] }), "has no entry records/6 (records 1536 to 1791)"},
		{"a record removed", rewrite(t, entries, func(e []entry) []entry {
			i := slices.IndexFunc(e, func(x entry) bool { return x.name == "records/4" })
			lines := bytes.SplitAfter(e[i].data, []byte("\n"))
			e[i].data = bytes.Join(append(lines[:8:8], lines[12:]...), nil) // 4 lines a record: the third
			return e
		}), "entry records/4 lacks record 1026"},
		// The header is not signed: a time in the future would claim
		// freshness for ever (the checked time only moves forward).
		{"checked in the future", rewrite(t, entries, func(e []entry) []entry {
			e[0].data = regexp.MustCompile(`checked \S+`).ReplaceAll(e[0].data, []byte("checked 2099-01-01T00:00:00Z"))
			return e
		}), "checked at 2099-01-01T00:00:00Z, in the future"},
		{"created in the future", rewrite(t, entries, func(e []entry) []entry {
			e[0].data = regexp.MustCompile(`created \S+`).ReplaceAll(e[0].data, []byte("created "+time.Now().Add(11*time.Minute).UTC().Format(time.RFC3339)))
			return e
		}), "in the future"},
		{"partial bundle into a full mirror", rewrite(t, entries, func(e []entry) []entry {
			e[0].data = bytes.Replace(e[0].data, []byte("partial false"), []byte("partial true"), 1)
			return e
		}), "would lose records for ever"},
	} {
		b, s := newMirror(t, o)
		if _, err := importBundle(t, b, o.key.VerifierKey(), base, 0); err != nil {
			t.Fatal(err)
		}
		before := s.Commits()
		checked, _ := Checked(ctx, b)
		_, err := importBundle(t, b, o.key.VerifierKey(), tc.bundle, 512)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: import = %v, want %q", tc.name, err, tc.want)
		}
		if now, _ := Checked(ctx, b); !now.Equal(checked) {
			t.Errorf("%s: refused, but the mirror's checked time moved from %v to %v", tc.name, checked, now)
		}
		if s.Commits() != before {
			t.Errorf("%s: refused, but stored", tc.name)
		}
		if tree, _ := b.Tree(ctx); tree.N != 700 {
			t.Errorf("%s: the mirror moved to %d", tc.name, tree.N)
		}
		if tc.name == "forked" && !IsSecurity(err) {
			t.Errorf("forked bundle: %v is not a SecurityError", err)
		}

		// A mirror that already holds the bundle's tree has nothing to
		// store, but a damaged bundle is still named, not reported
		// imported (it was: 0 records, no error).
		if _, err := importBundle(t, b, o.key.VerifierKey(), good, 0); err != nil {
			t.Fatal(err)
		}
		before = s.Commits()
		_, err = importBundle(t, b, o.key.VerifierKey(), tc.bundle, 512)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s, into a mirror holding its tree: import = %v, want %q", tc.name, err, tc.want)
		}
		if s.Commits() != before {
			t.Errorf("%s, into a mirror holding its tree: refused, but stored", tc.name)
		}
	}
	// The same, undamaged: nothing to do, and no error.
	// A tar padded to GNU tar's record size is undamaged too.
	padded := append(bytes.Clone(good), make([]byte, 10240-len(good)%10240)...)
	b, _ := newMirror(t, o)
	for _, step := range []struct {
		bundle  []byte
		to      int64
		records int
	}{{base, 700, 700}, {good, 2000, 1300}, {padded, 2000, 0}, {base, 2000, 0}} {
		if st, err := importBundle(t, b, o.key.VerifierKey(), step.bundle, 0); err != nil || st.To.N != step.to || st.Records != step.records {
			t.Fatalf("import: %+v, %v; want tree %d, %d records", st, err, step.to, step.records)
		}
	}
}

type entry struct {
	name string
	data []byte
}

func readEntries(t *testing.T, bundle []byte) []entry {
	var out []entry
	tr := tar.NewReader(bytes.NewReader(bundle))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out = append(out, entry{h.Name, data})
	}
}

func rewrite(t *testing.T, entries []entry, change func([]entry) []entry) []byte {
	e := make([]entry, len(entries))
	for i, x := range entries {
		e[i] = entry{x.name, bytes.Clone(x.data)}
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, x := range change(e) {
		tw.WriteHeader(&tar.Header{Name: x.name, Mode: 0o644, Size: int64(len(x.data)), Typeflag: tar.TypeReg})
		tw.Write(x.data)
	}
	tw.Close()
	return b.Bytes()
}

func flip(b []byte) []byte {
	b[len(b)/2] ^= 1
	return b
}

// TestImportResumes interrupts an import in steps after a few of them
// (their commits overlap the reading of the next); importing the same
// bundle again finishes the staging and publishes the head.
func TestImportResumes(t *testing.T) {
	o := newOrigin(t, 3000)
	a, _ := newMirror(t, o)
	if _, err := newFollower(t, o, a, nil).Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	bundle := export(t, a, 0)
	vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newMirror(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = Import(ctx, b, vs, bytes.NewReader(bundle), ImportOptions{Step: 256, Logger: quiet, Progress: func(done, total int64) {
		if done >= 1024 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted import: %v, want context.Canceled", err)
	}
	st, err := b.Staged(context.Background())
	if err != nil || st == nil || st.Size < 1024 || st.Size >= 3000 || b.Published().Tree.N != 0 {
		t.Fatalf("after the interrupted import: staged %+v, %v, published %d; want a staging part way", st, err, b.Published().Tree.N)
	}
	// From empty: the skeleton, ten one-tile parts and the Extend.
	res, err := Import(context.Background(), b, vs, bytes.NewReader(bundle), ImportOptions{Step: 256, Logger: quiet})
	if err != nil || res.To.N != 3000 || res.Commits > 8 {
		t.Fatalf("resumed import: %+v, %v; want it to store from %d on, in at most 8 commits", res, err, st.Size)
	}
	sameAs(t, b, o.log, all)
}

// interruptImport imports bundle into b in steps of 256 records and cancels
// it once at records are staged, leaving a staging part way.
func interruptImport(t *testing.T, b *itlog.Log, vs *sumdbclient.Verifiers, bundle []byte, at int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Import(ctx, b, vs, bytes.NewReader(bundle), ImportOptions{Step: 256, Logger: quiet, Progress: func(done, total int64) {
		if done >= at {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted import: %v, want context.Canceled", err)
	}
	if st, err := b.Staged(context.Background()); err != nil || st == nil {
		t.Fatalf("after the interrupted import: staged %+v, %v; want a staging", st, err)
	}
}

// TestImportAfterInterrupted interrupts the import of a bundle, then
// imports a newer one: the staging the first left is replaced, since the
// newer tree provably contains it, and the newer bundle is imported. It
// was refused for ever ("the mirror is part way to tree 3000 (staged)"),
// with a hint that could not help. A bundle of a tree smaller than the
// staged one is refused, naming the tree to import; one that forks from
// the staged tree is a SecurityError and leaves the staging.
func TestImportAfterInterrupted(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 2000)
	a, _ := newMirror(t, o)
	fa := newFollower(t, o, a, nil)
	sync := func() {
		t.Helper()
		if _, err := fa.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	b0 := export(t, a, 0)
	o.grow(2000, 1000)
	sync()
	b1 := export(t, a, 0)
	o.grow(3000, 1000)
	sync()
	b2 := export(t, a, 0)
	vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}

	b, _ := newMirror(t, o)
	interruptImport(t, b, vs, b1, 1024)
	if _, err := importBundle(t, b, o.key.VerifierKey(), b0, 256); err == nil || !strings.Contains(err.Error(), "import a bundle to tree 3000 or later first") {
		t.Errorf("import of a bundle smaller than the staged tree: %v", err)
	}
	st, err := importBundle(t, b, o.key.VerifierKey(), b2, 256)
	if err != nil || st.To.N != 4000 || st.Records != 4000 {
		t.Fatalf("import of a newer bundle after an interrupted one: %+v, %v", st, err)
	}
	if st, err := b.Staged(ctx); err != nil || st != nil {
		t.Errorf("after the import: staged %+v, %v; want none", st, err)
	}
	sameAs(t, b, o.log, all)

	// A staging of a fork of the origin's log (signed with its key).
	fork := openPrimary(t, o.key)
	addRecords(t, fork, 50_000, 2500)
	fm, _ := newMirror(t, o)
	o.serve(server.New(testName, fork, server.Options{Logger: quiet}))
	if _, err := newFollower(t, o, fm, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	o.serve(nil)
	c, _ := newMirror(t, o)
	interruptImport(t, c, vs, export(t, fm, 0), 1024)
	if _, err := importBundle(t, c, o.key.VerifierKey(), b2, 256); !IsSecurity(err) || !strings.Contains(err.Error(), "records the mirror staged") {
		t.Errorf("import of a bundle forking from the staged tree: %v, want a SecurityError", err)
	}
	if st, err := c.Staged(ctx); err != nil || st == nil || st.Tree.N != 2500 {
		t.Errorf("after the refused import: staged %+v, %v; want the staging kept", st, err)
	}
}

// TestImportFailureKeepsNewerHead fails the import of a bundle (to 4000)
// in its second pass, after an interrupted import (to 3000) left a
// staging: the staging must end as the newer verified head, never as none.
// Import dropped the staging before the second pass staged anything, so
// the mirror forgot both heads: Restore then restored 2000 records (a
// primary restored so signs a fork of 3000 and 4000), and the mirror
// followed a fork consistent with 2000 but not with 3000.
func TestImportFailureKeepsNewerHead(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 2000)
	a, _ := newMirror(t, o)
	fa := newFollower(t, o, a, nil)
	sync := func() {
		t.Helper()
		if _, err := fa.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	b0 := export(t, a, 0)
	o.grow(2000, 1000)
	sync()
	b1 := export(t, a, 0)
	o.grow(3000, 1000)
	sync()
	b2 := export(t, a, 0)
	vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newMirror(t, o)
	if _, err := importBundle(t, b, o.key.VerifierKey(), b0, 256); err != nil {
		t.Fatal(err)
	}
	interruptImport(t, b, vs, b1, 512)
	other := rewrite(t, readEntries(t, b2), func(e []entry) []entry {
		e[0].data = bytes.Replace(e[0].data, []byte("partial false"), []byte("partial true"), 1)
		return e
	})
	r := &switching{first: bytes.NewReader(b2), second: bytes.NewReader(other)}
	if _, err := Import(ctx, b, vs, r, ImportOptions{Step: 256, Logger: quiet}); err == nil || !strings.Contains(err.Error(), "changed while it was read") {
		t.Fatalf("import of a bundle changed between the passes: %v", err)
	}
	if st, err := b.Staged(ctx); err != nil || st == nil || st.Tree.N != 4000 || st.Size != 2000 {
		t.Fatalf("after the failed import: staged %+v, %v; want tree 4000 staged up to 2000", st, err)
	}
	if rs, err := Restore(ctx, itlog.NewMemStore(), b, []*itlog.Key{o.key}, nil, RestoreOptions{Logger: quiet}); err == nil {
		t.Errorf("Restore restored tree %d, though the mirror verified the primary's trees 3000 and 4000", rs.Tree.N)
	}

	fork := openPrimary(t, o.key)
	addRecords(t, fork, 0, 2000)
	addRecords(t, fork, 50_000, 1500)
	o.serve(server.New(testName, fork, server.Options{Logger: quiet}))
	if res, err := newFollower(t, o, b, nil).Sync(ctx); err == nil {
		t.Errorf("the mirror followed a fork of the tree of 4000 records it verified: now at %d", res.To.N)
	}
	o.serve(nil)
	if st, err := importBundle(t, b, o.key.VerifierKey(), b2, 256); err != nil || st.To.N != 4000 {
		t.Fatalf("import of the genuine bundle after: %+v, %v", st, err)
	}
	sameAs(t, b, o.log, all)
}

// TestImportChangedWaitsForStage imports a full bundle whose second
// reading lacks the records of data tile 10, the last part to stage
// (tile 11 is in the skeleton), with the Stage of tile 9 held in its
// commit when that part is refused: Import must wait for that Stage before
// it returns. It returned at once, with the Stage still committing. No
// sleeps: the held commit is let go once the importing goroutine waits for
// it (seen in its stack), and Import returning first is the failure.
func TestImportChangedWaitsForStage(t *testing.T) {
	o := newOrigin(t, 3000)
	a, _ := newMirror(t, o)
	if _, err := newFollower(t, o, a, nil).Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := export(t, a, 0)
	stripped := rewrite(t, readEntries(t, good), func(e []entry) []entry {
		return slices.DeleteFunc(e, func(x entry) bool { return x.name == "records/10" })
	})
	vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	b, s := newMirror(t, o)
	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.SetHooks(itlog.MemHooks{BeforeCommit: func(batch *itlog.Batch) error {
		if batch != nil && len(batch.Tiles) == 1 && batch.Tiles[0].L == 0 && batch.Tiles[0].N == 9 {
			once.Do(func() { close(entered); <-release })
		}
		return nil
	}})
	go func() {
		defer close(done)
		r := &switching{first: bytes.NewReader(good), second: bytes.NewReader(stripped)}
		_, err = Import(context.Background(), b, vs, r, ImportOptions{Step: 256, Logger: quiet})
	}()
	<-entered
	for waiting := false; !waiting; {
		select {
		case <-done:
			close(release)
			t.Fatalf("Import returned (%v) while the Stage of tile 9 was committing", err)
		default:
		}
		buf := make([]byte, 1<<20)
		waiting = bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("mirror.(*bundleStore).wait("))
		runtime.Gosched()
	}
	close(release)
	<-done
	if err == nil || !strings.Contains(err.Error(), "changed while it was read") {
		t.Fatalf("import of a bundle changed between the passes: %v", err)
	}
	if st, err := b.Staged(context.Background()); err != nil || st == nil || st.Size != 10*256 {
		t.Errorf("after the refused import: staged %+v, %v; want tiles up to 9 staged (2560 records)", st, err)
	}
}

// TestImportFills imports full bundles into a full mirror that lacks
// records of the tree it holds (as one that imported a bundle stripped of
// records did, before such bundles were refused): the bundle fills them
// in, whether its tree is the held one or beyond it; it stored none.
func TestImportFills(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 1000)
	a, _ := newMirror(t, o)
	fa := newFollower(t, o, a, nil)
	if _, err := fa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	full := export(t, a, 0)
	lacking := func() *itlog.Log {
		m, _ := newMirror(t, o)
		sel, _ := ParseSelection([]string{"golang.org/x/*"})
		if _, err := newFollower(t, o, m, func(opts *Options) { opts.Select = sel }).Sync(ctx); err != nil {
			t.Fatal(err)
		}
		return m // no configuration: a full mirror, holding a tenth of its records
	}
	m, m2 := lacking(), lacking()
	// Its own bundle would be refused: export says so instead.
	if _, err := Export(ctx, m, io.Discard, 0); err == nil || !strings.Contains(err.Error(), "the mirror is full but lacks records of data tile 0 (26 of the 256") {
		t.Errorf("export of a full mirror lacking records: %v", err)
	}
	if st, err := importBundle(t, m, o.key.VerifierKey(), full, 256); err != nil || st.Records != 900 || st.To.N != 1000 {
		t.Fatalf("import of a full bundle of the held tree into a mirror lacking records: %+v, %v; want 900 records stored", st, err)
	}
	sameAs(t, m, o.log, all)
	if st, err := importBundle(t, m, o.key.VerifierKey(), full, 256); err != nil || st.Records != 0 || st.Commits != 0 {
		t.Errorf("the same import again: %+v, %v; want nothing stored", st, err)
	}

	o.grow(1000, 500)
	if _, err := fa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := importBundle(t, m2, o.key.VerifierKey(), export(t, a, 0), 256); err != nil || st.Records != 1400 || st.To.N != 1500 {
		t.Fatalf("import of a larger full bundle into a mirror lacking records: %+v, %v; want 500 + 900 records stored", st, err)
	}
	sameAs(t, m2, o.log, all)
}

// switching reads as first until it has been sought to its start twice
// (Import's second pass), then as second: a bundle file changed in place
// between the passes.
type switching struct {
	first, second *bytes.Reader
	seeks         int
}

func (s *switching) cur() *bytes.Reader {
	if s.seeks >= 2 {
		return s.second
	}
	return s.first
}

func (s *switching) Read(p []byte) (int, error) { return s.cur().Read(p) }

func (s *switching) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekStart {
		s.seeks++
	}
	return s.cur().Seek(off, whence)
}

// TestImportChangedBetweenPasses imports a full bundle whose second
// reading lacks records (or has another header): nothing lacking is
// staged or published, and importing the genuine bundle then stores every
// record. Staged without their records, tiles were skipped with them by
// the resumed import.
func TestImportChangedBetweenPasses(t *testing.T) {
	o := newOrigin(t, 3000)
	a, _ := newMirror(t, o)
	if _, err := newFollower(t, o, a, nil).Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := export(t, a, 0)
	entries := readEntries(t, good)
	stripped := rewrite(t, entries, func(e []entry) []entry {
		return slices.DeleteFunc(e, func(x entry) bool { return x.name == "records/5" })
	})
	other := rewrite(t, entries, func(e []entry) []entry {
		e[0].data = bytes.Replace(e[0].data, []byte("partial false"), []byte("partial true"), 1)
		return e
	})
	vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, second := range [][]byte{stripped, other} {
		b, _ := newMirror(t, o)
		r := &switching{first: bytes.NewReader(good), second: bytes.NewReader(second)}
		_, err = Import(context.Background(), b, vs, r, ImportOptions{Step: 256, Logger: quiet})
		if err == nil || !strings.Contains(err.Error(), "changed while it was read") || b.Published().Tree.N != 0 {
			t.Fatalf("import of a bundle changed between the passes: %v, tree %d", err, b.Published().Tree.N)
		}
		if st, err := importBundle(t, b, o.key.VerifierKey(), good, 256); err != nil || st.To.N != 3000 {
			t.Fatalf("import of the genuine bundle after: %+v, %v", st, err)
		}
		sameAs(t, b, o.log, all)
	}
}

// TestImportEdgeTileChangedBetweenPasses imports a full bundle that starts
// below the mirror's tree (1000, inside level-0 tile 3) and whose second
// reading lacks the records of that edge tile from the held size on
// (1000–1023), in one Extend and in steps: the import must fail as changed
// between the passes and publish nothing, where it published tree 3000
// without those records (the edge tile was exempt from the check) and
// Export then refused the mirror.
func TestImportEdgeTileChangedBetweenPasses(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 1000)
	a, _ := newMirror(t, o)
	fa := newFollower(t, o, a, nil)
	if _, err := fa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	at1000 := export(t, a, 0)
	o.grow(1000, 2000)
	if _, err := fa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	good := export(t, a, 0)
	stripped := rewrite(t, readEntries(t, good), func(e []entry) []entry {
		for i := range e {
			if e[i].name == "records/3" {
				cut := bytes.Index(e[i].data, []byte("\n1000\n")) // keep 768–999
				if cut < 0 {
					t.Fatal("records/3 does not hold record 1000")
				}
				e[i].data = e[i].data[:cut+1]
			}
		}
		return e
	})
	vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []int64{256, 4096} { // one Extend; Stage in steps
		b, _ := newMirror(t, o)
		if _, err := importBundle(t, b, o.key.VerifierKey(), at1000, 256); err != nil {
			t.Fatal(err)
		}
		r := &switching{first: bytes.NewReader(good), second: bytes.NewReader(stripped)}
		_, err := Import(ctx, b, vs, r, ImportOptions{Step: step, Logger: quiet})
		if !errors.Is(err, errChanged) || b.Published().Tree.N != 1000 {
			t.Fatalf("step %d: import of a bundle whose edge tile's records went between the passes: %v, tree %d; want it refused as changed, tree 1000",
				step, err, b.Published().Tree.N)
		}
		if st, err := importBundle(t, b, o.key.VerifierKey(), good, step); err != nil || st.To.N != 3000 {
			t.Fatalf("step %d: import of the genuine bundle after: %+v, %v", step, st, err)
		}
		sameAs(t, b, o.log, all)
	}
}

// TestImportAfterDroppedStaging interrupts the import of a bundle of 2,304
// records (a multiple of 256) after 1,024, then that of a bundle of 4,000,
// which drops the first staging, after 256. The dropped staging left its
// full last tile (8) beyond tiles 4–7, which neither stored: Staged said
// 2,304, every import of the second bundle failed on "tile missing:
// tile/8/0/004", and `sumd mirror` on that database reported SECURITY
// every round. Both must now finish the staging from where it really is.
func TestImportAfterDroppedStaging(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 2304)
	a, _ := newMirror(t, o)
	fa := newFollower(t, o, a, nil)
	if _, err := fa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	b1 := export(t, a, 0)
	o.grow(2304, 4000-2304)
	if _, err := fa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	b2 := export(t, a, 0)
	vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	resume := map[string]func(*itlog.Log) error{
		"import": func(b *itlog.Log) error {
			_, err := importBundle(t, b, o.key.VerifierKey(), b2, 256)
			return err
		},
		"follower": func(b *itlog.Log) error {
			_, err := newFollower(t, o, b, nil).Sync(ctx)
			return err
		},
	}
	for name, resume := range resume {
		b, _ := newMirror(t, o)
		interruptImport(t, b, vs, b1, 1024)
		interruptImport(t, b, vs, b2, 256)
		st, err := b.Staged(ctx)
		if err != nil || st == nil {
			t.Fatalf("%s: after the two interrupted imports: staged %+v, %v; want a staging", name, st, err)
		}
		if st.Tree.N != 4000 || st.Size > 1024 {
			t.Fatalf("%s: after the two interrupted imports: tree %d staged up to %d; want tree 4000 staged up to at most 1024 (tiles 4-7 were never stored)", name, st.Tree.N, st.Size)
		}
		if err := resume(b); err != nil || b.Published().Tree.N != 4000 {
			t.Fatalf("%s: resuming the staging: %v, tree %d; want tree 4000", name, err, b.Published().Tree.N)
		}
		sameAs(t, b, o.log, all)
	}
}

// recordFailingStore fails every ReadRecords once failing is set.
type recordFailingStore struct {
	*itlog.MemStore
	failing atomic.Bool
}

func (s *recordFailingStore) ReadRecords(ctx context.Context, ids []int64) ([][]byte, error) {
	if s.failing.Load() {
		return nil, errors.New("disk on fire")
	}
	return s.MemStore.ReadRecords(ctx, ids)
}

// TestPartialBundleReadFails offers a partial bundle to a full mirror
// whose records cannot be read: the refusal names the read failure, not
// "this mirror holds every record", which it could not tell.
func TestPartialBundleReadFails(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 700)
	a, _ := newMirror(t, o)
	if _, err := newFollower(t, o, a, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	base := export(t, a, 0)
	partial := rewrite(t, readEntries(t, base), func(e []entry) []entry {
		e[0].data = bytes.Replace(e[0].data, []byte("partial false"), []byte("partial true"), 1)
		return e
	})
	s := &recordFailingStore{MemStore: itlog.NewMemStore()}
	b, err := itlog.OpenStore(s, itlog.Options{VerifierKeys: []string{o.key.VerifierKey()}, Create: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := importBundle(t, b, o.key.VerifierKey(), base, 0); err != nil {
		t.Fatal(err)
	}
	s.failing.Store(true)
	before := s.Commits()
	_, err = importBundle(t, b, o.key.VerifierKey(), partial, 0)
	if err == nil || !strings.Contains(err.Error(), "failed to read the mirror's records") || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("import = %v, want the read failure named", err)
	}
	if s.Commits() != before {
		t.Error("refused, but stored")
	}
}

// TestImportAfterInterruptedResigned interrupts the import of a bundle,
// then imports one of the same tree that the origin signed again after a
// key rotation (sumd key rotate): its head takes the staged one's place
// and the import finishes. It failed for ever ("cannot stage tree 3000 in
// the place of the staged tree 3000: it is not larger").
func TestImportAfterInterruptedResigned(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 3000)
	a, _ := newMirror(t, o)
	if _, err := newFollower(t, o, a, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before := export(t, a, 0)
	skey, _, err := itlog.GenerateKey(testName)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := itlog.ParseKey(skey)
	if err := o.log.AddKey(ctx, next); err != nil {
		t.Fatal(err)
	}
	a2, _ := newMirror(t, o)
	if _, err := newFollower(t, o, a2, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	resigned := export(t, a2, 0)
	if h1, h2 := a.Published().Signed, a2.Published().Signed; bytes.Equal(h1, h2) || a.Published().Tree != a2.Published().Tree {
		t.Fatalf("the origin's head after the rotation is not the same tree signed again:\n%s\n%s", h1, h2)
	}
	vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}

	b, _ := newMirror(t, o)
	interruptImport(t, b, vs, before, 1024)
	st, err := importBundle(t, b, o.key.VerifierKey(), resigned, 256)
	if err != nil || st.To.N != 3000 {
		t.Fatalf("import of the same tree signed again after an interrupted import: %+v, %v", st, err)
	}
	if st, err := b.Staged(ctx); err != nil || st != nil {
		t.Errorf("after the import: staged %+v, %v; want none", st, err)
	}
	if !bytes.Equal(b.Published().Signed, a2.Published().Signed) {
		t.Errorf("the mirror publishes\n%s\nwant the bundle's head\n%s", b.Published().Signed, a2.Published().Signed)
	}
	sameAs(t, b, o.log, all)
}

// TestBundleErrorQuotesOnce: a bundle's bad header line or entry name is
// quoted once in the error, as the user can search for it in the file.
func TestBundleErrorQuotesOnce(t *testing.T) {
	_, err := parseHeader([]byte(bundleMagic + "\nname x\nsize 3\n"))
	if want := `malformed bundle header line "size 3": unknown key`; err == nil || err.Error() != want {
		t.Fatalf("parseHeader of an unknown key: %v, want %s", err, want)
	}
}
