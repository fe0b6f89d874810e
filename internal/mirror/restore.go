package mirror

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// A primary whose database is lost, or restored from an old backup, must
// not start signing again from what it has: every go command that saw a
// newer head would reject the next one as a fork, for ever (PROTOCOL.md
// §1). A full mirror holds the primary's newest heads verbatim, signed by
// the primary's own key, with every tile and record; Restore rebuilds the
// primary's database from it, so the primary's next head extends the
// mirror's newest one. An old database, if given, must be a prefix of the
// mirror's tree (it is rolled forward) and may supply records the mirror
// lacks.

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Batch caps the records written per commit (default 65,536).
	Batch int
	// Logger receives progress; nil means slog.Default.
	Logger *slog.Logger
	// Progress, if set, is called after each commit.
	Progress func(done, total int64)
}

// RestoreStats is what Restore did.
type RestoreStats struct {
	Name     string
	Tree     tlog.Tree // the restored tree: the mirror's newest
	Previous tlog.Tree // the old database's tree (size 0 without one)
	VKeys    []string  // the keys the restored log signs with
}

// Restore writes into dst, an empty store, the log of the primary that src
// mirrors: the mirror's newest signed head, which must be signed by every
// one of keys (the primary's own), with every tile and record, indexed.
// old, if not nil, is the primary's present database: its signed head
// must be a prefix of the mirror's tree (else nothing is written: a
// mirror behind the database would roll it back, a fork would fork it).
// dst then holds a primary log that opens with keys and verifies in full;
// the caller swaps it in.
func Restore(ctx context.Context, dst itlog.Store, src *itlog.Log, keys []*itlog.Key, old itlog.Store, opts RestoreOptions) (*RestoreStats, error) {
	if opts.Batch <= 0 {
		opts.Batch = 1 << 16
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := src.Published()
	if h.Signed == nil {
		return nil, errors.New("the mirror holds no signed head yet")
	}
	// A mirror interrupted while catching up holds a newer head of the
	// primary's, staged: the primary signed it and clients may hold it,
	// so a primary restored to the older tree would sign a fork of it.
	staged, err := src.Staged(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to read what the mirror staged: %w", err)
	}
	if staged != nil {
		return nil, fmt.Errorf("the mirror was interrupted while catching up to a newer head of the primary (tree %d; it holds %d): "+
			"the primary signed that head, and a restore to the older one would fork it; restore from a mirror that holds it (another replica, "+
			"or this one once a bundle that carries it is imported, or once sumd mirror -mirror FILE finishes if the primary still answers)",
			staged.Tree.N, h.Tree.N)
	}
	st := &RestoreStats{Name: src.Name(), Tree: h.Tree}
	if st.VKeys, err = signedBy(h.Signed, keys); err != nil {
		return nil, err
	}
	// Without an old database to fill in what it lacks, a partial mirror
	// is refused now, not at its first missing record, which may come
	// hours into the restore of a large log.
	cfg, err := ReadConfig(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("failed to read the mirror's configuration: %w", err)
	}
	if cfg.partial() && old == nil {
		return nil, errors.New("the mirror is partial (it holds only the records of some module versions): restore needs every record, from a full mirror, " +
			"or an old database of the log that holds the records the mirror lacks")
	}
	var oldRecs func(ctx context.Context, ids []int64) ([][]byte, error)
	if old != nil {
		if st.Previous, err = checkOld(ctx, old, h, src, keys); err != nil {
			return nil, err
		}
		if err := checkRetired(ctx, old, keys); err != nil {
			return nil, err
		}
		oldRecs = old.ReadRecords
	}
	if err := dst.Create(ctx, itlog.Meta{Name: src.Name(), VKeys: st.VKeys}, h.Signed); err != nil {
		return nil, fmt.Errorf("failed to create the restored database: %w", err)
	}
	if old != nil {
		// The restored database replaces old: without the record, sumd
		// key rotate would take a retired (perhaps leaked) key back.
		if err := itlog.CopyRetired(ctx, dst, old); err != nil {
			return nil, err
		}
	}
	w := &restoreWriter{ctx: ctx, dst: dst, head: h, oldRecs: oldRecs, oldN: st.Previous.N}
	for from := int64(0); from < h.Tree.N; from += int64(opts.Batch) {
		if err := w.records(src, from, min(from+int64(opts.Batch), h.Tree.N)); err != nil {
			return nil, err
		}
		if opts.Progress != nil {
			opts.Progress(min(from+int64(opts.Batch), h.Tree.N), h.Tree.N)
		}
	}
	if err := w.tiles(src); err != nil {
		return nil, err
	}
	opts.Logger.Info("restored a primary's database from a mirror", "name", st.Name, "tree_size", h.Tree.N, "was", st.Previous.N)
	return st, nil
}

// signedBy checks that every key signed head, and returns their verifier
// keys.
func signedBy(head []byte, keys []*itlog.Key) ([]string, error) {
	if len(keys) == 0 {
		return nil, errors.New("restore needs the primary's signing keys")
	}
	var vkeys []string
	for _, k := range keys {
		if _, err := note.Open(head, note.VerifierList(k.Verifier())); err != nil {
			return nil, fmt.Errorf("the mirror's newest head is not signed by %s (%v): it is not a mirror of this log, or the key is not the one the log signs with now", k.VerifierKey(), err)
		}
		vkeys = append(vkeys, k.VerifierKey())
	}
	return vkeys, nil
}

// checkRetired refuses the keys old records as retired (sumd key
// retire): the mirror's newest head may be signed by one (a head of the
// same tree from before the retirement), and the restored log would sign
// with a key retired perhaps because it leaked.
func checkRetired(ctx context.Context, old itlog.Store, keys []*itlog.Key) error {
	a, ok := old.(itlog.AuxStore)
	if !ok {
		return nil
	}
	v, err := a.Aux(ctx, itlog.AuxRetiredKeys)
	if err != nil {
		return fmt.Errorf("failed to read the old database's retired keys: %w", err)
	}
	retired := strings.Fields(string(v))
	for _, k := range keys {
		if slices.Contains(retired, k.VerifierKey()) {
			return fmt.Errorf("%s was retired from this log (sumd key retire), perhaps because it leaked, and the restored log would sign with it: restore with the keys the log signs with now", k.VerifierKey())
		}
	}
	return nil
}

// checkOld verifies the old database's head with the keys and proves it a
// prefix of the mirror's tree, and returns its tree.
func checkOld(ctx context.Context, old itlog.Store, h *itlog.Head, src *itlog.Log, keys []*itlog.Key) (tlog.Tree, error) {
	st, err := old.Load(ctx)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("failed to read the old database: %w", err)
	}
	if st.Meta.Mirror || st.Meta.Name != src.Name() {
		return tlog.Tree{}, fmt.Errorf("the old database holds %q (mirror: %t), not the log %q", st.Meta.Name, st.Meta.Mirror, src.Name())
	}
	vs := make([]note.Verifier, len(keys))
	for i, k := range keys {
		vs[i] = k.Verifier()
	}
	n, err := note.Open(st.Head, note.VerifierList(vs...))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("the old database's head does not verify with the keys: %w", err)
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		return tlog.Tree{}, err
	}
	if tree.N > h.Tree.N {
		return tree, fmt.Errorf("the database holds a tree of %d records, newer than the mirror's %d: restoring from this mirror would roll the log back; keep the database, or restore from a mirror that is not behind", tree.N, h.Tree.N)
	}
	// A database rolled back behind the log's back keeps the records of
	// the larger tree it signed (Open refuses it for that): a mirror
	// smaller than what they prove was signed would have the restored
	// primary sign those ids again, differently.
	e, err := old.Extent(ctx)
	if err != nil {
		return tree, fmt.Errorf("failed to read how far the old database's data reaches: %w", err)
	}
	if reach := e.Reach(); reach > h.Tree.N {
		return tree, fmt.Errorf("the database holds data of a tree of at least %d records (its head, rolled back, says %d), more than the mirror's %d: "+
			"a tree that size was signed, and restoring from this mirror would sign those records again, differently; restore from a mirror holding at least %d records",
			reach, tree.N, h.Tree.N, reach)
	}
	err = itlog.ProveExtends(h.Tree, tree, src.HashReader())
	var fork *itlog.ForkError
	switch {
	case errors.As(err, &fork):
		return tree, fmt.Errorf("SECURITY ERROR: the database's tree of %d records is not a prefix of the mirror's tree of %d records: the two histories fork; find out which one clients saw before restoring anything", tree.N, h.Tree.N)
	case err != nil:
		return tree, fmt.Errorf("failed to read the mirror's hash tiles to prove the database's tree a prefix of it (check the mirror's file, e.g. with sumd verify -db): %w", err)
	}
	return tree, nil
}

