package seed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

// smallChunks is a sink taking chunks of n records, failing its Add number
// failAt (from 1; 0: never).
type smallChunks struct {
	LogSink
	n, failAt int
	adds      *int
}

var errDiskFull = errors.New("disk full")

func (s smallChunks) Chunk() int { return s.n }

func (s smallChunks) Add(ctx context.Context, recs []gosum.Record) (int64, int64, error) {
	if *s.adds++; *s.adds == s.failAt {
		return 0, 0, errDiskFull
	}
	return s.LogSink.Add(ctx, recs)
}

// importRecord is record i of the files TestImport writes.
func importRecord(i int) gosum.Record {
	return gosum.Record{Path: fmt.Sprintf("example.com/m%d", i), Version: "v1.0.0", Hash: hashA, GoMod: hashB}
}

// TestImport follows sumd add -gosum through the log: Survey finds a
// version the log holds with other hashes, by file and line, before
// anything is committed, in any chunk; Commit records in key order, chunk
// by chunk, and an import cut short by a failing chunk has recorded the
// chunks before it only, so that running it again records the rest.
func TestImport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openBenchLog(t, filepath.Join(dir, "sumd.db"))
	defer l.Close()
	recorded := gosum.Record{Path: "example.com/a", Version: "v1.0.0", Hash: hashA, GoMod: hashB}
	if _, err := l.Add(ctx, recorded); err != nil {
		t.Fatal(err)
	}
	// Seven versions in reverse key order, the recorded one last.
	var lines []string
	for i := 6; i >= 0; i-- {
		r := importRecord(i)
		lines = append(lines, r.Path+" "+r.Version+" "+r.Hash, r.Path+" "+r.Version+"/go.mod "+r.GoMod)
	}
	adds := 0
	sink := smallChunks{LogSink{l}, 3, 0, &adds}
	sortFile := func(lines ...string) *Sorted {
		s, err := Sort(context.Background(), []string{write(t, t.TempDir(), "go.sum", lines...)}, Options{TempDir: dir, MemoryBytes: 300})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}

	conflicting := sortFile(append(lines, "example.com/a v1.0.0 "+hashC, "example.com/a v1.0.0/go.mod "+hashB)...)
	sv, err := conflicting.Survey(ctx, sink, false)
	if err != nil {
		t.Fatal(err)
	}
	if sv.Records != 8 || sv.Conflicts != 1 || len(sv.Listed) != 1 ||
		!strings.HasSuffix(sv.Listed[0], "go.sum:15: example.com/a@v1.0.0 is recorded as record 0 with "+hashA+", go.mod "+hashB+"; the go.sum files say "+hashC+", go.mod "+hashB) {
		t.Fatalf("Survey = %+v, want 8 records and the conflict of example.com/a@v1.0.0 at go.sum:15", sv)
	}
	if n := l.Published().Tree.N; n != 1 {
		t.Fatalf("after Survey the tree holds %d records, want 1", n)
	}

	// Chunks in key order: [a m0 m1] [m2 m3 m4] [m5 m6]; the second fails.
	s := sortFile(append(lines, "example.com/a v1.0.0 "+hashA, "example.com/a v1.0.0/go.mod "+hashB)...)
	if sv, err := s.Survey(ctx, sink, false); err != nil || sv.Records != 8 || sv.Conflicts != 0 {
		t.Fatalf("Survey = %+v, %v; want 8 records, no conflict", sv, err)
	}
	adds, sink.failAt = 0, 2
	added, _, err := s.Commit(ctx, sink)
	if !errors.Is(err, errDiskFull) || added != 2 {
		t.Fatalf("Commit with a failing second chunk = %d added, %v; want 2 added, %v", added, err, errDiskFull)
	}
	if n := l.Published().Tree.N; n != 3 {
		t.Fatalf("after a failed second chunk the tree holds %d records, want 3", n)
	}
	adds, sink.failAt = 0, 0
	added, size, err := s.Commit(ctx, sink)
	if err != nil || added != 5 || size != 8 {
		t.Fatalf("Commit again = %d added, tree size %d, %v; want 5 added, tree size 8", added, size, err)
	}
	for i := range 7 {
		id, err := l.Lookup(ctx, module.Version{Path: importRecord(i).Path, Version: "v1.0.0"})
		if err != nil || id != int64(i+1) {
			t.Errorf("lookup of %s = %d, %v; want id %d (key order)", importRecord(i).Key(), id, err, i+1)
		}
	}
}

