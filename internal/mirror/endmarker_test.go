package mirror

import (
	"archive/tar"
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBundleTruncatedAtEntry: a bundle cut where an entry ends, before
// the tar's end marker, is truncated. archive/tar reads such a cut as the
// end (io.EOF, as at the marker), and a partial mirror's bundle, whose
// records entries are optional, cut before its last one imported without
// those records, which no later bundle carries; a bundle without its whole
// end marker is now refused.
func TestBundleTruncatedAtEntry(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 1000)
	c, _ := newMirror(t, o)
	sel, _ := ParseSelection([]string{"golang.org/x/*"})
	if _, err := newFollower(t, o, c, func(opts *Options) { opts.Select = sel }).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfig(ctx, c, &Config{VerifierKeys: c.VerifierKeys(), Modules: []string{"golang.org/x/*"}}); err != nil {
		t.Fatal(err)
	}
	bundle := export(t, c, 0)
	if !bytes.Equal(bundle[len(bundle)-1024:], make([]byte, 1024)) {
		t.Fatal("the exported bundle does not end with the tar's end marker (two zero blocks)")
	}
	entries := readEntries(t, bundle)
	if last := entries[len(entries)-1].name; !strings.HasPrefix(last, "records/") {
		t.Fatalf("the bundle's last entry is %s, want a records entry", last)
	}
	var cut bytes.Buffer // all but the last records entry, and no end marker
	tw := tar.NewWriter(&cut)
	for _, e := range entries[:len(entries)-1] {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg})
		tw.Write(e.data)
	}
	tw.Flush()
	for name, b := range map[string][]byte{
		"without its last records entry": cut.Bytes(),
		"without its end marker":         bundle[:len(bundle)-1024],
		"with half its end marker":       bundle[:len(bundle)-512],
	} {
		d, _ := newMirror(t, o)
		if _, err := importBundle(t, d, o.key.VerifierKey(), b, 0); err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("import of the bundle %s = %v, want it refused as truncated", name, err)
		}
	}
	d, _ := newMirror(t, o)
	if _, err := importBundle(t, d, o.key.VerifierKey(), bundle, 0); err != nil {
		t.Errorf("import of the whole bundle: %v", err)
	}
	sameAs(t, d, o.log, func(id int64) bool { return id%10 == 3 })
}