// A restoreWriter commits the restored log in batches, each under the
// mirror's head (the store holds the head from its creation; the file is
// not served before it is complete and verified).
type restoreWriter struct {
	ctx     context.Context
	dst     itlog.Store
	head    *itlog.Head
	oldRecs func(ctx context.Context, ids []int64) ([][]byte, error)
	oldN    int64
}

// records copies records [from, to), indexed, refusing a module version
// indexed twice: a primary holds one record per module version.
func (w *restoreWriter) records(src *itlog.Log, from, to int64) error {
	texts, err := src.ReadRecords(w.ctx, from, to-from)
	if errors.Is(err, fs.ErrNotExist) {
		texts, err = w.sparse(src, from, to)
	}
	if err != nil {
		return err
	}
	b := &itlog.Batch{Prev: w.head.Signed, Head: w.head.Signed, Tree: w.head.Tree}
	keys := make([]string, len(texts))
	seen := map[string]int64{}
	for i, text := range texts {
		id := from + int64(i)
		r, err := gosum.Parse(text)
		if err != nil {
			return fmt.Errorf("record %d is not a go.sum record (%v): a primary's log holds only those", id, err)
		}
		if prev, ok := seen[r.Key()]; ok {
			return fmt.Errorf("records %d and %d are both %s: a primary holds one record per module version", prev, id, r.Key())
		}
		seen[r.Key()] = id
		keys[i] = r.Key()
		b.Records = append(b.Records, itlog.StoredRecord{ID: id, Key: r.Key(), Text: text})
	}
	ids, err := w.dst.Lookup(w.ctx, keys)
	if err != nil {
		return err
	}
	for i, id := range ids {
		if id >= 0 {
			return fmt.Errorf("records %d and %d are both %s: a primary holds one record per module version", id, from+int64(i), keys[i])
		}
	}
	return w.commit(b)
}

