package mirror

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// passReader reads versions[i] in Import's i-th pass (each begins with a
// seek to the start), the last one in any later pass: a bundle file
// changed in place while it is imported.
type passReader struct {
	versions [][]byte
	pass     int
	r        *bytes.Reader
}

func (p *passReader) Read(b []byte) (int, error) { return p.r.Read(b) }

func (p *passReader) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekStart {
		p.r = bytes.NewReader(p.versions[min(p.pass, len(p.versions)-1)])
		p.pass++
	}
	return p.r.Seek(off, whence)
}

// TestFillBundleChanged: a full bundle that starts below the mirror's tree
// is read a third time to fill in records the mirror lacks (bundleFill).
// Changed in place after the first two passes, to a records entry that
// holds no record, it panicked (an index out of range); it is now the
// error of a bundle that changed while it was read.
func TestFillBundleChanged(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 700)
	a, _ := newMirror(t, o)
	fa := newFollower(t, o, a, nil)
	if _, err := fa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	base := export(t, a, 0)
	o.grow(700, 300)
	if _, err := fa.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	good := export(t, a, 0)
	emptied := rewrite(t, readEntries(t, good), func(e []entry) []entry {
		for i := range e {
			if e[i].name == "records/0" {
				e[i].data = nil
			}
		}
		return e
	})
	for _, tc := range []struct {
		name    string
		changed []byte
	}{
		{"a records entry emptied", emptied},
		{"another bundle", base},
	} {
		b, _ := newMirror(t, o)
		if _, err := importBundle(t, b, o.key.VerifierKey(), base, 0); err != nil {
			t.Fatal(err)
		}
		vs, err := sumdbclient.ParseVerifiers(o.key.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		r := &passReader{versions: [][]byte{good, good, tc.changed}}
		r.Seek(0, io.SeekStart) // Import reads from where r is
		r.pass = 0
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = errors.New("panic")
					t.Errorf("%s: Import panicked: %v", tc.name, p)
				}
			}()
			_, err = Import(ctx, b, vs, r, ImportOptions{Logger: quiet})
		}()
		if !errors.Is(err, errChanged) {
			t.Errorf("%s: Import = %v, want the bundle changed", tc.name, err)
		}
	}
}