// sharedMem is a MemStore that says other processes write it too, as a
// PostgreSQL database does.
type sharedMem struct{ *tlog.MemStore }

func (sharedMem) Shared() bool { return true }

// TestLogSinkCountsOwnRecords: on a store another process writes, a
// LogSink's Add counts the records of its own chunk that were new, not
// the tree's growth: the other writer's records, which this log adopts
// while it adds, are not "added" by the import.
func TestLogSinkCountsOwnRecords(t *testing.T) {
	ctx := context.Background()
	store := sharedMem{tlog.NewMemStore()}
	skey, _, err := tlog.GenerateKey("shared.example.com")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := tlog.ParseKey(skey)
	open := func() *tlog.Log {
		l, err := tlog.OpenStore(store, tlog.Options{Keys: []*tlog.Key{k}, Create: true, RefreshInterval: time.Hour,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	ours, other := open(), open()
	if _, err := ours.Add(ctx, importRecord(0)); err != nil {
		t.Fatal(err)
	}
	// The other process records three versions this log has not seen.
	if _, err := other.Add(ctx, importRecord(10), importRecord(11), importRecord(12)); err != nil {
		t.Fatal(err)
	}
	// One version recorded before, two new.
	added, size, err := LogSink{ours}.Add(ctx, []gosum.Record{importRecord(0), importRecord(1), importRecord(2)})
	if err != nil || added != 2 || size != 6 {
		t.Errorf("LogSink.Add = %d added, tree size %d, %v; want 2 added (not the other writer's 3), tree size 6", added, size, err)
	}
	// The other process records a version this log has not seen, which
	// the import then adds too: its id is past the tree this log knew of,
	// but the other process recorded it.
	if _, err := other.Add(ctx, importRecord(3)); err != nil {
		t.Fatal(err)
	}
	added, _, err = LogSink{ours}.Add(ctx, []gosum.Record{importRecord(3), importRecord(4)})
	if err != nil || added != 1 {
		t.Errorf("LogSink.Add of a version the other writer recorded meanwhile and a new one = %d added, %v; want 1", added, err)
	}
}

// TestSurveyOneLine: Survey checks the versions with one go.sum line
// against the log too, by key and the hash of that line: one the log holds
// with another hash is a conflict naming both, one it holds with the same
// hash is present (not incomplete), and only the others are incomplete.
func TestSurveyOneLine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openBenchLog(t, filepath.Join(dir, "sumd.db"))
	defer l.Close()
	recorded := []gosum.Record{
		{Path: "example.com/a", Version: "v1.0.0", Hash: hashA, GoMod: hashB},
		{Path: "example.com/b", Version: "v1.0.0", Hash: hashA, GoMod: hashB},
	}
	if _, err := l.Add(ctx, recorded...); err != nil {
		t.Fatal(err)
	}
	survey := func(lines ...string) *Survey {
		t.Helper()
		s, err := Sort(ctx, []string{write(t, t.TempDir(), "go.sum", lines...)}, Options{TempDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sv, err := s.Survey(ctx, LogSink{l}, false)
		if err != nil {
			t.Fatal(err)
		}
		return sv
	}

	sv := survey("example.com/a v1.0.0/go.mod "+hashB, "example.com/b v1.0.0 "+hashA, "example.com/c v1.0.0/go.mod "+hashB)
	if sv.Conflicts != 0 || sv.Present != 2 || sv.Incompletes != 1 || len(sv.Incomplete) != 1 || sv.Incomplete[0].Path != "example.com/c" {
		t.Errorf("Survey of two recorded one-line versions and a new one = %+v; want 2 present, example.com/c incomplete", sv)
	}

	sv = survey("example.com/a v1.0.0/go.mod "+hashC, "example.com/b v1.0.0 "+hashC)
	want := []string{
		"go.sum:1: example.com/a@v1.0.0 is recorded as record 0 with go.mod " + hashB + "; the go.sum files say go.mod " + hashC,
		"go.sum:2: example.com/b@v1.0.0 is recorded as record 1 with " + hashA + "; the go.sum files say " + hashC,
	}
	if sv.Conflicts != 2 || sv.Present != 0 || sv.Incompletes != 0 || len(sv.Listed) != 2 ||
		!strings.HasSuffix(sv.Listed[0], want[0]) || !strings.HasSuffix(sv.Listed[1], want[1]) {
		t.Errorf("Survey of one-line versions recorded with other hashes = %+v; want the conflicts %q", sv, want)
	}
}