// sparse reads records one by one from a mirror that lacks some, taking
// the missing ones from the old database.
func (w *restoreWriter) sparse(src *itlog.Log, from, to int64) ([][]byte, error) {
	texts := make([][]byte, 0, to-from)
	for id := from; id < to; id++ {
		t, err := src.ReadRecords(w.ctx, id, 1)
		if errors.Is(err, fs.ErrNotExist) && id < w.oldN && w.oldRecs != nil {
			t, err = w.oldRecs(w.ctx, []int64{id})
			if err == nil && t[0] == nil {
				err = fs.ErrNotExist
			}
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("the mirror lacks record %d (it is partial) and no old database holds it: restore needs every record, from a full mirror", id)
		}
		if err != nil {
			return nil, err
		}
		texts = append(texts, t[0])
	}
	return texts, nil
}

// tiles copies every hash tile of the tree.
func (w *restoreWriter) tiles(src *itlog.Log) error {
	all := tlog.NewTiles(8, 0, w.head.Tree.N)
	for chunk := range slices.Chunk(all, 4096) {
		b := &itlog.Batch{Prev: w.head.Signed, Head: w.head.Signed, Tree: w.head.Tree}
		for _, t := range chunk {
			data, err := src.ReadTileData(w.ctx, t)
			if err != nil {
				return fmt.Errorf("failed to read the mirror's tile %s: %w", t.Path(), err)
			}
			b.Tiles = append(b.Tiles, itlog.Tile{TileID: itlog.TileID{L: t.L, N: t.N}, Data: data})
		}
		if err := w.commit(b); err != nil {
			return err
		}
	}
	return nil
}

func (w *restoreWriter) commit(b *itlog.Batch) error {
	if err := w.dst.Commit(w.ctx, b); err != nil {
		return fmt.Errorf("failed to write the restored database: %w", err)
	}
	return nil
}
