package tlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.etcd.io/bbolt"
)

// damagedBase writes a log of n records and returns its file's bytes, the
// bbolt page size and its key. The file is larger than the pages it uses.
func damagedBase(t *testing.T, n int) ([]byte, int, *Key) {
	t.Helper()
	k := testKey(t, "sum.example.com")
	path := filepath.Join(t.TempDir(), "good.db")
	l := openTest(t, path, k, VerifyTail)
	growOrigin(t, l, 0, n)
	l.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The meta page's page size, at offset 16 (page header) + 8.
	return data, int(binary.NativeEndian.Uint32(data[24:])), k
}

// TestOpenBoltTruncated: a file cut short at a page boundary (an
// interrupted cp of a backup) made bbolt.Open die of SIGBUS reading its
// freelist through the mapping beyond the file's end. OpenBolt checks the
// file's size against the high-water page of its meta page first, and
// refuses it as ErrCorrupt saying what to do.
func TestOpenBoltTruncated(t *testing.T) {
	data, pageSize, _ := damagedBase(t, 3000)
	dir := t.TempDir()
	path := filepath.Join(dir, "whole.db")
	os.WriteFile(path, data, 0o600)
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	used, _ := s.Size() // the high-water page's end
	s.Close()
	for _, size := range []int{int(used) * 6 / 10 / pageSize * pageSize, int(used) - pageSize, 2 * pageSize} {
		path := filepath.Join(dir, "cut.db")
		if err := os.WriteFile(path, data[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{false, true} {
			s, err := OpenBolt(path, BoltOptions{ReadOnly: ro})
			if err == nil {
				s.Close()
				t.Fatalf("OpenBolt of a file cut to %d of %d bytes (read-only: %v) succeeded", size, len(data), ro)
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") || !strings.Contains(err.Error(), "restore it from a backup") {
				t.Errorf("OpenBolt of a file cut to %d of %d bytes = %v, want ErrCorrupt: truncated, restore it from a backup", size, len(data), err)
			}
		}
	}
	// Cut to the pages it uses, it opens.
	if err := os.WriteFile(path, data[:used], 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err = OpenBolt(path, BoltOptions{}); err != nil {
		t.Fatalf("OpenBolt of the file cut to its used pages: %v", err)
	}
	s.Close()
}

// TestBoltDamagedPages damages the header of each page of a log file in
// turn (its flags: a leaf read as a branch, a freelist as a leaf): bbolt
// panics on such pages, in Open or in a read. Opening the log with full
// verification and reading every record must end in an error or success,
// never a crash, and what fails for damage is ErrCorrupt.
func TestBoltDamagedPages(t *testing.T) {
	data, pageSize, k := damagedBase(t, 600)
	dir := t.TempDir()
	ctx := context.Background()
	caught := 0
	used := int(binary.NativeEndian.Uint64(data[pageSize+16+40:])) // meta page 1's high water: the log's last commit
	for p := 2; p < used; p++ {
		damaged := append([]byte(nil), data...)
		damaged[p*pageSize+8] ^= 0x1f // the flags of page p
		// A panic in bbolt.Open leaves that file locked by this process:
		// a file of its own for each page.
		path := filepath.Join(dir, fmt.Sprintf("damaged%d.db", p))
		if err := os.WriteFile(path, damaged, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Open(path, Options{Keys: []*Key{k}, Verify: VerifyFull, Logger: quietLogger(), MinFree: -1})
		if err == nil {
			_, err = l.ReadRecords(ctx, 0, 600)
			l.Close()
		}
		if err != nil && strings.Contains(err.Error(), "truncated or damaged") {
			caught++
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("page %d damaged: %v, want ErrCorrupt", p, err)
			}
		}
	}
	if caught == 0 {
		t.Error("no damaged page made bbolt panic: the test damages nothing bbolt checks")
	}
}

// TestSafeBoltOwnPanic: a panic that did not come from bbolt (a bug in the
// store's own callback, a nil dereference in it) is not blamed on the
// file: it panics on.
func TestSafeBoltOwnPanic(t *testing.T) {
	var nilMeta *boltMeta
	for _, bug := range []func() error{
		func() error { panic("a bug of ours") },
		func() error { return fmt.Errorf("%d", nilMeta.txid) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Error("the callback's own panic was recovered")
				}
			}()
			err := safeBolt("x.db", bug)
			t.Errorf("safeBolt returned %v, want the panic to go on", err)
		}()
	}
}

// wedgedBolt opens a store of a log of 10 records and damages both its
// meta pages under it: the next transaction's beginTx panics holding
// bbolt's locks (taken without a defer).
func wedgedBolt(t *testing.T) *BoltStore {
	t.Helper()
	data, pageSize, _ := damagedBase(t, 10)
	path := filepath.Join(t.TempDir(), "meta.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	damageMeta(t, path, pageSize)
	return s
}

// damageMeta zeroes the magic of both meta pages of the bbolt file at
// path.
func damageMeta(t *testing.T, path string, pageSize int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, off := range []int64{16, int64(pageSize) + 16} { // each meta page's magic
		if _, err := f.WriteAt([]byte{0, 0, 0, 0}, off); err != nil {
			t.Fatal(err)
		}
	}
}

// promptly runs f, failing the test if it has not returned in 10 s.
func promptly(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still waits after 10 s: bbolt's locks are held", what)
		return nil
	}
}

// wantBeginTx fails the test unless err is a *DamagedError from bbolt's
// beginTx.
func wantBeginTx(t *testing.T, what string, err error) {
	t.Helper()
	var d *DamagedError
	if !errors.As(err, &d) || !strings.Contains(d.Stack(), "beginTx") {
		t.Fatalf("%s: %v, want a *DamagedError from beginTx", what, err)
	}
}

// TestBoltWedgedAfterBeginTx: both meta pages damaged under an open store
// make bbolt's beginTx panic while it holds the database's locks. The read
// answers a *DamagedError with the panic's stack, and so does every read
// after it, at once, instead of waiting for those locks for ever.
func TestBoltWedgedAfterBeginTx(t *testing.T) {
	s := wedgedBolt(t)
	for i := range 2 {
		err := promptly(t, fmt.Sprintf("read %d", i), func() error { return s.viewTx(func(*bbolt.Tx) error { return nil }) })
		wantBeginTx(t, fmt.Sprintf("read %d", i), err)
	}
}

// TestBoltSnapshotDamagedMeta: Snapshot began its read transaction outside
// safeBolt, so damaged meta pages panicked in the sequencer, killing the
// process, and after a wedge it waited for bbolt's locks for ever. It
// answers the *DamagedError, and the same at once after a read wedged.
func TestBoltSnapshotDamagedMeta(t *testing.T) {
	ctx := context.Background()
	s := wedgedBolt(t)
	for i := range 2 {
		err := promptly(t, fmt.Sprintf("snapshot %d", i), func() error {
			snap, err := s.Snapshot(ctx)
			if err == nil {
				snap.Close()
			}
			return err
		})
		wantBeginTx(t, fmt.Sprintf("snapshot %d", i), err)
	}
	s = wedgedBolt(t)
	wantBeginTx(t, "read", s.viewTx(func(*bbolt.Tx) error { return nil }))
	err := promptly(t, "snapshot after a read wedged", func() error {
		_, err := s.Snapshot(ctx)
		return err
	})
	wantBeginTx(t, "snapshot after a read wedged", err)
}

// TestLogStopsWhenWedged: after a read wedged the store (bbolt's locks
// held for good), nothing marked the log stopped: Err was nil, so /healthz
// said ok and serve never exited, and Close waited for ever in bbolt's
// Close. The wedge stops the log with an ErrFatal wrapping the damage, and
// Close returns at once without closing the file (exiting releases its
// lock).
func TestLogStopsWhenWedged(t *testing.T) {
	ctx := context.Background()
	k := testKey(t, "sum.example.com")
	path := filepath.Join(t.TempDir(), "wedged.db")
	s, err := OpenBolt(path, BoltOptions{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	metrics := NewMetrics(prometheus.NewRegistry())
	var logged lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logged, nil))
	l, err := OpenStore(s, Options{Keys: []*Key{k}, Create: true, Logger: logger, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	growOrigin(t, l, 0, 10)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damageMeta(t, path, int(binary.NativeEndian.Uint32(data[24:])))

	_, err = l.ReadRecords(ctx, 0, 1)
	wantBeginTx(t, "read", err)
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the log did not stop after its store wedged")
	}
	err = l.Err()
	var d *DamagedError
	if !errors.Is(err, ErrFatal) || !errors.As(err, &d) {
		t.Fatalf("Err() = %v, want an ErrFatal wrapping a *DamagedError", err)
	}
	if got := testutil.ToFloat64(metrics.fatal); got != 1 {
		t.Errorf("sumd_log_stopped = %v, want 1", got)
	}
	// The damage is counted and its panic's stack logged, once: the reads
	// after it answer the same error without a panic.
	if _, err := l.ReadRecords(ctx, 0, 1); !errors.As(err, &d) {
		t.Errorf("a read after the wedge = %v, want the *DamagedError", err)
	}
	if got := testutil.ToFloat64(metrics.damaged); got != 1 {
		t.Errorf("sumd_log_damaged_reads_total = %v, want 1", got)
	}
	if out := logged.String(); strings.Count(out, "bbolt.(*DB).beginTx") != 1 || !strings.Contains(out, "level=ERROR") {
		t.Errorf("the log says, not once at Error level with the panic's stack:\n%s", out)
	}
	if _, err := l.Add(ctx, record(100, 0)); !errors.Is(err, ErrFatal) {
		t.Errorf("Add after the wedge = %v, want ErrFatal", err)
	}
	err = promptly(t, "Close", l.Close)
	if !errors.As(err, &d) {
		t.Errorf("Close = %v, want the *DamagedError", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestBoltDamagedValueSize: bbolt hands out slices into the mapped file
// without checking an element's size against its page, so a damaged vsize
// in a records leaf reaches past the file's end, and the fault comes in
// ReadRecords' own copy of the value, not inside bbolt. It must be a
// *DamagedError, not a SIGBUS that kills the process.
func TestBoltDamagedValueSize(t *testing.T) {
	data, pageSize, _ := damagedBase(t, 300)
	patched := false
	for off := 2 * pageSize; off+pageSize <= len(data) && !patched; off += pageSize {
		// A leaf (flags 2) whose first element has a record's 8-byte key
		// and a record's size.
		p := data[off:]
		flags, count := binary.NativeEndian.Uint16(p[8:]), binary.NativeEndian.Uint16(p[10:])
		elem := p[boltPageHeader:]
		ksize, vsize := binary.NativeEndian.Uint32(elem[8:]), binary.NativeEndian.Uint32(elem[12:])
		if flags == 2 && count > 1 && ksize == 8 && vsize > 100 && vsize < 1000 {
			binary.NativeEndian.PutUint32(elem[12:], 64<<20)
			patched = true
		}
	}
	if !patched {
		t.Fatal("found no leaf of records to damage")
	}
	path := filepath.Join(t.TempDir(), "vsize.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenBolt(path, BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ids := make([]int64, 300)
	for i := range ids {
		ids[i] = int64(i)
	}
	_, err = s.ReadRecords(context.Background(), ids)
	var d *DamagedError
	if !errors.As(err, &d) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadRecords of a leaf with a damaged value size = %v, want a *DamagedError", err)
	}
}

// TestFromBbolt: a panic is blamed on the file when the innermost frame
// that raised it, past the runtime's helpers (shown when GOTRACEBACK is
// system) and the standard library bbolt called, is bbolt's.
func TestFromBbolt(t *testing.T) {
	const top = "goroutine 7 [running]:\nruntime/debug.Stack()\n\t/go/src/runtime/debug/stack.go:26 +0x5e\n" +
		"github.com/sumd-project/sumd/internal/tlog.safeBolt.func1()\n\t/src/boltdamage.go:130 +0x26\n" +
		"panic({0x4af520?, 0x580470?})\n\t/go/src/runtime/panic.go:860 +0x13a\n"
	for _, c := range []struct {
		frames string
		want   bool
	}{
		{"go.etcd.io/bbolt.(*Cursor).search(...)\n\t/m/cursor.go:1\n", true},
		{"runtime.panicdivide()\n\t/go/src/runtime/panic.go:1\ngo.etcd.io/bbolt.(*DB).beginTx(0xc0)\n\t/m/db.go:1\n", true},
		{"runtime.panicunsafeslicelen1(...)\n\t/go/src/runtime/unsafe.go:1\nruntime.sigpanic()\n\t/x\ngo.etcd.io/bbolt/internal/common.UnsafeByteSlice(...)\n\t/m/unsafe.go:1\n", true},
		{"encoding/binary.bigEndian.Uint64(...)\n\t/go/src/encoding/binary/binary.go:1\ngo.etcd.io/bbolt.(*Bucket).Get(0xc0)\n\t/m/bucket.go:1\n", true},
		{"github.com/sumd-project/sumd/internal/tlog.(*BoltStore).ReadRecords.func1(0xc0)\n\t/src/bolt.go:1\ngo.etcd.io/bbolt.(*DB).View(0xc0)\n\t/m/db.go:1\n", false},
		{"bytes.Compare(...)\n\t/go/src/bytes/bytes.go:1\ngo.etcd.io/bbolt.(*Cursor).seek(0xc0)\n\t/m/cursor.go:1\n", true},
		{"bytes.Clone(...)\n\t/go/src/bytes/bytes.go:1\ngithub.com/sumd-project/sumd/internal/tlog.(*BoltStore).Aux.func1(0xc0)\n\t/src/bolt.go:1\n", false},
	} {
		if got := fromBbolt([]byte(top + c.frames)); got != c.want {
			t.Errorf("fromBbolt of a panic raised in\n%s= %v, want %v", c.frames, got, c.want)
		}
	}
}

// TestDamageLoggedOnceAMinute: every client reading a damaged page meets
// it anew; its stack is logged once a minute, not once per read, while
// every read is counted.
func TestDamageLoggedOnceAMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logged strings.Builder
		metrics := NewMetrics(prometheus.NewRegistry())
		l := &Log{log: slog.New(slog.NewTextHandler(&logged, nil)), metrics: metrics}
		d := &DamagedError{stack: "goroutine 1 [running]:\nbbolt.(*Cursor).seek\n"}
		for range 100 {
			l.storeDamaged(d, false)
		}
		time.Sleep(time.Minute)
		l.storeDamaged(d, false)
		if got := strings.Count(logged.String(), "level=ERROR"); got != 2 {
			t.Errorf("101 damaged reads over a minute logged %d stacks, want 2:\n%.2000s", got, logged.String())
		}
		if got := testutil.ToFloat64(metrics.damaged); got != 101 {
			t.Errorf("sumd_log_damaged_reads_total = %v, want 101", got)
		}
	})
}
