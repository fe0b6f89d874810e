package pgstore

import (
	"context"
	"errors"
	"io/fs"
	"testing"

	"golang.org/x/mod/module"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestRepairedRows: the store's cache kept an index entry naming another
// version's record, and a record that no longer hashed to its leaf, after
// an operator repaired the row: every process kept refusing that version,
// or that record, until restarted. The log now drops what it finds wrong
// from the cache (tlog.CachingStore), so the repaired row is read again.
func TestRepairedRows(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	db := dbName(url)
	l, _ := openLog(t, url, k, Options{})
	recs := make([]gosum.Record, 300) // record 5 is not in the tail VerifyTail reads
	for i := range recs {
		recs[i] = record(i)
	}
	if _, err := l.Add(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	r := record(999) // not recorded
	m := module.Version{Path: r.Path, Version: r.Version}
	if err := pg.Exec(db, `INSERT INTO sumd_index (key, id) VALUES ('`+r.Key()+`', 3)`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(db, `UPDATE sumd_records SET text = text || 'x' WHERE id = 5`); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, url, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l, err = tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Logger: quiet}) // VerifyTail
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wrong *tlog.WrongIndexError
	if _, err := l.Lookup(ctx, m); !errors.As(err, &wrong) {
		t.Errorf("Lookup of a version the index wrongly names = %v, want a *WrongIndexError", err)
	}
	if _, err := l.Add(ctx, r); !errors.As(err, &wrong) {
		t.Errorf("Add of a version the index wrongly names = %v, want a *WrongIndexError", err)
	}
	var corrupt *tlog.CorruptRecordError
	if _, err := l.ReadRecords(ctx, 5, 1); !errors.As(err, &corrupt) {
		t.Errorf("ReadRecords of a changed record = %v, want a *CorruptRecordError", err)
	}

	// The operator repairs both rows; the running process serves them.
	if err := pg.Exec(db, `DELETE FROM sumd_index WHERE key = '`+r.Key()+`'`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(db, `UPDATE sumd_records SET text = substring(text from 1 for length(text) - 1) WHERE id = 5`); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Lookup(ctx, m); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lookup after the wrong entry was deleted = %v, want fs.ErrNotExist", err)
	}
	if ids, err := l.Add(ctx, r); err != nil || ids[0] != 300 {
		t.Errorf("Add after the wrong entry was deleted = %v, %v; want id 300", ids, err)
	}
	if _, err := l.ReadRecords(ctx, 5, 1); err != nil {
		t.Errorf("ReadRecords of the repaired record: %v", err)
	}
}

// TestRepairedTile: the store cached a full hash tile it read before the
// log authenticated it, so after the log found it damaged and an operator
// repaired the row, the process kept refusing the tile (and the records
// whose leaves it holds) from its cache until restarted. The log now
// drops the tiles it finds wrong from the cache too.
func TestRepairedTile(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	db := dbName(url)
	l, _ := openLog(t, url, k, Options{})
	recs := make([]gosum.Record, 600) // tiles 0/0 and 0/1 full
	for i := range recs {
		recs[i] = record(i)
	}
	if _, err := l.Add(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	damage := `UPDATE sumd_tiles SET data = set_byte(data, 100, get_byte(data, 100) # 1) WHERE level = 0 AND n = 0`
	if err := pg.Exec(db, damage); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, url, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l, err = tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Logger: quiet}) // VerifyTail
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tile := xtlog.Tile{H: 8, L: 0, N: 0, W: 256}
	var corrupt *tlog.CorruptTileError
	if _, err := l.ReadTileData(ctx, tile); !errors.As(err, &corrupt) {
		t.Fatalf("ReadTileData of a changed tile = %v, want a *CorruptTileError", err)
	}

	// The operator repairs the row; the running process serves it.
	if err := pg.Exec(db, damage); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadTileData(ctx, tile); err != nil {
		t.Errorf("ReadTileData of the repaired tile: %v", err)
	}
	if _, err := l.ReadRecords(ctx, 3, 1); err != nil {
		t.Errorf("ReadRecords of a record whose leaf the repaired tile holds: %v", err)
	}
}
