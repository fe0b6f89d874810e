package testlog_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testlog"
	itlog "github.com/sumd-project/sumd/internal/tlog"
	"github.com/sumd-project/sumd/internal/tlog/storetest"
)

// newLog opens a log in memory signed by key holding records 0 to n-1:
// two such logs serve the same bytes, as a mirror serves its origin's.
func newLog(t *testing.T, key *itlog.Key, n int) *itlog.Log {
	t.Helper()
	l, err := itlog.OpenStore(itlog.NewMemStore(), itlog.Options{Keys: []*itlog.Key{key}, Create: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var recs []gosum.Record
	for i := range n {
		recs = append(recs, storetest.Record(i))
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	return l
}

// A fatal is a testing.TB that notes the first Fatalf and ends the
// goroutine, as the real one does.
type fatal struct {
	testing.TB
	msg string
}

func (f *fatal) Helper() {}
func (f *fatal) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// sameAs runs testlog.SameAs and returns what it failed with, if it did.
func sameAs(t *testing.T, m, o testlog.Served, holds func(int64) bool) string {
	f := &fatal{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testlog.SameAs(f, m, o, holds)
	}()
	<-done
	return f.msg
}

// A tileChange serves a log with one tile, at one width, changed.
type tileChange struct {
	*itlog.Log
	tile tlog.Tile
}

func (c tileChange) ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error) {
	data, err := c.Log.ReadTileData(ctx, t)
	if t == c.tile && err == nil {
		data[0] ^= 1
	}
	return data, err
}

// A partial serves a log without record 3, as a partial mirror does.
type partial struct{ *itlog.Log }

func (p partial) ReadRecords(ctx context.Context, id, n int64) ([][]byte, error) {
	if id <= 3 && 3 < id+n {
		return nil, fmt.Errorf("record 3: %w", fs.ErrNotExist)
	}
	return p.Log.ReadRecords(ctx, id, n)
}

func (p partial) Lookup(ctx context.Context, m module.Version) (int64, error) {
	if m.Path == "example.com/m3" {
		return 0, fmt.Errorf("%s: %w", m, fs.ErrNotExist)
	}
	return p.Log.Lookup(ctx, m)
}

// TestSameAs: a log that serves what its origin does passes, as does one
// that lacks exactly the records it is said to lack; another head, a
// record held that should not be, one missing, or a tile changed at a
// width checked fail.
func TestSameAs(t *testing.T) {
	key := storetest.NewKey(t)
	o, twin, longer := newLog(t, key, 300), newLog(t, key, 300), newLog(t, key, 301)
	all := func(int64) bool { return true }
	tile := func(w int) tlog.Tile { return tlog.Tile{H: 8, L: 0, N: 0, W: w} }
	for _, tc := range []struct {
		name  string
		m     testlog.Served
		holds func(int64) bool
		fails bool
	}{
		{"twin", twin, all, false},
		{"another head", longer, all, true},
		{"holds a record said not to", twin, func(id int64) bool { return id != 3 }, true},
		{"partial", partial{twin}, func(id int64) bool { return id != 3 }, false},
		{"lacks a record said to hold", partial{twin}, all, true},
		{"tile width 1 changed", tileChange{twin, tile(1)}, all, true},
		{"tile width 35 changed", tileChange{twin, tile(35)}, all, true},
		{"tile width 159 changed", tileChange{twin, tile(159)}, all, true},
		{"tile width 256 changed", tileChange{twin, tile(256)}, all, true},
		{"partial tile changed", tileChange{twin, tlog.Tile{H: 8, L: 0, N: 1, W: 44}}, all, true},
	} {
		if msg := sameAs(t, tc.m, o, tc.holds); (msg != "") != tc.fails {
			t.Errorf("%s: SameAs failed with %q, want a failure %v", tc.name, msg, tc.fails)
		}
	}
}
