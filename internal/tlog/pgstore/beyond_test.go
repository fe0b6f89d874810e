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

// TestLostHeadRemembered: a failover to a standby that lacks the last
// commit (asynchronous replication, or the wrong one of a quorum) leaves
// the database at an older head with no trace of the lost one. A running
// process that published the lost head stops, saying not to restart; but a
// supervisor restarts it (packaging/sumd.service: Restart=on-failure), or
// another process starts, and it opened the older head and signed a tree
// of the lost one's size with other records: the fork every client that
// saw the lost head reports. The process that stops records the head it
// published in the database, and opening a database whose head does not
// extend it is refused, until the database is restored to a head that
// does; a process still running on the older head (it had not adopted the
// lost one) stops at its next poll once the lost one is recorded.
func TestLostHeadRemembered(t *testing.T) {
	ctx := context.Background()
	url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
	a, _ := openLog(t, url, k, Options{})
	if _, err := a.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	old := a.Published()
	// A process that had not adopted the lost head yet.
	c, _ := openLog(t, url, k, Options{})
	if _, err := a.Add(ctx, record(1)); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The database as the standby had it: tree 1, nothing of record 1.
	lose := func() {
		t.Helper()
		for _, sql := range []string{
			`DELETE FROM sumd_records WHERE id >= 1`,
			`DELETE FROM sumd_index WHERE id >= 1`,
			`UPDATE sumd_tiles SET data = substr(data, 1, 32) WHERE level = 0 AND n = 0`,
		} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.Exec(ctx, `UPDATE sumd_log SET head = $1, tree_size = $2, root = $3 WHERE id = 1`,
			old.Signed, old.Tree.N, old.Tree.Hash[:]); err != nil {
			t.Fatal(err)
		}
	}
	lost := a.Published()
	var tile []byte
	if err := conn.QueryRow(ctx, `SELECT data FROM sumd_tiles WHERE level = 0 AND n = 0`).Scan(&tile); err != nil {
		t.Fatal(err)
	}
	lose()
	if err := a.Refresh(ctx); !errors.Is(err, tlog.ErrFatal) {
		t.Fatalf("Refresh on the older head = %v, want ErrFatal", err)
	}
	// A process still running on the older head stops at its next poll
	// (Refresh, here), and signs nothing on it.
	if err := c.Refresh(ctx); !errors.Is(err, tlog.ErrFatal) {
		t.Fatalf("Refresh by a process on the older head, after another recorded the lost one = %v; want ErrFatal", err)
	}
	if ids, err := c.Add(ctx, record(8)); !errors.Is(err, tlog.ErrFatal) {
		t.Fatalf("Add by a process on the older head, after another recorded the lost one = %v, %v; want ErrFatal", ids, err)
	}
	// The restart.
	s := openDB(t, url)
	b, err := tlog.OpenStore(s, tlog.Options{Keys: []*tlog.Key{k}, Logger: quiet})
	if err == nil {
		defer b.Close()
		ids, aerr := b.Add(ctx, record(7))
		t.Fatalf("a process opened the database at tree %d after another published tree %d (then Add = %v, %v: a fork)", old.Tree.N, lost.Tree.N, ids, aerr)
	}
	if !errors.Is(err, tlog.ErrCorrupt) || !strings.Contains(err.Error(), "tree of 2 records") {
		t.Fatalf("opening the database after the lost head = %v; want ErrCorrupt naming the lost tree", err)
	}
	// Restored (from a mirror) to the lost head or beyond: it opens.
	if _, err := conn.Exec(ctx, `INSERT INTO sumd_records (id, text) VALUES (1, $1)`, record(1).Text()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO sumd_index (key, id) VALUES ($1, 1)`, []byte(record(1).Key())); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE sumd_tiles SET data = $1 WHERE level = 0 AND n = 0`, tile); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE sumd_log SET head = $1, tree_size = $2, root = $3 WHERE id = 1`,
		lost.Signed, lost.Tree.N, lost.Tree.Hash[:]); err != nil {
		t.Fatal(err)
	}
	if n := reverify(t, url, k); n != 2 {
		t.Fatalf("restored tree %d, want 2", n)
	}
}

// TestRollbackFoundByCommit: after a failover that lost the last commit,
// a process that adopted it from another (so it keeps no edge tiles of its
// own) and adds before its next poll finds the older head's tiles cut
// short of its tree. That is the rollback, not damage: the log stops
// saying not to restart it (exit status 3), and records the lost head, as
// when a poll finds it. It failed each add as damage until a poll came.
func TestRollbackFoundByCommit(t *testing.T) {
	ctx := context.Background()
	url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
	a, _ := openLog(t, url, k, Options{})
	if _, err := a.Add(ctx, record(0)); err != nil {
		t.Fatal(err)
	}
	old := a.Published()
	b, _ := openLog(t, url, k, Options{})
	if _, err := a.Add(ctx, record(1)); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	lost := b.Published()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The database as the standby had it: tree 1, nothing of record 1.
	for _, sql := range []string{
		`DELETE FROM sumd_records WHERE id >= 1`,
		`DELETE FROM sumd_index WHERE id >= 1`,
		`UPDATE sumd_tiles SET data = substr(data, 1, 32) WHERE level = 0 AND n = 0`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `UPDATE sumd_log SET head = $1, tree_size = $2, root = $3 WHERE id = 1`,
		old.Signed, old.Tree.N, old.Tree.Hash[:]); err != nil {
		t.Fatal(err)
	}
	ids, err := b.Add(ctx, record(2))
	var hinted interface{ Hint() string }
	if !errors.Is(err, tlog.ErrFatal) || !errors.As(err, &hinted) || !strings.Contains(hinted.Hint(), "do NOT start sumd serve again") {
		t.Fatalf("Add on the rolled-back database = %v, %v; want ErrFatal saying not to restart", ids, err)
	}
	var recorded []byte
	if err := conn.QueryRow(ctx, `SELECT value FROM sumd_aux WHERE key = $1`, tlog.AuxLostHead).Scan(&recorded); err != nil || string(recorded) != string(lost.Signed) {
		t.Fatalf("lost head recorded = %q, %v; want the head of tree %d", recorded, err, lost.Tree.N)
	}
}
