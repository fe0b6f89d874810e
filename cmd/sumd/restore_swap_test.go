package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testenv"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestSwapInWaitingWriter: a writer (sumd serve restarted by a supervisor)
// that opened -db while restore held it gets the lock once swapIn lets it
// go, and must end on the restored database, not on the previous one now
// kept as .before-restore-*, where it would sign heads on the tree the
// restore replaced.
func TestSwapInWaitingWriter(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, restored := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "sumd.db.restore.tmp")
	for path, name := range map[string]string{db: "old.example", restored: "new.example"} {
		s, err := itlog.OpenBolt(path, itlog.BoltOptions{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		_, vk, err := itlog.GenerateKey(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, itlog.Meta{Name: name, VKeys: []string{vk}}, nil); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	old, err := itlog.OpenBolt(db, itlog.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	opened := openFiles(t, db)
	got, ended := make(chan string, 1), make(chan struct{})
	go func() {
		defer close(ended)
		s, err := itlog.OpenBolt(db, itlog.BoltOptions{LockTimeout: 10 * time.Second})
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		defer s.Close()
		st, err := s.Load(ctx)
		if err != nil {
			got <- "load error: " + err.Error()
			return
		}
		got <- st.Meta.Name
	}()
	// Opened, the writer waits for the lock old's shared one keeps from it.
	waitOpened(t, db, opened, ended)
	kept, err := swapIn(db, restored, old)
	if err != nil {
		t.Fatal(err)
	}
	if name := <-got; name != "new.example" {
		t.Errorf("the writer waiting on %s holds %q, want the restored new.example (the previous database is now %s)",
			filepath.Base(db), name, filepath.Base(kept))
	}
}

// TestSwapInHoldsLock: swapIn lets go of the previous database only once
// the restored one is at the path, so that whatever waited for its lock
// opens the restored database; released before the renames, a writer
// waiting on it could take it while it is still at the path.
func TestSwapInHoldsLock(t *testing.T) {
	dir := t.TempDir()
	db, restored := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "sumd.db.restore.tmp")
	for _, path := range []string{db, restored} {
		if err := os.WriteFile(path, []byte(path), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.Stat(restored)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	old := closerFunc(func() error {
		closed = true
		if fi, err := os.Stat(db); err != nil || !os.SameFile(fi, want) {
			t.Errorf("the previous database was released while %s was not yet the restored one (stat: %v)", filepath.Base(db), err)
		}
		return nil
	})
	if _, err := swapIn(db, restored, old); err != nil {
		t.Fatal(err)
	}
	if !closed {
		t.Error("swapIn did not release the previous database")
	}
}

// openFiles returns how many of this process's file descriptors are open
// on the file at path.
func openFiles(t *testing.T, path string) int {
	t.Helper()
	want, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	testenv.Need(t, "/proc/self/fd (Linux) to see which files are open", err)
	n := 0
	for _, fd := range fds {
		// Stat follows the link to the open file, even one since renamed
		// or removed.
		if fi, err := os.Stat(filepath.Join("/proc/self/fd", fd.Name())); err == nil && os.SameFile(fi, want) {
			n++
		}
	}
	return n
}

// waitOpened waits until this process has more than n file descriptors
// open on the file at path: a writer started in a goroutine has opened
// it, and then waits for its lock if another holds it. It fails the test
// if ended is closed first (the writer returned without opening it) or
// after a minute, a hang rather than a slow machine.
func waitOpened(t *testing.T, path string, n int, ended <-chan struct{}) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); openFiles(t, path) <= n; {
		select {
		case <-ended:
			t.Fatalf("the writer returned without opening %s", filepath.Base(path))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the writer did not open %s within a minute", filepath.Base(path))
		}
		time.Sleep(time.Millisecond)
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// TestSwapInNoGap: a database is at the path at every step of swapIn: in
// a moment with none, a sumd serve started then (with -create left on)
// would make a new, empty log there, signed with the log's key, and keep
// serving it once the restored one replaced it.
func TestSwapInNoGap(t *testing.T) {
	dir := t.TempDir()
	db, restored := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "sumd.db.restore.tmp")
	for _, path := range []string{db, restored} {
		if err := os.WriteFile(path, []byte(path), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	steps := 0
	swapStep = func() {
		steps++
		if _, err := os.Stat(db); err != nil {
			t.Errorf("between the steps of swapIn: %v", err)
		}
	}
	defer func() { swapStep = nil }()
	kept, err := swapIn(db, restored, closerFunc(func() error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if steps == 0 {
		t.Error("swapIn never ran swapStep")
	}
	for path, want := range map[string]string{db: restored, kept: db} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s holds %q (%v), want %q", filepath.Base(path), b, err, want)
		}
	}
	if _, err := os.Stat(restored); err == nil {
		t.Errorf("%s is still there", filepath.Base(restored))
	}
}

// TestSwapInRefusesNewArrival: a restore where there was no database
// leaves alone one that appeared at the path meanwhile (a sumd serve
// -create its supervisor started holds it, and would go on signing the
// log it made once replaced), and says so.
func TestSwapInRefusesNewArrival(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, restored := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "sumd.db.restore.tmp")
	if err := os.WriteFile(restored, []byte("restored"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := itlog.OpenBolt(db, itlog.BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, vk, err := itlog.GenerateKey("new.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, itlog.Meta{Name: "new.example", VKeys: []string{vk}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := swapIn(db, restored, nil); err == nil || !strings.Contains(err.Error(), "appeared during the restore") {
		t.Errorf("swapIn over a database that appeared during the restore: %v, want a refusal", err)
	}
	if b, err := os.ReadFile(restored); err != nil || string(b) != "restored" {
		t.Errorf("the restored database: %q, %v; want it kept", b, err)
	}
}

// TestSwapInWithoutHardLinks: on a file system without hard links, swapIn
// falls back to renames (with the moment of nothing at the path that
// links avoid) rather than failing every restore.
func TestSwapInWithoutHardLinks(t *testing.T) {
	link = func(string, string) error { return &os.LinkError{Op: "link", Err: syscall.EPERM} }
	defer func() { link = os.Link }()
	for _, withOld := range []bool{true, false} {
		dir := t.TempDir()
		db, restored := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "sumd.db.restore.tmp")
		if err := os.WriteFile(restored, []byte("restored"), 0o644); err != nil {
			t.Fatal(err)
		}
		var old io.Closer
		if withOld {
			if err := os.WriteFile(db, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			old = closerFunc(func() error { return nil })
		}
		kept, err := swapIn(db, restored, old)
		if err != nil {
			t.Fatalf("swapIn (a previous database: %v): %v", withOld, err)
		}
		if b, _ := os.ReadFile(db); string(b) != "restored" {
			t.Errorf("swapIn (a previous database: %v): %s holds %q, want the restored one", withOld, filepath.Base(db), b)
		}
		if b, _ := os.ReadFile(kept); withOld && string(b) != "old" {
			t.Errorf("the previous database kept as %s holds %q", kept, b)
		}
	}
}
