//go:build linux

package tlog

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testenv"
)

// TestWritableOpenDropsCache runs a child that opens a store for writing
// under strace, and checks that it reads the file from the disk rather
// than from pages a failed sync may have left cached (writableOpenFile):
// on the database file, its exclusive flock, then fsync, then
// fadvise(0, 0, POSIX_FADV_DONTNEED), all before bbolt's first read and
// its mmap. Without the drop, or with it before the lock, it fails.
func TestWritableOpenDropsCache(t *testing.T) {
	strace := testenv.LookPath(t, "strace")
	dir := traceDir(t)
	db := filepath.Join(dir, "sumd.db")
	s, err := OpenBolt(db, BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	trace := filepath.Join(dir, "trace")
	cmd := exec.Command(strace, "-f", "-qq", "-y", "-o", trace, "-e", "signal=none",
		"-e", "trace=/^(flock|fsync|fadvise64(_64)?|pread64|mmap)$",
		os.Args[0], "-test.run=^TestDropCacheChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SUMD_DROPCACHE_DB="+db)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%.2000s", err, out)
	}
	calls := tracedCalls(t, trace, db)
	at := func(what string, re string, from int) int {
		t.Helper()
		i := slices.IndexFunc(calls[from:], regexp.MustCompile(re).MatchString)
		if i < 0 {
			t.Fatalf("no %s on %s in the child's trace:\n%s", what, db, strings.Join(calls, "\n"))
		}
		return from + i
	}
	lock := at("exclusive flock", `^flock\(\d+<[^>]*>, LOCK_EX\|LOCK_NB\) = 0$`, 0)
	sync := at("fsync", `^fsync\(\d+<[^>]*>\) = 0$`, 0)
	drop := at("fadvise DONTNEED of the whole file", `^fadvise64(_64)?\(\d+<[^>]*>, 0, 0, POSIX_FADV_DONTNEED\) = 0$`, 0)
	// openBolt's size check reads the file before bbolt opens it, unlocked:
	// the drop discards what it read too. What counts is bbolt's first
	// read after the lock.
	read := at("read or mmap", `^(pread64|mmap)\(`, lock)
	if !(lock < sync && sync < drop && drop < read) {
		t.Fatalf("on %s: flock at call %d, fsync %d, fadvise %d, first read or mmap %d; want them in that order:\n%s",
			db, lock, sync, drop, read, strings.Join(calls, "\n"))
	}
}

// tracedCalls returns the calls on file path of an strace -f -y trace, in
// the order they returned, as "name(args) = result".
func tracedCalls(t *testing.T, trace, path string) []string {
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unfinished := map[string]string{}
	var calls []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pid, line, _ := strings.Cut(sc.Text(), " ")
		line = strings.TrimLeft(line, " ")
		if m := traceResumed.FindStringSubmatch(sc.Text()); m != nil {
			line = unfinished[pid] + m[3]
			delete(unfinished, pid)
		} else if rest, ok := strings.CutSuffix(line, " <unfinished ...>"); ok {
			unfinished[pid] = rest
			continue
		}
		if strings.Contains(line, "<"+path+">") {
			calls = append(calls, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return calls
}

// TestDropCacheChild opens the store TestWritableOpenDropsCache names for
// writing, under strace.
func TestDropCacheChild(t *testing.T) {
	path := os.Getenv("SUMD_DROPCACHE_DB")
	if path == "" {
		t.Skip("run by TestWritableOpenDropsCache")
	}
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWritableOpenFollowsRename replaces the file at the path between the
// writer's open and its lock, as sumd restore does while a restarted sumd
// serve waits for the lock: the writer must end on the file now at the
// path, not on the one it opened first, which would have it sign heads on
// the tree the restore replaced.
func TestWritableOpenFollowsRename(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	db, other := filepath.Join(dir, "sumd.db"), filepath.Join(dir, "other.db")
	for path, name := range map[string]string{db: "old.example", other: "new.example"} {
		s, err := OpenBolt(path, BoltOptions{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		_, vk, err := GenerateKey(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, Meta{Name: name, VKeys: []string{vk}}, nil); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	renamed := false
	beforeLock = func(path string) {
		if !renamed {
			renamed = true
			if err := os.Rename(other, path); err != nil {
				t.Error(err)
			}
		}
	}
	defer func() { beforeLock = nil }()
	s, err := OpenBolt(db, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !renamed || st.Meta.Name != "new.example" {
		t.Errorf("renamed %v; the writer opened the log %q, want new.example, the file at %s once it held the lock", renamed, st.Meta.Name, db)
	}
}

// TestWritableOpenPathGone moves the database away (replacing it with
// nothing, as an operator's mv or a restore failing partway may) between
// the writer's open and its lock: the writer must not create a new, empty
// file at the path, with Create or without, since the path held a log when
// it opened it; a new log there would be a second log under the same key.
// It fails with an fs.ErrNotExist, as for a database that was never there.
func TestWritableOpenPathGone(t *testing.T) {
	for _, create := range []bool{false, true} {
		t.Run(fmt.Sprintf("create=%v", create), func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "sumd.db")
			s, err := OpenBolt(db, BoltOptions{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			_, vk, err := GenerateKey("old.example")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Create(t.Context(), Meta{Name: "old.example", VKeys: []string{vk}}, nil); err != nil {
				t.Fatal(err)
			}
			s.Close()
			moveAsideBeforeLock(t)
			s2, err := OpenBolt(db, BoltOptions{Create: create})
			if err == nil {
				s2.Close()
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("OpenBolt of a database moved away while it waited: %v, want an fs.ErrNotExist", err)
			}
			if _, serr := os.Stat(db); serr == nil {
				t.Errorf("OpenBolt (err %v) left a new file at %s, moved away while it waited for the lock", err, db)
			}
		})
	}
}

// TestOpenPathGoneLeavesNoFile: the same through Open without Create, as
// sumd serve opens its log: it is refused as missing, and leaves no empty
// file at the path, which would have the next start say the database
// holds no log instead of that it is missing.
func TestOpenPathGoneLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "sumd.db")
	k, _, err := GenerateKey("old.example")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseKey(k)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(db, Options{Keys: []*Key{key}, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	moveAsideBeforeLock(t)
	l2, err := Open(db, Options{Keys: []*Key{key}})
	if l2 != nil {
		l2.Close()
	}
	if errors.Is(err, ErrNoLog) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a database moved away while it waited: %v, want an fs.ErrNotExist other than ErrNoLog", err)
	}
	if fi, serr := os.Stat(db); serr == nil {
		t.Errorf("Open (err %v) left a file of %d bytes at %s", err, fi.Size(), db)
	}
}

// moveAsideBeforeLock has the next writable open move the file at its path
// away, to path.aside, between its first open and its lock.
func moveAsideBeforeLock(t *testing.T) {
	moved := false
	beforeLock = func(path string) {
		if !moved {
			moved = true
			if err := os.Rename(path, path+".aside"); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { beforeLock = nil })
}

// TestWritableOpenNoCreate: without create, the first open does not create
// a missing file either, though bbolt asks for O_CREATE: OpenBolt checks
// the path before it opens it, and the file may go in between.
func TestWritableOpenNoCreate(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sumd.db")
	f, err := writableOpenFile(time.Second, false)(db, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		f.Close()
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open without create of a missing file: %v, want an fs.ErrNotExist", err)
	}
	if _, serr := os.Stat(db); serr == nil {
		t.Errorf("open without create (err %v) created %s", err, db)
	}
}
