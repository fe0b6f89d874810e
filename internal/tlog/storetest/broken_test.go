package storetest_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/storetest"
)

// brokenStores are bbolt stores broken on purpose, each in a way one check
// of the suite is there to find.
var brokenStores = map[string]func(*tlog.BoltStore) tlog.Store{
	"tornFinder": func(s *tlog.BoltStore) tlog.Store { return tornFinder{newTorn(s)} },
	"tornLeaves": func(s *tlog.BoltStore) tlog.Store { return tornLeaves{newTorn(s)} },
	"sharingCache": func(s *tlog.BoltStore) tlog.Store {
		return &sharingCache{BoltStore: s, records: map[int64][]byte{}}
	},
	"unskipping": func(s *tlog.BoltStore) tlog.Store { return unskipping{s} },
}

// TestSuiteCatchesBrokenStores runs one test of the suite on each broken
// store, in a child process, and checks that it fails saying why: proof
// that the check looks at what it is meant to.
func TestSuiteCatchesBrokenStores(t *testing.T) {
	for _, c := range []struct{ broken, test, want string }{
		{"tornFinder", "ReadsDuringCommits", "an index entry without its record"},
		{"tornLeaves", "ReadsDuringCommits", "a record without its leaf"},
		{"sharingCache", "Aliasing", `= "XXXXXXXX`},
		{"unskipping", "ScanReleases", `ScanReleases("example.com/rel", "", 100) = ["example.com/rel@v0.0.0-20200101000000-abcdef123456" "example.com/rel@v0.0.0-20200102000000-abcdef123456"`},
	} {
		t.Run(c.broken, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenStoreChild$/^"+c.test+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), "SUMD_STORETEST_BROKEN="+c.broken)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Fatalf("the suite's %s on the %s store: %v; want it to fail saying %q:\n%.3000s", c.test, c.broken, err, c.want, out)
			}
		})
	}
}

// TestBrokenStoreChild runs the suite on the broken store
// TestSuiteCatchesBrokenStores names.
func TestBrokenStoreChild(t *testing.T) {
	name := os.Getenv("SUMD_STORETEST_BROKEN")
	if name == "" {
		t.Skip("run by TestSuiteCatchesBrokenStores")
	}
	open := boltOpener(t.TempDir())
	storetest.Run(t, func(t *testing.T, n string) tlog.Store {
		return brokenStores[name](open(t, n).(*tlog.BoltStore))
	})
}

// A torn store reads in two transactions what it should read in one, and
// makes sure a commit falls between them once: its first commit waits
// until a read is between its two transactions, which waits until that
// commit has ended. The suite's readers run until its commits end, so one
// gets there. Left to chance, the commits of a loaded machine could all
// miss the gap, and the suite pass the broken store.
type torn struct {
	*tlog.BoltStore
	inGap, committed    chan struct{}
	gapOnce, commitOnce sync.Once
}

func newTorn(s *tlog.BoltStore) *torn {
	return &torn{BoltStore: s, inGap: make(chan struct{}), committed: make(chan struct{})}
}

func (s *torn) Commit(ctx context.Context, b *tlog.Batch) error {
	first := false
	s.commitOnce.Do(func() { first = true })
	if !first {
		return s.BoltStore.Commit(ctx, b)
	}
	<-s.inGap
	defer close(s.committed)
	return s.BoltStore.Commit(ctx, b)
}

// gap runs between a read's two transactions.
func (s *torn) gap() {
	s.gapOnce.Do(func() {
		close(s.inGap)
		<-s.committed
	})
}

// tornFinder's FindRecords reads the records of the index entries it
// found, then the index again, in three transactions instead of one: a
// key committed meanwhile comes without its record.
type tornFinder struct{ *torn }

func (s tornFinder) FindRecords(ctx context.Context, keys []string) ([]int64, [][]byte, error) {
	ids, err := s.Lookup(ctx, keys)
	if err != nil {
		return nil, nil, err
	}
	texts, err := s.ReadRecords(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	s.gap()
	ids, err = s.Lookup(ctx, keys)
	return ids, texts, err
}

// tornLeaves's ReadRecordLeaves reads the level-0 tiles, then the
// records, in two transactions instead of one: a record committed
// meanwhile comes with the zero hash for its leaf.
type tornLeaves struct{ *torn }

func (s tornLeaves) ReadRecordLeaves(ctx context.Context, ids []int64) ([][]byte, []xtlog.Hash, error) {
	tileIDs := make([]tlog.TileID, len(ids))
	for i, id := range ids {
		tileIDs[i] = tlog.TileID{L: 0, N: id >> 8}
	}
	tiles, err := s.ReadTiles(ctx, tileIDs)
	if err != nil {
		return nil, nil, err
	}
	s.gap()
	texts, err := s.ReadRecords(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	leaves := make([]xtlog.Hash, len(ids))
	for i, id := range ids {
		if off := int(id%256) * xtlog.HashSize; texts[i] != nil && off+xtlog.HashSize <= len(tiles[i]) {
			copy(leaves[i][:], tiles[i][off:])
		}
	}
	return texts, leaves, nil
}

// sharingCache keeps records in memory, as a caching store does, but the
// very slices: those of the batches it committed, and those it returns.
type sharingCache struct {
	*tlog.BoltStore
	mu      sync.Mutex
	records map[int64][]byte
}

func (s *sharingCache) Commit(ctx context.Context, b *tlog.Batch) error {
	err := s.BoltStore.Commit(ctx, b)
	if err == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range b.Records {
			s.records[r.ID] = r.Text
		}
	}
	return err
}

func (s *sharingCache) ReadRecords(ctx context.Context, ids []int64) ([][]byte, error) {
	out, err := s.BoltStore.ReadRecords(ctx, ids)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range ids {
		if text, ok := s.records[id]; ok {
			out[i] = text
		} else if out[i] != nil {
			s.records[id] = out[i]
		}
	}
	return out, err
}

// unskipping is a store whose ScanReleases lists every key of the module,
// not only the first of each release.
type unskipping struct{ *tlog.BoltStore }

func (s unskipping) ScanReleases(ctx context.Context, path, from string, limit int) ([]tlog.IndexEntry, error) {
	es, err := s.ScanIndex(ctx, max(from, path+"@"), limit)
	i := slices.IndexFunc(es, func(e tlog.IndexEntry) bool { return e.Path != path })
	if i >= 0 {
		es = es[:i]
	}
	return es, err
}
