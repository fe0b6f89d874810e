package mirror

import (
	"bytes"
	"context"
	"testing"

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
	f.Fuzz(func(t *testing.T, bundle []byte) {
		// Into a mirror that holds the tree, nothing is ever stored.
		h, err := itlog.OpenStore(full.Clone(), itlog.Options{VerifierKeys: []string{o.key.VerifierKey()}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		_, herr := importBundle(t, h, o.key.VerifierKey(), bundle, 256)
		if head, _ := h.Signed(ctx); !bytes.Equal(head, want) {
			t.Fatalf("a bundle imported into a mirror holding its tree (error %v) changed its head to %q", herr, head)
		}
		h.Close()

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

// FuzzBundleHeader checks that a header parses strictly: what it accepts
// marshals back to the same bytes.
func FuzzBundleHeader(f *testing.F) {
	h := BundleHeader{Name: "sum.golang.org", From: 3, To: 700}
	f.Add(h.marshal())
	f.Add([]byte(bundleMagic + "\nname x\nfrom 1\nto 2\ncreated 2026-01-02T03:04:05Z\nchecked 2026-01-02T03:04:05Z\npartial true\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHeader(data)
		if err != nil {
			return
		}
		if h.From < 0 || h.To < h.From || h.Name == "" {
			t.Fatalf("accepted %+v", h)
		}
		again, err := parseHeader(h.marshal())
		if err != nil || again.Name != h.Name || again.From != h.From || again.To != h.To || again.Partial != h.Partial ||
			!again.Created.Equal(h.Created) || !again.Checked.Equal(h.Checked) {
			t.Fatalf("%+v marshals to a header that parses as %+v, %v", h, again, err)
		}
	})
}
