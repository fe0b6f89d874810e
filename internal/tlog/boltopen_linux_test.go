//go:build linux

package tlog

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

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
	dir := t.TempDir()
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
