package pgstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
)

// TestRolledBackHead is the red team's reproduction: 150 records, then the
// head row set back to the signed head of tree 99 behind sumd's back (the
// records, index entries and tiles of the larger tree stay). A new process
// opened it without complaint, and its next add overwrote record 99 and
// signed a fork. Then the head row deleted and the log "created" again over
// the 150 records. Both are refused, and nothing is written.
func TestRolledBackHead(t *testing.T) {
	ctx := context.Background()
	url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
	w, _ := openLog(t, url, k, Options{})
	var old *tlog.Head
	for i := range 150 {
		if i == 99 {
			old = w.Published()
		}
		if _, err := w.Add(ctx, record(i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE sumd_log SET head = $1, tree_size = $2, root = $3 WHERE id = 1`,
		old.Signed, old.Tree.N, old.Tree.Hash[:]); err != nil {
		t.Fatal(err)
	}

	open := func(create bool) error {
		s := openDB(t, url)
		l, err := tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Create: create, Logger: quiet})
		if err == nil {
			l.Close()
		}
		return err
	}
	err = open(false)
	var beyond *tlog.BeyondHeadError
	if !errors.As(err, &beyond) || beyond.Tree != 99 || !strings.Contains(err.Error(), "records up to id 149") ||
		!strings.Contains(err.Error(), "index entries naming records up to id 149") || !strings.Contains(err.Error(), "tile 0/0 with 150 hashes") {
		t.Fatalf("opening the rolled-back database: %v; want a *BeyondHeadError naming the records, index entries and tile beyond tree 99", err)
	}
	var text []byte
	if err := conn.QueryRow(ctx, `SELECT text FROM sumd_records WHERE id = 99`).Scan(&text); err != nil || string(text) != string(record(99).Text()) {
		t.Fatalf("record 99 = %q, %v; want it unchanged", text, err)
	}

	if _, err := conn.Exec(ctx, `DELETE FROM sumd_log`); err != nil {
		t.Fatal(err)
	}
	if err := open(true); !errors.Is(err, tlog.ErrLeftoverData) || !errors.Is(err, tlog.ErrCorrupt) {
		t.Fatalf("creating a log over the 150 records: %v; want ErrLeftoverData", err)
	}
	var logs int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sumd_log`).Scan(&logs); err != nil || logs != 0 {
		t.Fatalf("sumd_log holds %d rows (%v) after the refused create, want 0", logs, err)
	}
}
