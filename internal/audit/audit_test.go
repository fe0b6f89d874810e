package audit

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
)

// TestHealthyLog audits a real sumd log of 10,000 records (its last data
// tile partial) in full, then incrementally after it grew: the second run
// reads only the new records, starting inside the old partial tile.
func TestHealthyLog(t *testing.T) {
	tl := newTestLog(t, "", 10_000, testRecord)
	state := t.TempDir()
	full := func(o *Options) { o.Full, o.StateDir = true, state }

	rep := mustAudit(t, tl.srv.URL, tl.vkey, full)
	wantOK(t, rep, CheckSignature, CheckTiles, CheckRecords)
	if rep.RecordsFrom != 0 || rep.RecordsAudited != 10_000 || rep.Tree.Size != 10_000 {
		t.Errorf("first run audited %d records from %d of a tree of %d; want all 10000", rep.RecordsAudited, rep.RecordsFrom, rep.Tree.Size)
	}

	tl.add(10_000, 10_700, testRecord)
	rep = mustAudit(t, tl.srv.URL, tl.vkey, full)
	wantOK(t, rep, allChecks...)
	if rep.RecordsFrom != 10_000 || rep.RecordsAudited != 700 || rep.Previous.Size != 10_000 {
		t.Errorf("second run audited %d records from %d (previous head %v); want 700 from 10000", rep.RecordsAudited, rep.RecordsFrom, rep.Previous)
	}

	rep = mustAudit(t, tl.srv.URL, tl.vkey, full)
	wantOK(t, rep, allChecks...)
	if rep.RecordsAudited != 0 {
		t.Errorf("third run on an unchanged log audited %d records, want 0", rep.RecordsAudited)
	}
}

// TestGrowFromEmpty: a state saved while the log was empty is extended by
// any later tree (the empty tree has no consistency proof to check).
func TestGrowFromEmpty(t *testing.T) {
	tl := newTestLog(t, "", 0, testRecord)
	state := t.TempDir()
	full := func(o *Options) { o.Full, o.StateDir = true, state }
	rep := mustAudit(t, tl.srv.URL, tl.vkey, full)
	wantOK(t, rep, CheckSignature, CheckTiles, CheckRecords)
	tl.add(0, 33, testRecord)
	rep = mustAudit(t, tl.srv.URL, tl.vkey, full)
	wantOK(t, rep, allChecks...)
	if rep.Previous.Size != 0 || rep.Tree.Size != 33 || rep.RecordsAudited != 33 {
		t.Errorf("second run: previous %v, tree %v, %d records audited; want 0, 33, 33", rep.Previous, rep.Tree, rep.RecordsAudited)
	}
}

// TestQuickAudit checks the default run, without a state directory: the
// signature and the right-edge tiles only, no records read.
func TestQuickAudit(t *testing.T) {
	tl := newTestLog(t, "", 300, testRecord)
	rep := mustAudit(t, tl.srv.URL, tl.vkey, nil)
	wantOK(t, rep, CheckSignature, CheckTiles)
	if rep.RecordsAudited != 0 || rep.Tree.Size != 300 || rep.Database != testName {
		t.Errorf("report %+v", rep)
	}
	// Without a state directory a full audit keeps its key set in a
	// temporary file, and still finds every record.
	rep = mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.Full = true })
	wantOK(t, rep, CheckSignature, CheckTiles, CheckRecords)
	if rep.RecordsAudited != 300 {
		t.Errorf("audited %d records, want 300", rep.RecordsAudited)
	}
}

// TestBaseURLWithPath audits through sumd's /sumdb/<name>/ root, as through
// a module proxy that relays the database under a path.
func TestBaseURLWithPath(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	rep := mustAudit(t, tl.srv.URL+"/sumdb/"+testName+"/", tl.vkey, func(o *Options) { o.Full = true })
	wantOK(t, rep, CheckSignature, CheckTiles, CheckRecords)
	if rep.RecordsAudited != 600 {
		t.Errorf("audited %d records, want 600", rep.RecordsAudited)
	}
}

