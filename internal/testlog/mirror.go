package testlog

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
)

// A Served is what a checksum database serves: internal/tlog's *Log, which
// this package cannot name, since internal/tlog's own tests import it.
type Served interface {
	Signed(ctx context.Context) ([]byte, error)
	ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error)
	ReadRecords(ctx context.Context, id, n int64) ([][]byte, error)
	Lookup(ctx context.Context, m module.Version) (int64, error)
}

// SameAs checks that mirror m serves origin o's signed head, every hash
// tile at widths 1, 18, 35, … and W, W-97, … (W the full width), and, byte
// for byte and by lookup, exactly the records holds says m holds; the
// others must be fs.ErrNotExist.
func SameAs(t testing.TB, m, o Served, holds func(id int64) bool) {
	t.Helper()
	ctx := context.Background()
	want, _ := o.Signed(ctx)
	if got, err := m.Signed(ctx); !bytes.Equal(got, want) || err != nil {
		t.Fatalf("mirror head %q, %v; want the origin's %q", got, err, want)
	}
	text, _, _ := bytes.Cut(want, []byte("\n\n"))
	tree, err := tlog.ParseTree(append(text[:len(text):len(text)], '\n'))
	if err != nil {
		t.Fatalf("origin's head %q: %v", want, err)
	}
	for _, tile := range tlog.NewTiles(8, 0, tree.N) {
		full := tile.W
		for w := 1; w <= full; w++ {
			if (w-1)%17 != 0 && (full-w)%97 != 0 {
				continue
			}
			tile.W = w
			got, err := m.ReadTileData(ctx, tile)
			want, _ := o.ReadTileData(ctx, tile)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("tile %s: %v, or differs from the origin's", tile.Path(), err)
			}
		}
	}
	for id := range tree.N {
		got, err := m.ReadRecords(ctx, id, 1)
		want, _ := o.ReadRecords(ctx, id, 1)
		r, _ := gosum.Parse(want[0])
		mid, lerr := m.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version})
		switch {
		case holds(id) && (err != nil || !bytes.Equal(got[0], want[0]) || lerr != nil || mid != id):
			t.Fatalf("record %d: %q, %v; lookup %d, %v; want the origin's", id, got, err, mid, lerr)
		case !holds(id) && (!errors.Is(err, fs.ErrNotExist) || !errors.Is(lerr, fs.ErrNotExist)):
			t.Fatalf("record %d, which the mirror should not hold: %v, lookup %v; want fs.ErrNotExist", id, err, lerr)
		}
	}
}
