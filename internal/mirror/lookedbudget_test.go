package mirror

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSelectedLookupsBounded: the records a round's go.sum lookups
// gather are held, unverified, until the round stores them, and an
// origin may answer each lookup with a record of up to a megabyte: a
// hostile one made a partial mirror of a go.sum of thousands of missing
// versions hold gigabytes. What a round holds is capped (maxLooked); the
// versions beyond it are counted missing, looked up again next round.
func TestSelectedLookupsBounded(t *testing.T) {
	defer func(n int) { maxLooked = n }(maxLooked)
	maxLooked = 1 << 20
	ctx := context.Background()
	o := newOrigin(t, 300)
	m, _ := newMirror(t, o)
	const versions = 8
	var lines []byte
	for i := range versions {
		lines = append(lines, testRecord(i, 1).Text()...)
	}
	gs := filepath.Join(t.TempDir(), "go.sum")
	if err := os.WriteFile(gs, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	sel, err := ParseSelection([]string{gs})
	if err != nil {
		t.Fatal(err)
	}
	f := newFollower(t, o, m, func(opts *Options) { opts.Select = sel })
	pad := append(bytes.Repeat([]byte("x"), 400<<10), '\n')
	o.serve(o.tamper(func(p string) bool { return strings.HasPrefix(p, "/lookup/") }, func(b []byte) []byte {
		id, rest, _ := bytes.Cut(b, []byte("\n"))
		return append(append(append(id, '\n'), pad...), rest...)
	}))
	res := &Result{}
	looked, err := f.lookupSelected(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, rec := range looked {
		held += len(rec)
	}
	if held > maxLooked {
		t.Errorf("the round holds %d bytes of looked-up records, more than the %d allowed", held, maxLooked)
	}
	if len(looked) == 0 || res.Missing != versions-len(looked) {
		t.Errorf("the round kept %d records and counted %d missing; want some kept, the other %d missing", len(looked), res.Missing, versions-len(looked))
	}
}