// TestFork restarts the database on a rewritten history under the same key,
// as a re-created database would be: the run with the first run's state
// reports a fork, quotes both signed heads, and keeps the old head saved.
func TestFork(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		kind string
		want []string
	}{
		{"longer", 1200, KindFork, []string{"SECURITY ERROR", "fork", "does not contain the tree of 1000 records"}},
		{"same size", 1000, KindFork, []string{"SECURITY ERROR", "fork", "two different trees of 1000 records"}},
		{"shorter", 900, KindRollback, []string{"SECURITY ERROR", "rollback", "smaller than the tree of 1000 records"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := newTestLog(t, "", 1000, testRecord)
			state := t.TempDir()
			wantOK(t, mustAudit(t, first.srv.URL, first.vkey, func(o *Options) { o.StateDir = state }), CheckSignature, CheckTiles)
			saved, _ := os.ReadFile(filepath.Join(state, testName, latestFile))

			second := newTestLog(t, first.skey, tc.size, seededRecord("rewritten"))
			rep := mustAudit(t, second.srv.URL, second.vkey, func(o *Options) { o.StateDir = state; o.Full = true })
			p := wantProblem(t, rep, tc.kind, tc.want...)
			served, _ := second.log.Signed(context.Background())
			if len(p.Heads) != 2 || p.Heads[0].Note != string(saved) || p.Heads[1].Note != string(served) {
				t.Errorf("problem quotes heads %q, want the saved one and the one served", p.Heads)
			}
			if now, _ := os.ReadFile(filepath.Join(state, testName, latestFile)); string(now) != string(saved) {
				t.Errorf("the state's head changed to the forked one:\n%s", now)
			}
			if len(rep.Checks) != 2 || rep.RecordsAudited != 0 {
				t.Errorf("checks %q, %d records audited: nothing may run after a fork", rep.Checks, rep.RecordsAudited)
			}
		})
	}
}

// TestForkAfterFullAudit rewrites (fork) or shortens (rollback) the
// history under records a full audit checked, with the saved head deleted:
// the checkpoint's head and audited right edge still catch it, before the
// new head is saved, so the state is not advanced to the bad head and the
// next run, even without -full, reports it again.
func TestForkAfterFullAudit(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		rec  func(int) gosum.Record
		kind string
		want []string
	}{
		{"fork", 800, seededRecord("rewritten"), KindFork, []string{"SECURITY ERROR", "first 700 records, audited before", "history changed"}},
		{"rollback", 300, testRecord, KindRollback, []string{"SECURITY ERROR", "rollback", "tree of 300 records, smaller than the tree of 700 records"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := newTestLog(t, "", 700, testRecord)
			state := t.TempDir()
			full := func(o *Options) { o.StateDir, o.Full = state, true }
			wantOK(t, mustAudit(t, first.srv.URL, first.vkey, full), CheckSignature, CheckTiles, CheckRecords)
			audited, _ := os.ReadFile(filepath.Join(state, testName, latestFile))
			if err := os.Remove(filepath.Join(state, testName, latestFile)); err != nil {
				t.Fatal(err)
			}
			second := newTestLog(t, first.skey, tc.size, tc.rec)
			for _, run := range []struct {
				name string
				set  func(*Options)
			}{{"-full", full}, {"then without -full", func(o *Options) { o.StateDir = state }}} {
				p := wantProblem(t, mustAudit(t, second.srv.URL, second.vkey, run.set), tc.kind, tc.want...)
				if len(p.Heads) != 2 || p.Heads[0].Role != roleAudited || p.Heads[0].Note != string(audited) {
					t.Errorf("%s: heads %+v, want the audited head and the served one", run.name, p.Heads)
				}
				if now, err := os.ReadFile(filepath.Join(state, testName, latestFile)); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s: the state saved the head served (%v):\n%s", run.name, err, now)
				}
			}
		})
	}
}

// TestCheckpointResume stops a full audit half way (a hook error) and
// checks that the next run resumes at the last checkpoint, auditing the
// records after it again without taking their keys for duplicates.
func TestCheckpointResume(t *testing.T) {
	tl := newTestLog(t, "", 2000, testRecord)
	state := t.TempDir()
	stop := errors.New("stop")
	_, err := audit(t, tl.srv.URL, tl.vkey, func(o *Options) {
		o.StateDir, o.Full, o.checkpointTiles = state, true, 2
		o.RecordHook = func(_ context.Context, id int64, _ gosum.Record) (*Problem, error) {
			if id == 1300 {
				return nil, stop
			}
			return nil, nil
		}
	})
	if !errors.Is(err, stop) {
		t.Fatalf("first run: %v, want the hook's error", err)
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	rep := mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) {
		o.StateDir, o.Full = state, true
		o.RecordHook = func(_ context.Context, id int64, _ gosum.Record) (*Problem, error) {
			mu.Lock()
			defer mu.Unlock()
			seen[id]++
			return nil, nil
		}
	})
	wantOK(t, rep, allChecks...)
	// Checkpoints fall every 2 tiles (512 records): 1024 is the last one
	// before record 1300.
	if rep.RecordsFrom != 1024 || rep.RecordsAudited != 2000-1024 {
		t.Errorf("resumed at %d for %d records, want 1024 for 976", rep.RecordsFrom, rep.RecordsAudited)
	}
	for id := int64(1024); id < 2000; id++ {
		if seen[id] != 1 {
			t.Fatalf("hook ran %d times on record %d, want once", seen[id], id)
		}
	}
}

