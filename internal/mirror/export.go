package mirror

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// ExportStats is what Export wrote.
type ExportStats struct {
	Header  BundleHeader
	Tiles   int
	Records int
	Bytes   int64 // entry data, tar framing not included
}

// HeadSize is the size of the tree of a signed head, unverified: for a
// since of Export read from a head the importing side holds, which its
// import verifies. The head's text, before the blank line that starts its
// signatures, must be a tree.
func HeadSize(head []byte) (int64, error) {
	tree, err := itlog.ParseHeadTree(head)
	return tree.N, err
}

// Export writes a bundle of what the mirror holds (its published head,
// and the tiles and records that lead to it from the tree of size since)
// to w. The importing side must hold the tree of size since, or more:
// Import refuses a bundle that starts beyond the mirror's tree.
func Export(ctx context.Context, l *itlog.Log, w io.Writer, since int64) (*ExportStats, error) {
	held := l.Published()
	if held.Signed == nil {
		return nil, fmt.Errorf("the mirror of %s holds no signed head yet: follow its origin first", l.Name())
	}
	if since < 0 || since > held.Tree.N {
		return nil, fmt.Errorf("cannot export from tree %d: the mirror holds a tree of %d records", since, held.Tree.N)
	}
	cfg, err := ReadConfig(ctx, l)
	if err != nil {
		return nil, err
	}
	checked, err := Checked(ctx, l)
	if err != nil {
		return nil, err
	}
	st := &ExportStats{Header: BundleHeader{
		Name: l.Name(), From: since, To: held.Tree.N, Created: time.Now().UTC(), Checked: checked,
		Partial: cfg.partial(), Private: cfg.private(),
	}}
	tw := tar.NewWriter(w)
	bw := &bundleWriter{tw: tw}
	if err := bw.entry(headerName, st.Header.marshal()); err != nil {
		return nil, err
	}
	if err := bw.entry(headName, held.Signed); err != nil {
		return nil, err
	}
	skeleton, leaves := planTiles(since, held.Tree.N)
	tile := func(t tlog.Tile) error {
		data, err := l.ReadTileData(ctx, t)
		if err != nil {
			return fmt.Errorf("failed to read tile %s: %w", t.Path(), err)
		}
		st.Tiles++
		return bw.entry(t.Path(), data)
	}
	records := func(n int64) error {
		ids, texts, err := heldRecords(ctx, l, n, since, held.Tree.N)
		if err != nil {
			return err
		}
		if lo, hi := max(n<<8, since), min((n+1)<<8, held.Tree.N); !st.Header.Partial && int64(len(ids)) != hi-lo {
			// Importers refuse a full bundle that lacks records: say so now.
			return fmt.Errorf("the mirror is full but lacks records of data tile %d (%d of the %d from %d to %d held): import a full bundle of its tree to fill them in; "+
				"a mirror made from partial bundles before sumd recorded that becomes partial with its next partial bundle", n, len(ids), hi-lo, lo, hi-1)
		}
		if len(ids) == 0 {
			return nil
		}
		data, err := formatRecords(ids, texts)
		if err != nil {
			return err
		}
		st.Records += len(ids)
		return bw.entry(recordsEntry(n), data)
	}
	for _, t := range skeleton {
		if err := tile(t); err != nil {
			return nil, err
		}
	}
	for _, t := range skeleton {
		if t.L == 0 {
			if err := records(t.N); err != nil {
				return nil, err
			}
		}
	}
	for _, t := range leaves {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := tile(t); err != nil {
			return nil, err
		}
		if err := records(t.N); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("failed to write the bundle: %w", err)
	}
	st.Bytes = bw.n
	return st, nil
}

// heldRecords returns the records of data tile n the mirror holds, from id
// from on, in a tree of size size.
func heldRecords(ctx context.Context, l *itlog.Log, n, from, size int64) ([]int64, [][]byte, error) {
	lo, hi := max(n<<8, from), min((n+1)<<8, size)
	if lo >= hi {
		return nil, nil, nil
	}
	texts, err := l.ReadRecords(ctx, lo, hi-lo)
	if err == nil {
		ids := make([]int64, len(texts))
		for i := range ids {
			ids[i] = lo + int64(i)
		}
		return ids, texts, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	// A partial mirror: one at a time.
	var ids []int64
	texts = nil
	for id := lo; id < hi; id++ {
		t, err := l.ReadRecords(ctx, id, 1)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		ids, texts = append(ids, id), append(texts, t[0])
	}
	return ids, texts, nil
}
