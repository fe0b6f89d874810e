package mirror

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// FuzzImport imports bundles the fuzzer derives from an honest one into an
// empty mirror. The reader must never panic or over-allocate, and whatever
// it accepts must leave the mirror exactly the origin's (but for records a
// partial bundle lacks).
func FuzzImport(f *testing.F) {
	ctx := context.Background()
	o := newOrigin(f, 300)
	a, _ := newMirror(f, o)
	if _, err := newFollower(f, o, a, nil).Sync(ctx); err != nil {
		f.Fatal(err)
	}
	var good bytes.Buffer
	if _, err := Export(ctx, a, &good, 0); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:3000])
	f.Add([]byte("sumd-bundle"))
	empty := itlog.NewMemStore()
	m, err := itlog.OpenStore(empty, itlog.Options{VerifierKeys: []string{o.key.VerifierKey()}, Create: true, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	m.Close()
	full := itlog.NewMemStore() // a mirror that holds the origin's tree already
	m, err = itlog.OpenStore(full, itlog.Options{VerifierKeys: []string{o.key.VerifierKey()}, Create: true, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := importBundle(f, m, o.key.VerifierKey(), good.Bytes(), 256); err != nil {
		f.Fatal(err)
	}
	m.Close()
	want := o.head()
	// The mirror holding the tree is opened once, not per input (its clone
	// and open were two thirds of a refused input's cost), and again after
	// an input committed, stopped it or changed what Import writes beside
	// the tree (the configuration a private bundle brings, the checked
	// time), so that each input starts from the same mirror.
	var hs *itlog.MemStore
	var h *itlog.Log
	reopen := func(t testing.TB) {
		if h != nil {
			h.Close()
		}
		hs = full.Clone()
		var err error
		if h, err = itlog.OpenStore(hs, itlog.Options{VerifierKeys: []string{o.key.VerifierKey()}, Logger: quiet}); err != nil {
			t.Fatal(err)
		}
	}
	reopen(f)
	f.Cleanup(func() { h.Close() })
	changed := func() bool {
		for _, key := range []string{auxConfig, auxChecked} {
			now, _ := hs.Aux(ctx, key)
			was, _ := full.Aux(ctx, key)
			if !bytes.Equal(now, was) {
				return true
			}
		}
		return hs.Commits() != full.Commits() || h.Err() != nil
	}
	f.Fuzz(func(t *testing.T, bundle []byte) {
		// Into a mirror that holds the tree, nothing is ever stored.
		_, herr := importBundle(t, h, o.key.VerifierKey(), bundle, 256)
		if head, _ := h.Signed(ctx); !bytes.Equal(head, want) {
			t.Fatalf("a bundle imported into a mirror holding its tree (error %v) changed its head to %q", herr, head)
		}
		if changed() {
			reopen(t)
		}

		m, err := itlog.OpenStore(empty.Clone(), itlog.Options{VerifierKeys: []string{o.key.VerifierKey()}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		st, err := importBundle(t, m, o.key.VerifierKey(), bundle, 256)
		if err != nil {
			if head, _ := m.Signed(ctx); head != nil {
				t.Fatalf("a refused bundle left head %q", head)
			}
			return
		}
		if head, _ := m.Signed(ctx); !bytes.Equal(head, want) {
			t.Fatalf("an accepted bundle left head %q, want the origin's", head)
		}
		// A bundle that says it is full holds every record.
		for id := range int64(300) {
			got, err := m.ReadRecords(ctx, id, 1)
			if st.Header.Partial && err != nil {
				continue
			}
			want, _ := o.log.ReadRecords(ctx, id, 1)
			if err != nil || !bytes.Equal(got[0], want[0]) {
				t.Fatalf("an accepted bundle (partial %v) left record %d %q, %v", st.Header.Partial, id, got, err)
			}
		}
	})
}

// FuzzWalkBundle runs the bundle walker alone, which FuzzImport reaches
// at about one input a second: it must never panic, and must never accept
// a bundle whose signed head the origin's key does not verify, checked
// here again with x/mod's note and tlog rather than through the walker's
// open. Its input is the bundle's entries in txtar's layout (see
// bundleTar), a few KiB where the tar is 8.5: Go's minimizer is quadratic
// in an input's length, and spent whole runs on one tar. FuzzImport
// mutates the tar framing itself.
func FuzzWalkBundle(f *testing.F) {
	o := newOrigin(f, 20)
	good := bundleText(f, exportAll(f, o))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append([]byte("x\n"), good...))                // data after the tar's end
	f.Add(bundleText(f, exportAll(f, newOrigin(f, 20)))) // the same name, another key
	// A private mirror's bundle, as it exports it ("private true"), and
	// the key as no sumd writes it: false, twice, or not a bool.
	for _, private := range []string{"private true\n", "private false\n", "private true\nprivate true\n", "private yes\n"} {
		f.Add(bytes.Replace(good, []byte("\npartial false\n"), []byte("\npartial false\n"+private), 1))
	}
	// The head's root hash altered: its signature no longer verifies.
	if i := bytes.Index(good, []byte("go.sum database tree\n20\n")); i >= 0 {
		bad := bytes.Clone(good)
		bad[i+len("go.sum database tree\n20\n")] ^= 'A' ^ 'B'
		f.Add(bad)
	}
	vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := walkBundle(bytes.NewReader(bundleTar(good)), vs.Open, &nopVisitor{}); err != nil {
		f.Fatalf("the honest bundle, through txtar: %v", err)
	}
	private := bytes.Replace(good, []byte("\npartial false\n"), []byte("\npartial false\nprivate true\n"), 1)
	if h, err := walkBundle(bytes.NewReader(bundleTar(private)), vs.Open, &nopVisitor{}); err != nil || !h.Private {
		f.Fatalf("the private bundle, through txtar: header %+v, %v", h, err)
	}
	verifier, err := note.NewVerifier(o.key.VerifierKey())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		v := &nopVisitor{}
		h, err := walkBundle(bytes.NewReader(bundleTar(text)), vs.Open, v)
		if err != nil {
			return
		}
		if !v.opened {
			t.Fatalf("accepted a bundle (header %+v) without visiting its head", h)
		}
		n, err := note.Open(v.head, note.VerifierList(verifier))
		if err != nil {
			t.Fatalf("accepted a bundle whose head %q does not verify: %v", v.head, err)
		}
		tree, err := tlog.ParseTree([]byte(n.Text))
		if err != nil || tree != v.tree || tree.N != h.To {
			t.Fatalf("accepted a bundle of header %+v, tree %+v, whose head parses as %+v, %v", h, v.tree, tree, err)
		}
	})
}

// bundleText is a bundle's entries in txtar's layout: each "-- name --"
// on a line, then its data and a newline.
func bundleText(t testing.TB, bundle []byte) []byte {
	t.Helper()
	var b []byte
	tr := tar.NewReader(bytes.NewReader(bundle))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return b
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		b = fmt.Appendf(b, "-- %s --\n%s\n", h.Name, data)
	}
}

// bundleTar writes the entries of text, in bundleText's layout, as Export
// writes them, and what comes before the first entry after the tar's end.
// It parses the layout itself: txtar's parser panics on a line "-- --".
func bundleTar(text []byte) []byte {
	parts := bytes.Split(append([]byte("\n"), text...), []byte("\n-- "))
	var b bytes.Buffer
	w := &bundleWriter{tw: tar.NewWriter(&b)}
	for i, p := range parts[1:] {
		name, data, ok := bytes.Cut(p, []byte(" --\n"))
		if i == len(parts)-2 {
			data = bytes.TrimSuffix(data, []byte("\n")) // the others' is in the separator
		}
		if !ok || w.entry(string(name), data) != nil {
			return nil // no bundle
		}
	}
	w.tw.Close()
	return append(b.Bytes(), bytes.TrimPrefix(parts[0], []byte("\n"))...)
}

// exportAll is a bundle of all of o's tree, exported by a mirror of it.
func exportAll(t testing.TB, o *origin) []byte {
	t.Helper()
	ctx := context.Background()
	m, _ := newMirror(t, o)
	if _, err := newFollower(t, o, m, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := Export(ctx, m, &b, 0); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A nopVisitor keeps the head it is shown and checks that nothing comes
// before it.
type nopVisitor struct {
	opened bool
	head   []byte
	tree   tlog.Tree
}

func (v *nopVisitor) header(_ BundleHeader, head []byte, tree tlog.Tree) error {
	v.opened, v.head, v.tree = true, head, tree
	return nil
}

func (v *nopVisitor) skeleton(map[tlog.Tile][]byte) error { return v.before() }
func (v *nopVisitor) leaf(tlog.Tile, []byte) error        { return v.before() }
func (v *nopVisitor) records(int64, map[int64][]byte, []int64) error {
	return v.before()
}

func (v *nopVisitor) before() error {
	if !v.opened {
		panic("a bundle's part visited before its verified head")
	}
	return nil
}

// FuzzBundleHeader checks that a header parses strictly: what it accepts
// marshals back to the same bytes.
func FuzzBundleHeader(f *testing.F) {
	h := BundleHeader{Name: "sum.golang.org", From: 3, To: 700}
	f.Add(h.marshal())
	f.Add([]byte(bundleMagic + "\nname x\nfrom 1\nto 2\ncreated 2026-01-02T03:04:05Z\nchecked 2026-01-02T03:04:05Z\npartial true\n"))
	f.Add([]byte(bundleMagic + "\nname x\nfrom 1\nto 2\ncreated 2026-01-02T03:04:05Z\npartial false\nprivate true\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHeader(data)
		if err != nil {
			return
		}
		if h.From < 0 || h.To < h.From || h.Name == "" {
			t.Fatalf("accepted %+v", h)
		}
		again, err := parseHeader(h.marshal())
		if err != nil || again.Name != h.Name || again.From != h.From || again.To != h.To || again.Partial != h.Partial || again.Private != h.Private ||
			!again.Created.Equal(h.Created) || !again.Checked.Equal(h.Checked) {
			t.Fatalf("%+v marshals to a header that parses as %+v, %v", h, again, err)
		}
	})
}

// FuzzHeadSize checks the reading of sumd mirror export's -since head, a
// file carried from elsewhere: it never panics, never gives a negative
// size, and gives the size x/mod's note and tlog read from a note (its
// signatures aside: the import checks them).
func FuzzHeadSize(f *testing.F) {
	skey, _, err := note.GenerateKey(nil, "since.example")
	if err != nil {
		f.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range []int64{0, 305, 1<<63 - 1} {
		head, err := note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: n}))}, signer)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(head)
	}
	f.Add(tlog.FormatTree(tlog.Tree{N: 7})) // the text alone, unsigned
	f.Add([]byte("go.sum database tree\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— x AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := HeadSize(data)
		if err == nil && n < 0 {
			t.Fatalf("HeadSize(%q) = %d", data, n)
		}
		_, nerr := note.Open(data, note.VerifierList()) // no key: every note is unverified
		var unverified *note.UnverifiedNoteError
		if !errors.As(nerr, &unverified) {
			return
		}
		if tree, terr := tlog.ParseTree([]byte(unverified.Note.Text)); terr == nil && (err != nil || n != tree.N) {
			t.Fatalf("HeadSize(%q) = %d, %v; x/mod reads a tree of %d", data, n, err, tree.N)
		}
	})
}
