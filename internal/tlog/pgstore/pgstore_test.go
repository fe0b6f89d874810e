package pgstore

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/pgtest"
	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openDB opens a store on url, closed at the end of the test.
func openDB(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the storage contract's suite on PostgreSQL, one
// database per store name.
func TestConformance(t *testing.T) {
	storetest.Run(t, newPGStores(t).open)
}

// TestDamage runs storetest's log-level damage checks on PostgreSQL: the
// tampering is SQL on the tables.
func TestDamage(t *testing.T) {
	pgs := newPGStores(t)
	storetest.Damage(t, pgs.open, pgs)
}

// pgStores are databases by store name, and their storetest.Tamperer.
type pgStores struct {
	pg   *pgtest.Server
	mu   sync.Mutex
	urls map[string]string
}

func newPGStores(t *testing.T) *pgStores {
	return &pgStores{pg: pgtest.Shared(t), urls: map[string]string{}}
}

func (p *pgStores) url(t *testing.T, name string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	url, ok := p.urls[name]
	if !ok {
		url = p.pg.NewDatabase(t)
		p.urls[name] = url
	}
	return url
}

func (p *pgStores) open(t *testing.T, name string) tlog.Store {
	s, err := Open(context.Background(), p.url(t, name), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (p *pgStores) exec(t *testing.T, name, sql string, args ...any) {
	t.Helper()
	if err := p.pg.Exec(dbName(p.url(t, name)), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (p *pgStores) SetIndex(t *testing.T, name, key string, id int64) {
	p.exec(t, name, `INSERT INTO sumd_index (key, id) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET id = $2`, []byte(key), id)
}

func (p *pgStores) SetRecord(t *testing.T, name string, id int64, text []byte) {
	p.exec(t, name, `UPDATE sumd_records SET text = $2 WHERE id = $1`, id, text)
}

func (p *pgStores) SetTile(t *testing.T, name string, id tlog.TileID, data []byte) {
	p.exec(t, name, `UPDATE sumd_tiles SET data = $3 WHERE level = $1 AND n = $2`, id.L, id.N, data)
}

// waitLockWait waits until a session of the database at url waits for a
// lock, as a writer behind another's head lock does: a poll of
// pg_stat_activity, not a time it is assumed to take to get there. The
// writer whose answer done carries must not have finished first.
func waitLockWait(t *testing.T, pg *pgtest.Server, url string, done <-chan error) {
	t.Helper()
	db, _, _ := strings.Cut(strings.TrimPrefix(url, "postgres:///"), "?")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("the writer finished while another held the head's lock: %v", err)
		default:
		}
		var n int
		if err := pgQuery(t, pg, "postgres", `SELECT count(*) FROM pg_stat_activity
			WHERE datname = '`+db+`' AND wait_event_type = 'Lock'`, &n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waited for the head's lock within 30s")
		}
	}
}

// TestLockHeadBlocks: while one store holds the head's lock, another's
// commit waits, and then loses the compare-and-swap.
func TestLockHeadBlocks(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	url, k := pg.NewDatabase(t), testKey(t)
	a, sa := openLog(t, url, k, Options{})
	b, _ := openLog(t, url, k, Options{})
	if err := sa.LockHead(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := b.Add(ctx, record(1)); done <- err }()
	waitLockWait(t, pg, url, done)
	// a commits on the lock it holds: b, waiting for it, loses, catches up
	// and commits after it.
	if ids, err := a.Add(ctx, record(0)); err != nil || ids[0] != 0 {
		t.Fatalf("a.Add under its lock = %v, %v", ids, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("b.Add after a's commit: %v", err)
	}
	if n := reverify(t, url, k); n != 2 {
		t.Fatalf("tree %d, want 2", n)
	}
}

// TestRecordCache: a store caches records and index entries below a head
// it read or committed, never beyond, and never a miss.
func TestRecordCache(t *testing.T) {
	ctx := context.Background()
	url, k := pgtest.Shared(t).NewDatabase(t), testKey(t)
	w, _ := openLog(t, url, k, Options{})
	if _, err := w.Add(ctx, record(0), record(1)); err != nil {
		t.Fatal(err)
	}
	r := openDB(t, url) // another process, which has read no head yet
	keys := []string{record(0).Key(), record(5).Key()}
	if ids, err := r.Lookup(ctx, keys); err != nil || ids[0] != 0 || ids[1] != -1 {
		t.Fatalf("Lookup = %v, %v", ids, err)
	}
	if texts, err := r.ReadRecords(ctx, []int64{0, 1, 2}); err != nil || texts[0] == nil || texts[2] != nil {
		t.Fatalf("ReadRecords = %q, %v", texts, err)
	}
	if r.cache.index.Len() != 0 || r.cache.records.Len() != 0 {
		t.Fatal("cached entries beyond every head the store read")
	}
	if _, err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	r.Lookup(ctx, keys)
	r.ReadRecords(ctx, []int64{0, 1, 2})
	if _, ok := r.cache.index.Get(keys[0]); !ok || r.cache.index.Len() != 1 || r.cache.records.Len() != 2 {
		t.Fatalf("cached %d index entries and %d records below the head, want 1 and 2 (no misses)", r.cache.index.Len(), r.cache.records.Len())
	}
	// Served from the cache: the statement would fail.
	r.pool.Close()
	if texts, err := r.ReadRecords(ctx, []int64{1}); err != nil || string(texts[0]) != string(record(1).Text()) {
		t.Fatalf("ReadRecords from the cache = %q, %v", texts, err)
	}
}

// TestTileCache: a full tile is cached only if the tree of a head the
// store read or committed covers it: a tile beyond it may come from a
// commit that is not durable, or a staging.
func TestTileCache(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Shared(t).NewDatabase(t)
	w := openDB(t, url)
	if err := w.Create(ctx, tlog.Meta{Name: "x", VKeys: []string{"x+1+AAAA"}, Mirror: true}, nil); err != nil {
		t.Fatal(err)
	}
	full := tlog.Tile{TileID: tlog.TileID{L: 0, N: 1}, Data: bytes.Repeat([]byte{7}, tileBytes)}
	if err := w.Commit(ctx, &tlog.Batch{Tiles: []tlog.Tile{full}}); err != nil { // staged
		t.Fatal(err)
	}
	r := openDB(t, url)
	for _, size := range []int64{0, 511, 512} {
		r.cache.below(size)
		if got, err := r.ReadTiles(ctx, []tlog.TileID{full.TileID}); err != nil || len(got[0]) != tileBytes {
			t.Fatalf("ReadTiles = %d bytes, %v", len(got[0]), err)
		}
		if cached := r.tiles.Len() == 1; cached != (size == 512) {
			t.Errorf("below a head of tree %d: tile 0/1 cached: %v", size, cached)
		}
	}
}

// TestRecordCacheKeepsSmallerID: an index entry only moves to a smaller id
// (a mirror's re-point); a read that raced this store's own commit of the
// move must not put the larger id back in the cache.
func TestRecordCacheKeepsSmallerID(t *testing.T) {
	c := newRecordCache(16)
	c.index.Add("k@v1", 2) // this store's commit of the move
	c.addIndex("k@v1", 5, 10)
	if id, _ := c.index.Peek("k@v1"); id != 2 {
		t.Errorf("cached index entry = %d after a racing read of 5, want 2", id)
	}
	c.addIndex("j@v1", 5, 10)
	if id, ok := c.index.Peek("j@v1"); !ok || id != 5 {
		t.Errorf("cached index entry = %d, %v, want 5", id, ok)
	}
}

// TestOpenInvalidURLHidesSecrets: a connection string pgx cannot parse is
// not quoted in Open's error, which sumd prints and logs: pgx masks only
// the secrets it recognizes there, and not those of a keyword/value string
// written with spaces around its '=', as libpq and pgx accept.
func TestOpenInvalidURLHidesSecrets(t *testing.T) {
	for _, db := range []string{
		"host=localhost password = 'SEC RET' port=invalid",
		"host=localhost sslpassword = SECRET port=invalid",
		"postgres://sumd:SECRET@localhost/sumd?port=invalid",
	} {
		_, err := Open(t.Context(), db, Options{})
		if err == nil || strings.Contains(err.Error(), "SEC") || !strings.Contains(err.Error(), "invalid port") {
			t.Errorf("Open(%q): %v\nwant it refused as an invalid port, naming no secret", db, err)
		}
	}
}
