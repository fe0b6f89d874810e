package mirror

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/server"
)

// TestBundleForkBelowItsTiles: an incremental bundle of a fork, signed
// with the origin's key, whose history departs from the mirror's in a part
// of the tree the bundle carries no tile of (the mirror's tree of 768
// records ends on a tile boundary, and the level-1 tile above it is the
// same width in both trees) is a SECURITY fork. Its tiles do not hash to
// its head with the mirror's own, and that was reported as the bundle's
// damage.
func TestBundleForkBelowItsTiles(t *testing.T) {
	ctx := context.Background()
	o := newOrigin(t, 768)
	a, _ := newMirror(t, o)
	if _, err := newFollower(t, o, a, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fork := openPrimary(t, o.key)
	addRecords(t, fork, 0, 700)
	addRecords(t, fork, 50_000, 300)
	fm, _ := newMirror(t, o)
	o.serve(server.New(testName, fork, server.Options{Logger: quiet}))
	if _, err := newFollower(t, o, fm, nil).Sync(ctx); err != nil {
		t.Fatal(err)
	}
	o.serve(nil)
	_, err := importBundle(t, a, o.key.VerifierKey(), export(t, fm, 768), 0)
	var se *SecurityError
	if !errors.As(err, &se) || se.Kind != KindFork || !strings.Contains(err.Error(), "does not contain the tree of 768 records") {
		t.Errorf("import of a forked bundle = %v, want a SECURITY fork", err)
	}
}
