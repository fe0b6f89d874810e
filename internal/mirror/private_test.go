package mirror

import (
	"bytes"
	"context"
	"testing"
)

// TestImportPrivate: a private mirror's bundle (its header says private
// true) makes the mirror that stores anything of it private (ReadWith),
// before it stores it: a new mirror, and a full mirror lacking records of
// the tree it holds that the bundle fills in (the third pass) though the
// bundle's tree is the held one. A bundle of a held tree that stores
// nothing changes nothing.
func TestImportPrivate(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 1000)
	a, _ := newMirror(t, o)
	if _, err := newFollower(t, o, a, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfig(ctx, a, &Config{URL: "https://sumd.corp.example", VerifierKeys: a.VerifierKeys(), Auth: "bearer:/etc/sumd/replica.token"}); err != nil {
		t.Fatal(err)
	}
	private := export(t, a, 0)
	if h := readHeader(t, private); !h.Private {
		t.Fatalf("the bundle of a mirror that reads its origin with a token: header %+v, want private", h)
	}
	readWith := func(m interface {
		Aux(context.Context, string) ([]byte, error)
	}) string {
		c, err := ReadConfig(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if c == nil {
			return ""
		}
		return c.ReadWith
	}

	fresh, _ := newMirror(t, o)
	if _, err := importBundle(t, fresh, o.key.VerifierKey(), private, 256); err != nil {
		t.Fatal(err)
	}
	if rw := readWith(fresh); rw != ReadWithBundle {
		t.Errorf("a new mirror made of a private bundle: read_with %q, want %q", rw, ReadWithBundle)
	}
	if h := readHeader(t, export(t, fresh, 0)); !h.Private {
		t.Errorf("the bundle of a mirror made of a private bundle: header %+v, want private", h)
	}

	lacking, _ := newMirror(t, o)
	sel, _ := ParseSelection([]string{"golang.org/x/*"})
	if _, err := newFollower(t, o, lacking, func(opts *Options) { opts.Select = sel }).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := importBundle(t, lacking, o.key.VerifierKey(), private, 256); err != nil || st.Records != 900 {
		t.Fatalf("a private bundle of the held tree into a mirror lacking records: %+v, %v; want 900 records stored", st, err)
	}
	if rw := readWith(lacking); rw != ReadWithBundle {
		t.Errorf("a mirror filled in by a private bundle of its tree: read_with %q, want %q", rw, ReadWithBundle)
	}

	public, _ := newMirror(t, o)
	if _, err := newFollower(t, o, public, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := importBundle(t, public, o.key.VerifierKey(), private, 256); err != nil || st.Records != 0 {
		t.Fatalf("a private bundle of the tree a full mirror holds: %+v, %v; want nothing stored", st, err)
	}
	if rw := readWith(public); rw != "" {
		t.Errorf("a private bundle that stored nothing made the mirror private: read_with %q", rw)
	}
}

func readHeader(t *testing.T, bundle []byte) BundleHeader {
	t.Helper()
	h, err := ReadBundleHeader(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	return h
}
