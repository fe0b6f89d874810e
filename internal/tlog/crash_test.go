package tlog

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/testenv"
)

var crashKills = flag.Int("crash.kills", 25, "number of SIGKILLs in TestCrash")

// TestCrash appends from a child process and kills it with SIGKILL at
// random moments. After each kill the database must open and fully
// re-verify, its signed head must be consistent with every head seen
// before, and every record the child saw acknowledged must be there.
func TestCrash(t *testing.T) {
	testenv.SkipShort(t, "kills a child process many times")
	dir := t.TempDir()
	path := filepath.Join(dir, "sumd.db")
	skey, _, err := GenerateKey("crash.example.com")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ParseKey(skey)
	acked := map[string]ack{}
	var heads []tlog.Tree
	rng := rand.New(rand.NewPCG(3, 4))
	for run := range *crashKills {
		heads = append(heads, runAndKill(t, path, skey, run, rng, acked)...)
		tree := checkAfterCrash(t, path, k, acked, heads)
		heads = append(heads, tree)
	}
	t.Logf("%d kills, %d acknowledged records, %d heads checked", *crashKills, len(acked), len(heads))
}

// ack is a record the child reported as acknowledged.
type ack struct {
	id   int64
	text string
}

// runAndKill starts a child appender, lets it run until it has acknowledged
// something and a random time more, kills it, and collects its output.
func runAndKill(t *testing.T, path, skey string, run int, rng *rand.Rand, acked map[string]ack) []tlog.Tree {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), "SUMD_CRASH_DB="+path, "SUMD_CRASH_KEY="+skey, "SUMD_CRASH_RUN="+strconv.Itoa(run))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var heads []tlog.Tree
	first := make(chan struct{})
	var once sync.Once
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), " ", 3)
			switch f[0] {
			case "ack":
				id, _ := strconv.ParseInt(f[1], 10, 64)
				text, _ := strconv.Unquote(f[2])
				r, err := gosum.Parse([]byte(text))
				if err != nil {
					t.Errorf("child acknowledged malformed record: %v", err)
					continue
				}
				acked[r.Key()] = ack{id, text}
				once.Do(func() { close(first) })
			case "head":
				n, _ := strconv.ParseInt(f[1], 10, 64)
				h, _ := tlog.ParseHash(f[2])
				heads = append(heads, tlog.Tree{N: n, Hash: h})
			}
		}
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("child acknowledged nothing in 30s")
	}
	time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	<-readDone
	cmd.Wait()
	return heads
}

// checkAfterCrash opens the database after a kill and checks every
// invariant, returning the signed tree it found.
func checkAfterCrash(t *testing.T, path string, k *Key, acked map[string]ack, heads []tlog.Tree) tlog.Tree {
	t.Helper()
	l, err := Open(path, Options{Keys: []*Key{k}, Verify: VerifyFull, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("database does not open after SIGKILL: %v", err)
	}
	defer l.Close()
	ctx := context.Background()
	tree, err := l.Tree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for key, a := range acked {
		path, version, _ := strings.Cut(key, "@")
		id, err := l.Lookup(ctx, module.Version{Path: path, Version: version})
		if err != nil || id != a.id {
			t.Fatalf("acknowledged record %s (id %d) lost after SIGKILL: id %d, %v", key, a.id, id, err)
		}
		text, err := l.ReadRecords(ctx, id, 1)
		if err != nil || string(text[0]) != a.text {
			t.Fatalf("acknowledged record %d changed: %q, %v", id, text, err)
		}
	}
	for _, old := range heads {
		if old.N > tree.N {
			t.Fatalf("signed tree shrank from %d to %d", old.N, tree.N)
		}
		p, err := tlog.ProveTree(tree.N, old.N, l.HashReader())
		if err == nil {
			err = tlog.CheckTree(p, tree.N, tree.Hash, old.N, old.Hash)
		}
		if err != nil {
			t.Fatalf("tree %d is not consistent with earlier head %d: %v", tree.N, old.N, err)
		}
	}
	return tree
}

// TestCrashChild is the appender TestCrash kills. It runs only as that child.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("SUMD_CRASH_DB")
	if path == "" {
		t.Skip("run by TestCrash")
	}
	k, err := ParseKey(os.Getenv("SUMD_CRASH_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{Keys: []*Key{k}, Create: true, MaxBatch: 64, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	run := os.Getenv("SUMD_CRASH_RUN")
	var mu sync.Mutex // one line at a time on stdout
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				batch := make([]gosum.Record, 1+i%7)
				for j := range batch {
					batch[j] = record(w*1_000_000+i*10+j, 100+mustAtoi(run))
				}
				ids, err := l.Add(context.Background(), batch...)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(1)
				}
				tree, _ := l.Tree(context.Background())
				mu.Lock()
				for j, r := range batch {
					fmt.Printf("ack %d %q\n", ids[j], r.Text())
				}
				fmt.Printf("head %d %s\n", tree.N, tree.Hash)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func mustAtoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}
