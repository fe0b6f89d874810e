package tlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"go.etcd.io/bbolt"
)

// bbolt trusts its file: a file shorter than the pages its meta page
// counts (a cp of a backup cut short) is read through the mapping beyond
// the file's end, a SIGBUS that kills the process; a damaged page header
// fails one of its assertions, a panic. OpenBolt checks the size first
// (checkBoltSize), and turns a fault or panic in bbolt.Open or in a read
// transaction into a *DamagedError (safeBolt). A write transaction that
// meets damage still panics: bbolt rolls it back, and a log that cannot
// write stops in any case.

// A DamagedError is a bbolt file that is truncated or damaged below the
// log's level. It is an ErrCorrupt.
type DamagedError struct {
	Path string
	What string // what is wrong, or the panic bbolt raised

	stack string // the recovered panic's stack, if any (Stack)
}

// Stack returns the stack of the panic the error recovered, "" if none:
// for the log, so that damage blamed on the file can be told from a bug.
func (e *DamagedError) Stack() string { return e.stack }

func (e *DamagedError) Error() string {
	return fmt.Sprintf("database %s is truncated or damaged (%s): if it is a log's database, restore it from a backup (sumd backup verify checks one) or a mirror (docs/mirrors.md)", e.Path, e.What)
}

// Is makes it an ErrCorrupt.
func (e *DamagedError) Is(target error) bool { return target == ErrCorrupt }

// The fields of a bbolt meta page that checkBoltSize reads (bbolt's
// internal/common Meta, in the machine's byte order, after the 16-byte
// page header): magic, version, page size, flags, the root bucket (16
// bytes), the freelist's page id, then at 40 the high-water page id, at 48
// the transaction id, and at 56 the FNV-64a of the 56 bytes before it.
const (
	boltPageHeader = 16
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltMetaSize   = 64
)

type boltMeta struct {
	pageSize  uint32
	highWater uint64 // the first page id not in use
	txid      uint64
}

// parseBoltMeta reads the meta page at the start of page, as bbolt's
// Meta.Validate accepts it.
func parseBoltMeta(page []byte) (boltMeta, bool) {
	if len(page) < boltPageHeader+boltMetaSize {
		return boltMeta{}, false
	}
	m := page[boltPageHeader : boltPageHeader+boltMetaSize]
	u32 := func(off int) uint32 { return binary.NativeEndian.Uint32(m[off:]) }
	u64 := func(off int) uint64 { return binary.NativeEndian.Uint64(m[off:]) }
	h := fnv.New64a()
	h.Write(m[:56])
	if u32(0) != boltMagic || u32(4) != boltVersion || u64(56) != h.Sum64() {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: u32(8), highWater: u64(40), txid: u64(48)}, true
}

// checkBoltSize refuses a file shorter than the pages its meta page (the
// valid one of the two with the higher transaction id, as bbolt picks it)
// says are in use. It reads the meta pages before the file's size: a
// writer grows the file before it writes a meta page naming the new
// pages, so a file being written is never seen short. A new or empty
// file, or one whose meta pages do not validate, is left to bbolt.Open.
func checkBoltSize(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // bbolt.Open says what is wrong
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := io.ReadFull(f, buf)
	m0, ok0 := parseBoltMeta(buf[:n])
	var m1 boltMeta
	ok1 := false
	if ok0 {
		n, _ = f.ReadAt(buf, int64(m0.pageSize))
		m1, ok1 = parseBoltMeta(buf[:n])
	}
	m := m0
	switch {
	case ok1 && (!ok0 || m1.txid > m0.txid):
		m = m1
	case !ok0:
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	if need := m.highWater * uint64(m.pageSize); uint64(fi.Size()) < need {
		return &DamagedError{Path: path, What: fmt.Sprintf("the file has %d bytes, its pages reach %d", fi.Size(), need)}
	}
	return nil
}

// safeBolt runs f, a call into bbolt, turning a memory fault in the
// mapped file or a panic raised inside bbolt into a *DamagedError. Faults
// are caught only in the calling goroutine, which is where bbolt reads
// during Open and View. A bbolt transaction ended by a panic is rolled back
// by bbolt's View. A fault is damage wherever it happens: bbolt's Get and
// cursors return slices into the mapping without checking an element's
// size against its page, so a damaged size faults in the caller's copy
// (bytes.Clone), not in bbolt. Any other panic that did not come from
// bbolt (a bug in the store's own callback) is not damage: it panics on,
// with its stack. The stack of a recovered panic is kept in the error
// (Stack) for the log.
func safeBolt(path string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		stack := debug.Stack()
		if !isFault(r) && !fromBbolt(stack) {
			panic(r)
		}
		err = &DamagedError{Path: path, What: fmt.Sprint(r), stack: string(stack)}
	}()
	return f()
}

