package tlog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/testenv"
)

// TestSlowSync runs a child appending through bbolt under strace, with
// every fdatasync delayed by 30ms, while a reader loops on Signed: it must
// never see a head whose commit has not returned. The same reader also
// loads the head straight from the store, which does show heads early
// (bbolt writes the meta page before its fdatasync, PROTOCOL.md §6): that
// is the window the publish stage closes, and proves the test can fail.
func TestSlowSync(t *testing.T) {
	strace := testenv.LookPath(t, "strace")
	db := filepath.Join(t.TempDir(), "sumd.db")
	skey, _, err := GenerateKey("slow.example.com")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(strace, "-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync",
		"-e", "inject=fdatasync:delay_enter=30000", os.Args[0], "-test.run=^TestSlowSyncChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SUMD_SLOW_DB="+db, "SUMD_SLOW_KEY="+skey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var early, storeEarly, reads int
	if _, err := fmt.Sscanf(resultLine(out), "early %d store-early %d reads %d", &early, &storeEarly, &reads); err != nil {
		t.Fatalf("child printed %q: %v", out, err)
	}
	t.Logf("%d reads; the store showed a head before its commit returned %d times", reads, storeEarly)
	if early > 0 {
		t.Errorf("Signed showed a head before its commit returned, %d times", early)
	}
	if storeEarly == 0 {
		t.Errorf("the store never showed a head early: the delay did not open the window, and the test proves nothing")
	}
}

// resultLine returns the child's line of counts.
func resultLine(out []byte) string {
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "early ") {
			return line
		}
	}
	return ""
}

// TestSlowSyncChild is the appender TestSlowSync runs under strace.
func TestSlowSyncChild(t *testing.T) {
	path := os.Getenv("SUMD_SLOW_DB")
	if path == "" {
		t.Skip("run by TestSlowSync")
	}
	ctx := context.Background()
	k, err := ParseKey(os.Getenv("SUMD_SLOW_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := OpenBolt(path, BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	var committed atomic.Int64 // the largest tree whose commit returned
	bs.afterCommit = func(b *Batch) error { committed.Store(b.Tree.N); return nil }
	l, err := OpenStore(bs, Options{Keys: []*Key{k}, Create: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	size := func(head []byte) int64 {
		text, _, _ := bytes.Cut(head, []byte("\n\n"))
		tree, err := tlog.ParseTree(append(text[:len(text):len(text)], '\n')) // text is the published head's memory
		if err != nil {
			panic(err)
		}
		return tree.N
	}
	var early, storeEarly, reads int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Read, then ask what has committed: commits only grow, so a
			// head read is early only if it is beyond even the later count.
			head, _ := l.Signed(ctx)
			st, _ := bs.Load(ctx)
			done := committed.Load()
			if size(head) > done {
				early++
			}
			if size(st.Head) > done {
				storeEarly++
			}
			reads++
		}
	})
	for i := range 20 {
		if _, err := l.Add(ctx, record(i, 8), record(i, 9)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	l.Close()
	fmt.Printf("early %d store-early %d reads %d\n", early, storeEarly, reads)
}
