package modhash

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sync/semaphore"
)

// MaxFiles caps the entries of a module zip that HashZip hashes; a zip
// with more is invalid. The go command has no such limit (x/mod/zip caps
// only sizes: within MaxZipFile about 6.8 million empty entries fit), but
// every entry costs memory in each zip reader that checks and hashes it,
// about 800 bytes in all: a zip of millions of empty files, which any
// anonymous first lookup may make sumd fetch, cost GBs. 200,000 is several
// times the file count of the largest modules in use (a repository such as
// k8s.io/kubernetes holds a few tens of thousands of files outside vendor/)
// and hashes in about 160 MB. A variable so that tests may lower it.
var MaxFiles = 200_000

// MaxFilesInFlight caps the entries of the zips that all HashZip calls
// hold open at once: about 640 MB. Each call takes its zip's entries (at
// most, by checkFileCount) from a shared budget before it reads the zip's
// directory, and waits while the budget is spent, so that parallel first
// lookups of zips at MaxFiles (16 at the default -upstream-parallel held
// 2.6 GB) queue instead of adding up. Small zips take little: one of 1 MiB
// holds at most 22,795 entries.
const MaxFilesInFlight = 4 * 200_000

// inFlight is the budget of MaxFilesInFlight; tests replace it.
var inFlight = semaphore.NewWeighted(MaxFilesInFlight)

// holdFiles takes n entries from the budget of size max (n is capped at
// max, which a zip at MaxFiles never reaches) and returns their release.
// Waiting for them, it fails with ctx's error once ctx is done: a hash
// nobody waits for any more must not queue on.
func holdFiles(ctx context.Context, budget *semaphore.Weighted, max, n int64) (func(), error) {
	n = min(n, max)
	if n <= 0 {
		return func() {}, nil
	}
	if budget.TryAcquire(n) {
		return func() { budget.Release(n) }, nil
	}
	if err := budget.Acquire(ctx, n); err != nil {
		return nil, err
	}
	return func() { budget.Release(n) }, nil
}

// A TooManyFilesError is a zip with more entries than MaxFiles.
type TooManyFilesError struct {
	// Files is what the zip declares, or, if it declares no more than Max
	// (archive/zip checks the count modulo 65536 only), Max+1 and Counted.
	Files   uint64
	Counted bool
	Max     int
}

func (e *TooManyFilesError) Error() string {
	if e.Counted {
		return fmt.Sprintf("the zip holds more than %d files, the most sumd hashes", e.Max)
	}
	return fmt.Sprintf("the zip holds %d files, more than sumd hashes (%d)", e.Files, e.Max)
}

// The zip format's records that checkFileCount reads (APPNOTE.TXT 4.3.12,
// 4.3.14 to 4.3.16), as archive/zip names them.
const (
	directoryHeaderSignature = 0x02014b50
	directoryEndSignature    = 0x06054b50
	directory64LocSignature  = 0x07064b50
	directory64EndSignature  = 0x06064b50
	directoryHeaderLen       = 46
	directoryEndLen          = 22
	directory64LocLen        = 20
	directory64EndLen        = 56
)

// checkFileCount refuses, before anything reads the zip's directory into
// memory, a zip of size bytes in r with more than max entries: first by the
// count its end of central directory record declares (zip64 included),
// then by walking the directory's fixed-size headers from where
// archive/zip starts reading them, allocating nothing and stopping at
// max+1. The walk is needed because archive/zip checks the declared count
// only modulo 65536: a zip declaring 1 file may hold 65,537 or 6 million.
//
// It reads as archive/zip's NewReader does (readDirectoryEnd), so that it
// counts at least the entries archive/zip will read (FuzzCheckFileCount
// holds the two to it); what archive/zip would refuse anyway it leaves to
// archive/zip.
//
// A zip too small to hold more than max headers is not read at all: every
// entry archive/zip reads takes a header of at least directoryHeaderLen
// bytes of the file, one after the other, so no zip of size bytes yields
// more than size/directoryHeaderLen entries (and archive/zip refuses one
// that declares more). At MaxFiles this spares every zip under 9 MB.
//
// files is at least the number of entries archive/zip reads of an
// accepted zip: that bound, or the most the walk counted.
func checkFileCount(r io.ReaderAt, size int64, max int) (files int64, err error) {
	if bound := size / directoryHeaderLen; bound <= int64(max) {
		return bound, nil
	}
	declared, starts, ok := directoryEnd(r, size)
	if !ok {
		return 0, nil // archive/zip refuses it before reading an entry
	}
	if declared > uint64(max) {
		return 0, &TooManyFilesError{Files: declared, Max: max}
	}
	for _, start := range starts {
		n := countHeaders(r, start, size, max)
		if n > max {
			return 0, &TooManyFilesError{Files: uint64(max) + 1, Counted: true, Max: max}
		}
		if int64(n) > files {
			files = int64(n)
		}
	}
	return files, nil
}