// TestRecordHook checks that a hook's problem is reported and stops
// checkpoints, so the next run finds it again.
func TestRecordHook(t *testing.T) {
	tl := newTestLog(t, "", 1000, testRecord)
	state := t.TempDir()
	hook := func(o *Options) {
		o.StateDir, o.Full = state, true
		o.RecordHook = func(_ context.Context, id int64, rec gosum.Record) (*Problem, error) {
			if id == 700 {
				return &Problem{Kind: "recheck", Record: recordID(id), Message: rec.Key() + " differs upstream"}, nil
			}
			return nil, nil
		}
	}
	for range 2 {
		rep := mustAudit(t, tl.srv.URL, tl.vkey, hook)
		wantProblem(t, rep, "recheck", testRecord(700).Key()+" differs upstream")
		if rep.RecordsFrom != 0 {
			t.Errorf("run started at record %d; a range with a problem must be audited again", rep.RecordsFrom)
		}
	}
}

// TestStateDirectory checks the layout: one directory per database, a
// head that does not verify is refused, and two runs cannot share a state.
func TestStateDirectory(t *testing.T) {
	a := newTestLog(t, "", 10, testRecord)
	state := t.TempDir()
	mustAudit(t, a.srv.URL, a.vkey, func(o *Options) { o.StateDir = state })
	for _, f := range []string{latestFile, auditFile} {
		if _, err := os.Stat(filepath.Join(state, testName, f)); err != nil {
			t.Errorf("state lacks %s: %v", f, err)
		}
	}

	// A saved head signed by a key this state never verified with (another
	// log of the same name) is refused, not trusted.
	b := newTestLog(t, "", 10, testRecord)
	bHead, err := b.log.Signed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, testName, latestFile), bHead, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = audit(t, a.srv.URL, a.vkey, func(o *Options) { o.StateDir = state })
	if err == nil || !strings.Contains(err.Error(), "does not verify with the keys given or those that verified it before") ||
		!strings.Contains(err.Error(), "give that key as well, or move "+filepath.Join(state, testName)+" aside") {
		t.Errorf("audit with another key's saved head: %v, want a refusal saying what to do", err)
	}

	st, err := openState(state, testName)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if _, err := audit(t, a.srv.URL, a.vkey, func(o *Options) { o.StateDir = state }); !errors.Is(err, ErrStateInUse) {
		t.Errorf("audit while the state is open: %v, want ErrStateInUse", err)
	}
}

// TestStateName checks that a database name cannot escape the state
// directory and that a / in it becomes _.
func TestStateName(t *testing.T) {
	dir := t.TempDir()
	if _, err := openState(dir, ".."); err == nil {
		t.Error("openState(..) succeeded")
	}
	st, err := openState(dir, "corp.example/sumdb")
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	if _, err := os.Stat(filepath.Join(dir, "corp.example_sumdb", auditFile)); err != nil {
		t.Error(err)
	}
}

// TestSaveLatestSyncsDir checks that saving the head syncs the state
// directory after the rename: without it, a crash could leave the old
// name after saveLatest returned, and the next run would check against
// an older head than this run verified.
func TestSaveLatestSyncsDir(t *testing.T) {
	st, err := openState(t.TempDir(), testName)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	var synced []string
	defer func(orig func(string) error) { syncDir = orig }(syncDir)
	syncDir = func(dir string) error {
		if data, err := os.ReadFile(filepath.Join(dir, latestFile)); err != nil || string(data) != "head" {
			t.Errorf("directory synced before the rename: %q, %v", data, err)
		}
		synced = append(synced, dir)
		return nil
	}
	if err := st.saveLatest([]byte("head")); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 1 || synced[0] != st.dir {
		t.Errorf("synced %q, want the state directory %s once", synced, st.dir)
	}
}

// TestOpenStateSyncsNewDirs checks that the directories openState creates
// are made durable in their parents: saveLatest syncs the state directory
// alone, so without it a crash after a first run could lose the whole
// state (its saved head and checkpoint) though the run returned, and the
// next run would audit afresh with no head to detect a fork against.
func TestOpenStateSyncsNewDirs(t *testing.T) {
	root := t.TempDir()
	var synced []string
	defer func(orig func(string) error) { syncDir = orig }(syncDir)
	syncDir = func(dir string) error {
		synced = append(synced, dir)
		return nil
	}
	st, err := openState(filepath.Join(root, "state"), testName)
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	want := []string{root, filepath.Join(root, "state")}
	if !slices.Equal(synced, want) {
		t.Errorf("synced %q, want the parents of the new directories, %q", synced, want)
	}
	synced = nil
	if st, err = openState(filepath.Join(root, "state"), testName); err != nil {
		t.Fatal(err)
	}
	st.close()
	if len(synced) != 0 {
		t.Errorf("opening an existing state synced %q", synced)
	}
}
