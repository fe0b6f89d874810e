package tlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sumd-project/sumd/internal/testenv"
)

// TestLowDisk: with less free space than the floor plus a write, the store
// refuses the write before bbolt sees it. The error is a not-persisted
// one, so the log does not stop; the file is not touched; and once there
// is room the next write extends the same tree.
func TestLowDisk(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sumd.db")
	k := testKey(t, "sum.example.com")
	l := openTest(t, path, k, VerifyTail)
	defer l.Close()
	if _, err := l.Add(ctx, record(0, 0)); err != nil {
		t.Fatal(err)
	}
	s := l.store.(*BoltStore)
	if s.minFree != DefaultMinFree {
		t.Fatalf("default floor %d, want DefaultMinFree", s.minFree)
	}
	var free atomic.Int64
	s.free = func(p string) (int64, bool) {
		if p != path {
			t.Errorf("free space asked of %s, want the database file %s", p, path)
		}
		return free.Load(), true
	}
	headBefore, _ := l.Signed(ctx)
	fileBefore, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// Enough for the floor, not for the floor and the write.
	free.Store(DefaultMinFree + 100)
	_, err = l.Add(ctx, record(1, 0))
	var low *LowDiskError
	if !errors.As(err, &low) || !errors.Is(err, ErrLowDisk) || !errors.Is(err, ErrNotPersisted) {
		t.Fatalf("Add on a full disk = %v, want a *LowDiskError that is ErrLowDisk and ErrNotPersisted", err)
	}
	if low.Free != DefaultMinFree+100 || low.Floor != DefaultMinFree || low.Need <= 100 || low.Path != path {
		t.Errorf("LowDiskError = %+v", low)
	}
	if msg := err.Error(); !strings.Contains(msg, filepath.Dir(path)) || !strings.Contains(msg, "64 MiB") || !strings.Contains(msg, "nothing was stored") {
		t.Errorf("error text %q lacks the directory, the floor or the outcome", msg)
	}
	// The log holds record 0, as the database of a sumd add -gosum or a
	// mirror round holds the chunks and steps committed before the one
	// refused: the hint, which sumd prints, must not say nothing was.
	if hint := low.Hint(); strings.Contains(hint, "nothing was recorded") || !strings.Contains(hint, "what was recorded before it is kept") {
		t.Errorf("hint %q: want it to say the refused write stored nothing and what was recorded before it is kept", hint)
	}
	if l.Err() != nil {
		t.Fatalf("the log stopped on a refused write: %v", l.Err())
	}
	if head, _ := l.Signed(ctx); string(head) != string(headBefore) {
		t.Fatal("signed head changed by a refused write")
	}
	if fileAfter, _ := os.ReadFile(path); string(fileAfter) != string(fileBefore) {
		t.Fatal("a refused write changed the database file")
	}
	free.Store(DefaultMinFree - 1)
	if err := s.SetAux(ctx, "k", []byte("v")); !errors.Is(err, ErrLowDisk) {
		t.Errorf("SetAux on a full disk = %v, want ErrLowDisk", err)
	}

	free.Store(math.MaxInt64)
	ids, err := l.Add(ctx, record(1, 0))
	if err != nil || ids[0] != 1 {
		t.Fatalf("Add once there is room = %v, %v; want id 1", ids, err)
	}

	// A negative floor turns the check off, whatever the disk says.
	s.minFree = -1
	free.Store(0)
	if _, err := l.Add(ctx, record(2, 0)); err != nil {
		t.Fatalf("Add with no floor on a full disk = %v", err)
	}
}

// TestLowDiskRealFileSystem: the floor is checked against the file
// system's own figure (statfs): a floor above any disk refuses creating a
// log, leaving no file, and a floor below lets it be created.
func TestLowDiskRealFileSystem(t *testing.T) {
	dir := t.TempDir()
	free, ok := FreeSpace(filepath.Join(dir, "sumd.db"))
	var err error
	if !ok || free <= 0 {
		err = fmt.Errorf("the file system of %s does not report free space", dir)
	}
	testenv.Need(t, "a file system that reports its free space (statfs)", err)
	k := testKey(t, "sum.example.com")
	path := filepath.Join(dir, "sumd.db")
	_, err = Open(path, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger(), MinFree: 1 << 62})
	var low *LowDiskError
	if !errors.As(err, &low) || low.Free <= 0 || low.Free > free+(1<<30) {
		t.Fatalf("Open with a floor of 4 EiB = %v, want a *LowDiskError with the disk's free space (about %d)", err, free)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after a refused create the file it made is there (%v), want it removed", err)
	}
	l, err := Open(path, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger(), MinFree: 1 << 20})
	if err != nil {
		t.Fatalf("Open with a floor of 1 MiB: %v", err)
	}
	l.Close()
}