// countHeaders counts the central directory headers one after the other
// from start, as archive/zip reads them, up to max+1.
func countHeaders(r io.ReaderAt, start, size int64, max int) int {
	br := bufio.NewReader(io.NewSectionReader(r, start, size-start))
	var hdr [directoryHeaderLen]byte
	le := binary.LittleEndian
	n := 0
	for ; n <= max; n++ {
		if _, err := io.ReadFull(br, hdr[:]); err != nil || le.Uint32(hdr[:]) != directoryHeaderSignature {
			break
		}
		names := int(le.Uint16(hdr[28:])) + int(le.Uint16(hdr[30:])) + int(le.Uint16(hdr[32:]))
		if _, err := br.Discard(names); err != nil {
			break
		}
	}
	return n
}

// directoryEnd is archive/zip's readDirectoryEnd reduced to what
// checkFileCount needs: the number of entries the zip declares and where
// archive/zip may start reading its directory, one place or two (see the
// end). ok is false if archive/zip would refuse the zip before reading
// any entry.
func directoryEnd(r io.ReaderAt, size int64) (records uint64, starts []int64, ok bool) {
	// The record is in the last 1 KiB, or else in the last 65 KiB.
	var buf []byte
	var endOffset int64
	for i, n := range []int64{1024, 65 * 1024} {
		n = min(n, size)
		buf = make([]byte, n)
		if _, err := r.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
			return 0, nil, false
		}
		if p := findDirectoryEnd(buf); p >= 0 {
			buf, endOffset = buf[p:], size-n+int64(p)
			break
		}
		if i == 1 || n == size {
			return 0, nil, false
		}
	}
	le := binary.LittleEndian
	records = uint64(le.Uint16(buf[10:]))
	dirSize := uint64(le.Uint32(buf[12:]))
	dirOffset := uint64(le.Uint32(buf[16:]))
	if int(le.Uint16(buf[20:])) > len(buf)-directoryEndLen {
		return 0, nil, false // archive/zip: invalid comment length
	}
	// These values mean that the zip may be a zip64 one (archive/zip tests
	// the 32-bit size against 0xffff, and so must this).
	if records == 0xffff || dirSize == 0xffff || dirOffset == 0xffffffff {
		p, found, err := findDirectory64End(r, endOffset)
		if err != nil {
			return 0, nil, false
		}
		if found {
			b := make([]byte, directory64EndLen)
			if _, err := r.ReadAt(b, p); err != nil || le.Uint32(b) != directory64EndSignature {
				return 0, nil, false
			}
			endOffset = p
			records, dirSize, dirOffset = le.Uint64(b[32:]), le.Uint64(b[40:]), le.Uint64(b[48:])
		}
	}
	if dirSize > 1<<63-1 || dirOffset > 1<<63-1 {
		return 0, nil, false
	}
	base := endOffset - int64(dirSize) - int64(dirOffset)
	if o := base + int64(dirOffset); o < 0 || o >= size {
		return 0, nil, false
	}
	// With a base, archive/zip still starts at dirOffset if it can read a
	// valid directory header there, by rules that include the header's
	// extra fields: rather than follow them too, count from both places.
	starts = []int64{base + int64(dirOffset)}
	if base > 0 {
		starts = append(starts, int64(dirOffset))
	}
	return records, starts, true
}

// findDirectoryEnd is archive/zip's findSignatureInBlock: the last end of
// central directory record in b whose comment fits, or -1.
func findDirectoryEnd(b []byte) int {
	for i := len(b) - directoryEndLen; i >= 0; i-- {
		if binary.LittleEndian.Uint32(b[i:]) == directoryEndSignature {
			n := int(binary.LittleEndian.Uint16(b[i+directoryEndLen-2:]))
			if n+directoryEndLen+i > len(b) {
				return -1
			}
			return i
		}
	}
	return -1
}

// findDirectory64End is archive/zip's: the offset of the zip64 end of
// central directory record named by the locator before the end record at
// endOffset, if there is a valid locator.
func findDirectory64End(r io.ReaderAt, endOffset int64) (int64, bool, error) {
	loc := endOffset - directory64LocLen
	if loc < 0 {
		return 0, false, nil
	}
	b := make([]byte, directory64LocLen)
	if _, err := r.ReadAt(b, loc); err != nil {
		return 0, false, err
	}
	le := binary.LittleEndian
	p := int64(le.Uint64(b[8:]))
	if le.Uint32(b) != directory64LocSignature || le.Uint32(b[4:]) != 0 || le.Uint32(b[16:]) != 1 || p < 0 {
		return 0, false, nil
	}
	return p, true, nil
}
