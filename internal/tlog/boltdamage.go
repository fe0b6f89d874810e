package tlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"

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
}

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
// mapped file or a panic into a *DamagedError. Faults are caught only in
// the calling goroutine, which is where bbolt reads during Open and View.
// A bbolt transaction ended by a panic is rolled back by bbolt's View. A
// panic in the store's own code inside f is reported the same way (with
// its value): those callbacks only copy bytes out of bbolt.
func safeBolt(path string, f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &DamagedError{Path: path, What: fmt.Sprint(r)}
		}
	}()
	return f()
}

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
// *DamagedError.
func (s *BoltStore) viewTx(f func(*bbolt.Tx) error) error {
	return safeBolt(s.db.Path(), func() error { return s.db.View(f) })
}