// isFault reports whether a recovered panic is a memory fault at an
// address, the form SetPanicOnFault gives a SIGBUS or SIGSEGV: in sumd's
// own code, only a read of the mapped file faults. A nil dereference (an
// address below a page) panics without Addr: a bug, not damage.
func isFault(r any) bool {
	_, ok := r.(interface {
		runtime.Error
		Addr() uintptr
	})
	return ok
}

// fromBbolt reports whether the panic whose stack is given was raised
// inside bbolt: past the runtime's panic frames, the innermost frame that
// is neither the runtime's (panicdivide, sigpanic: shown only when
// GOTRACEBACK is system) nor the standard library's (bbolt passing a
// damaged slice on) is bbolt's.
func fromBbolt(stack []byte) bool {
	// The stack reads: goroutine header, debug.Stack, this package's
	// deferred function, "panic(", then the frames that panicked, each a
	// function line and a tab-indented file line.
	_, frames, ok := strings.Cut(string(stack), "\npanic(")
	if !ok {
		return false
	}
	for _, line := range strings.Split(frames, "\n")[1:] {
		if line == "" || strings.HasPrefix(line, "\t") {
			continue
		}
		fn, _, _ := strings.Cut(line, "(")
		if !inStd(fn) {
			return strings.HasPrefix(fn, "go.etcd.io/bbolt")
		}
	}
	return false
}

// inStd reports whether a function named as a stack shows it is in the
// runtime or the standard library, whose import paths' first elements
// have no dot.
func inStd(fn string) bool {
	first, _, ok := strings.Cut(fn, "/")
	if !ok {
		first, _, _ = strings.Cut(fn, ".")
	}
	return !strings.Contains(first, ".")
}

// inBeginTx reports whether the panic whose stack is given came from
// bbolt's beginTx, which holds the database's meta and mmap locks without
// a defer: a recovered panic there leaves them held, and every later read
// would wait for ever.
func inBeginTx(stack string) bool { return strings.Contains(stack, "bbolt.(*DB).beginTx") }

// openBolt is bbolt.Open, safe from a truncated or damaged file. A fault
// or panic inside bbolt.Open leaves the file open and locked by this
// process, which should exit: no *bbolt.DB is returned to close it.
func openBolt(path string, o *bbolt.Options) (*bbolt.DB, error) {
	if err := checkBoltSize(path); err != nil {
		return nil, err
	}
	var db *bbolt.DB
	err := safeBolt(path, func() error {
		var err error
		db, err = bbolt.Open(path, 0o600, o)
		return err
	})
	var d *DamagedError
	if errors.As(err, &d) {
		return nil, err
	}
	return db, err
}

// viewTx is s.db.View, turning a fault or panic on a damaged page into a
// *DamagedError (safeRead).
func (s *BoltStore) viewTx(f func(*bbolt.Tx) error) error {
	return s.safeRead(func() error { return s.db.View(f) })
}

// safeRead runs f, which begins a read transaction, in safeBolt. After a
// panic in bbolt's beginTx, which leaves bbolt's locks held, every later
// read answers that error at once instead of waiting for the locks for
// ever.
func (s *BoltStore) safeRead(f func() error) error {
	if d := s.wedged.Load(); d != nil {
		return d
	}
	err := safeBolt(s.db.Path(), f)
	var d *DamagedError
	if errors.As(err, &d) {
		wedged := inBeginTx(d.stack) && s.wedged.CompareAndSwap(nil, d)
		if f := s.onDamage.Load(); f != nil {
			(*f)(d, wedged)
		}
	}
	return err
}

// notifyDamage asks for f to be called, in the goroutine that met it, with
// each *DamagedError a read recovers, and whether it wedged the store; at
// once if the store wedged before. The Log logs and counts the damage, and
// stops when the store wedged, as after any storage failure it cannot
// recover from.
func (s *BoltStore) notifyDamage(f func(d *DamagedError, wedged bool)) {
	s.onDamage.Store(&f)
	if d := s.wedged.Load(); d != nil {
		f(d, true)
	}
}
