package tlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testenv"
)

// This file only uses the log's public API (Open, Add, Signed, Lookup,
// ReadRecords, HashReader), so that it runs against any version of the
// package: it fails on the tlog before the publish stage.

// faultSyscalls are the system calls through which the log's bbolt store
// writes and syncs its file. bbolt never renames; the count says so.
var faultSyscalls = []string{"pwrite64", "fdatasync", "fsync", "rename", "renameat", "renameat2"}

// TestFaultInjection, modelled on Tessera's integration/fault/posix test,
// runs a child process appending through the real bbolt store under strace,
// failing the K-th call of one of faultSyscalls with EIO, for early,
// middle and late K. After each run it checks two files: the one left on
// disk (the page cache kept every write), and the one a power loss would
// leave — every write not followed by a successful sync lost, as Linux
// drops the dirty pages of a failed fsync. Each must open and fully verify,
// hold every record the child saw acknowledged, and extend every head the
// child's reader goroutine saw from Signed.
func TestFaultInjection(t *testing.T) {
	testenv.SkipShort(t, "runs a child under strace a few dozen times")
	strace := testenv.LookPath(t, "strace")
	dir := traceDir(t)
	skey, _, err := GenerateKey("fault.example.com")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ParseKey(skey)
	base := filepath.Join(dir, "base.db")
	l, err := Open(base, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var recs []gosum.Record
	for i := range 300 {
		recs = append(recs, record(i, 6))
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	l.Close()

	counts := countSyscalls(t, strace, dir, base, skey)
	// The store writes and syncs through these: a trace without them was
	// not read (a path strace prints otherwise, a format it changed), and
	// every fault below would be skipped.
	for _, sc := range []string{"pwrite64", "fdatasync"} {
		if counts[sc] == 0 {
			t.Fatalf("no %s call on the database in the child's trace (calls per thread: %v): the test would prove nothing", sc, counts)
		}
	}
	const samples = 6
	start := time.Now()
	runs := 0
	injected := map[string]int{} // runs that failed a call, by system call
	for _, sc := range faultSyscalls {
		for _, n := range sampleCalls(counts[sc], samples) {
			runs++
			t.Run(fmt.Sprintf("%s#%d", sc, n), func(t *testing.T) {
				r := straceRun(t, strace, dir, base, skey, fmt.Sprintf("%s:error=EIO:when=%d", sc, n))
				if !r.injected {
					t.Logf("no %s call #%d in this run", sc, n)
				} else {
					injected[sc]++
				}
				r.check(t, r.file, k, "the file as left")
				r.check(t, r.durable, k, "the file after a power loss")
			})
		}
	}
	t.Logf("calls per thread: %v; %d runs in %v, failing a call in %v", counts, runs, time.Since(start).Round(time.Millisecond), injected)
	for _, sc := range []string{"pwrite64", "fdatasync"} {
		if injected[sc] == 0 {
			t.Errorf("no run failed a %s call (strace's inject did nothing): the test proved nothing of %s", sc, sc)
		}
	}
}

// traceDir returns t.TempDir() with its symbolic links resolved: strace -y
// prints the paths of a process's files so (as with TMPDIR=/tmp/link, or
// macOS's /var), and the trace's calls are found by their file's path.
func traceDir(t *testing.T) string {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// sampleCalls picks the call numbers to fail among 1..n: all of them if
// there are few, else the first and last few and evenly spaced ones.
func sampleCalls(n, samples int) []int {
	if n <= 3*samples {
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out
	}
	var out []int
	for i := range samples {
		out = append(out, 1+i, n-i, 1+(i+1)*n/(samples+1))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// childCommand returns the command that runs TestFaultChild on a copy of
// base under strace with the given extra arguments.
func childCommand(t *testing.T, strace, db, skey, trace string, args ...string) *exec.Cmd {
	argv := append([]string{"-f", "-qq", "-o", trace, "-s", "1048576", "-xx", "-y", "-e", "signal=none",
		"-e", "trace=" + strings.Join(append([]string{"ftruncate"}, faultSyscalls...), ",")}, args...)
	argv = append(argv, os.Args[0], "-test.run=^TestFaultChild$", "-test.count=1")
	cmd := exec.Command(strace, argv...)
	cmd.Env = append(os.Environ(), "SUMD_FAULT_DB="+db, "SUMD_FAULT_KEY="+skey)
	return cmd
}

func copyFile(t *testing.T, from, to string) {
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// countSyscalls runs the child once without faults and returns, for each
// of faultSyscalls, the most calls one thread made: strace counts the
// calls for when=K per syscall and per thread.
func countSyscalls(t *testing.T, strace, dir, base, skey string) map[string]int {
	db, trace := filepath.Join(dir, "count.db"), filepath.Join(dir, "count.trace")
	copyFile(t, base, db)
	cmd := childCommand(t, strace, db, skey, trace)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child without faults: %v\n%.2000s", err, out)
	}
	perThread := map[string]map[int]int{}
	for _, c := range parseTrace(t, trace, db) {
		if perThread[c.name] == nil {
			perThread[c.name] = map[int]int{}
		}
		perThread[c.name][c.pid]++
	}
	counts := map[string]int{}
	for name, threads := range perThread {
		for _, n := range threads {
			counts[name] = max(counts[name], n)
		}
	}
	return counts
}

// A faultResult is what one run left: the child's acknowledged records and
// observed heads, and the two files to check.
type faultResult struct {
	acked    map[string]ack // by module version
	heads    []tlog.Tree
	file     string // the database as the child left it
	durable  string // the database a power loss would have left
	injected bool
}

func straceRun(t *testing.T, strace, dir, base, skey, inject string) *faultResult {
	name := strings.NewReplacer(":", "_", "=", "_").Replace(inject)
	db, trace := filepath.Join(dir, name+".db"), filepath.Join(dir, name+".trace")
	copyFile(t, base, db)
	cmd := childCommand(t, strace, db, skey, trace, "-e", "inject="+inject)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && !strings.Contains(stderr.String(), "child:") {
		t.Fatalf("child: %v\n%.2000s", err, stderr.String())
	}
	r := &faultResult{acked: map[string]ack{}, file: db, durable: filepath.Join(dir, name+".durable.db")}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		switch f[0] {
		case "ack":
			id, _ := strconv.ParseInt(f[1], 10, 64)
			text, _ := strconv.Unquote(f[2])
			rec, err := gosum.Parse([]byte(text))
			if err != nil {
				t.Fatalf("child acknowledged a malformed record: %v", err)
			}
			r.acked[rec.Key()] = ack{id, text}
		case "head":
			n, _ := strconv.ParseInt(f[1], 10, 64)
			h, _ := tlog.ParseHash(f[2])
			r.heads = append(r.heads, tlog.Tree{N: n, Hash: h})
		}
	}
	calls := parseTrace(t, trace, db)
	r.injected = slices.ContainsFunc(calls, func(c syscallEvent) bool { return c.injected })
	r.writeDurable(t, base, calls)
	return r
}

// writeDurable replays the run's writes on base: a successful sync makes
// the writes before it durable; a failed one loses those not yet synced,
// and so does the end of the run.
func (r *faultResult) writeDurable(t *testing.T, base string, calls []syscallEvent) {
	file, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	type undo struct {
		off  int64
		old  []byte
		size int
	}
	var pending []undo
	revert := func() {
		for _, u := range slices.Backward(pending) {
			copy(file[u.off:], u.old)
			file = file[:u.size]
		}
		pending = nil
	}
	for _, c := range calls {
		switch {
		case c.name == "ftruncate" && c.ret == 0:
			file = append(file, make([]byte, max(0, int(c.off)-len(file)))...)[:c.off]
		case c.name == "pwrite64" && c.ret == int64(len(c.data)):
			size := len(file)
			end := int(c.off) + len(c.data)
			if end > len(file) {
				file = append(file, make([]byte, end-len(file))...)
			}
			pending = append(pending, undo{c.off, bytes.Clone(file[c.off:end]), size})
			copy(file[c.off:], c.data)
		case (c.name == "fdatasync" || c.name == "fsync") && c.ret == 0:
			pending = nil
		case c.name == "fdatasync" || c.name == "fsync":
			revert()
		}
	}
	revert()
	if err := os.WriteFile(r.durable, file, 0o600); err != nil {
		t.Fatal(err)
	}
}

// check opens db and checks every invariant against what the child saw.
func (r *faultResult) check(t *testing.T, db string, k *Key, what string) {
	t.Helper()
	ctx := context.Background()
	l, err := Open(db, Options{Keys: []*Key{k}, Verify: VerifyFull, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("%s does not open: %v", what, err)
	}
	defer l.Close()
	tree, _ := l.Tree(ctx)
	for key, a := range r.acked {
		path, version, _ := strings.Cut(key, "@")
		id, err := l.Lookup(ctx, module.Version{Path: path, Version: version})
		if err != nil || id != a.id {
			t.Fatalf("%s: acknowledged record %s (id %d) lost: id %d, %v", what, key, a.id, id, err)
		}
		if text, err := l.ReadRecords(ctx, id, 1); err != nil || string(text[0]) != a.text {
			t.Fatalf("%s: acknowledged record %d changed: %q, %v", what, id, text, err)
		}
	}
	for _, old := range r.heads {
		if old.N > tree.N {
			t.Fatalf("%s: tree %d is smaller than the head %d a reader saw", what, tree.N, old.N)
		}
		p, err := tlog.ProveTree(tree.N, old.N, l.HashReader())
		if err == nil {
			err = tlog.CheckTree(p, tree.N, tree.Hash, old.N, old.Hash)
		}
		if err != nil {
			t.Fatalf("%s: tree %d does not extend the head %d a reader saw: %v", what, tree.N, old.N, err)
		}
	}
}

// A syscallEvent is one traced call on the database file.
type syscallEvent struct {
	pid      int
	name     string
	off      int64  // pwrite64's offset, ftruncate's length
	data     []byte // pwrite64's data
	ret      int64
	injected bool
}

var (
	traceStart   = regexp.MustCompile(`^(\d+) +(\w+)\((.*)$`)
	traceResumed = regexp.MustCompile(`^(\d+) +<\.\.\. (\w+) resumed>(.*)$`)
	traceResult  = regexp.MustCompile(`\) += (-?\d+)( [A-Z]+ \([^)]*\))?( \(INJECTED\))?$`)
)

// parseTrace reads the calls strace -f -y -xx recorded on file db.
func parseTrace(t *testing.T, trace, db string) []syscallEvent {
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// -xx escapes the path strace -y prints, too.
	path := "<" + strings.ReplaceAll(fmt.Sprintf("% x", db), " ", "") + ">"
	path = "<" + regexp.MustCompile("(..)").ReplaceAllString(path[1:len(path)-1], `\x$1`) + ">"
	unfinished := map[int]string{} // pid -> call text before "<unfinished ...>"
	var calls []syscallEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var pid int
		var name, text string
		if m := traceResumed.FindStringSubmatch(line); m != nil {
			pid, _ = strconv.Atoi(m[1])
			name, text = m[2], unfinished[pid]+m[3]
			delete(unfinished, pid)
		} else if m := traceStart.FindStringSubmatch(line); m != nil {
			pid, _ = strconv.Atoi(m[1])
			name, text = m[2], m[3]
			if rest, ok := strings.CutSuffix(text, " <unfinished ...>"); ok {
				unfinished[pid] = rest
				continue
			}
		} else {
			continue
		}
		if !strings.Contains(text, path) {
			continue
		}
		calls = append(calls, parseCall(t, pid, name, text))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return calls
}

// parseCall parses the arguments and result of one call on the database.
func parseCall(t *testing.T, pid int, name, text string) syscallEvent {
	c := syscallEvent{pid: pid, name: name}
	m := traceResult.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("cannot parse the result of %s(%s", name, text)
	}
	c.ret, _ = strconv.ParseInt(m[1], 10, 64)
	c.injected = m[3] != ""
	args := text[:len(text)-len(m[0])]
	switch name {
	case "pwrite64": // fd</path>, "\x..", count, offset
		q1 := strings.IndexByte(args, '"')
		q2 := strings.LastIndexByte(args, '"')
		if q1 < 0 || q2 <= q1 || strings.HasPrefix(args[q2+1:], "...") {
			t.Fatalf("pwrite64 data missing or truncated: %.200s", args)
		}
		data, err := hex.DecodeString(strings.ReplaceAll(args[q1+1:q2], `\x`, ""))
		if err != nil {
			t.Fatalf("pwrite64 data: %v", err)
		}
		c.data = data
		f := strings.Split(args[q2+1:], ", ")
		c.off, _ = strconv.ParseInt(f[len(f)-1], 10, 64)
	case "ftruncate": // fd</path>, length
		f := strings.Split(args, ", ")
		c.off, _ = strconv.ParseInt(f[len(f)-1], 10, 64)
	}
	return c
}

// TestFaultChild is the appender TestFaultInjection runs under strace. It
// adds records from one goroutine (so that the sequence of writes is the
// same in every run) while another reads Signed, and prints what it saw:
// "ack ID TEXT" for each acknowledged record and "head N HASH" for each new
// head read.
func TestFaultChild(t *testing.T) {
	path := os.Getenv("SUMD_FAULT_DB")
	if path == "" {
		t.Skip("run by TestFaultInjection")
	}
	k, err := ParseKey(os.Getenv("SUMD_FAULT_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{Keys: []*Key{k}, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	var mu sync.Mutex // one line at a time on stdout
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var last []byte
		for {
			select {
			case <-stop:
				return
			default:
			}
			head, err := l.Signed(context.Background())
			if err != nil || bytes.Equal(head, last) {
				continue
			}
			last = head
			text, _, _ := bytes.Cut(head, []byte("\n\n"))
			tree, err := tlog.ParseTree(append(text[:len(text):len(text)], '\n')) // text is the published head's memory
			if err != nil {
				panic(err)
			}
			mu.Lock()
			fmt.Printf("head %d %s\n", tree.N, tree.Hash)
			mu.Unlock()
		}
	})
	for i := range 40 {
		batch := make([]gosum.Record, 1+i%4)
		for j := range batch {
			batch[j] = record(10_000+i*10+j, 7)
		}
		for range 3 { // a failed Add is retried, as callers do
			ids, err := l.Add(context.Background(), batch...)
			if err != nil {
				fmt.Fprintln(os.Stderr, "child: Add:", err)
				continue
			}
			mu.Lock()
			for j, r := range batch {
				fmt.Printf("ack %d %q\n", ids[j], r.Text())
			}
			mu.Unlock()
			break
		}
	}
	close(stop)
	wg.Wait()
	l.Close()
}
