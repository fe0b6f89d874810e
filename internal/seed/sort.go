package seed

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unsafe"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/regfile"
	"github.com/sumd-project/sumd/internal/scratch"
	"github.com/sumd-project/sumd/internal/tlog"
)

// An entry is one or both go.sum lines of one module version, checked, as
// Sort keeps them: the version's key (path@version, the order of the log's
// index) and, for each line it has, the hash and where it is. The two lines
// of a version are one entry when they follow each other in a file, as in
// every go.sum file the go command writes: half the entries to sort.
type entry struct {
	key  string
	has  uint8       // 1: the zip line, 2: the go.mod line
	hash [2][32]byte // of the zip line, of the go.mod line
	file int32       // index in Sorted.files
	line [2]int32    // of the zip line, of the go.mod line
}

const (
	hasZip uint8 = 1 << iota
	hasMod
)

// first is the entry's first line.
func (e *entry) first() int32 {
	if e.has&hasZip == 0 {
		return e.line[1]
	}
	if e.has&hasMod == 0 {
		return e.line[0]
	}
	return min(e.line[0], e.line[1])
}

// compareEntries orders entries by key (bytewise, as the log's index),
// then by file and first line: the first place a version appears comes
// first.
func compareEntries(a, b *entry) int {
	if c := strings.Compare(a.key, b.key); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.file, b.file), cmp.Compare(a.first(), b.first()))
}

// entrySize is an entry's slot in the sort's slice (96 bytes); its key's
// bytes are apart.
const entrySize = int(unsafe.Sizeof(entry{}))

// Options configure Sort.
type Options struct {
	// TempDir holds the sorted runs ("" means os.TempDir()); see package
	// scratch. Runs take about 80 bytes per line.
	TempDir string
	// MemoryBytes bounds the lines held in memory while sorting (default
	// DefaultMemoryBytes): past it, the lines read so far are sorted and
	// written to a run in TempDir.
	MemoryBytes int
	// MinFree is the space, in bytes, the runs leave free on TempDir's
	// file system (-min-free-disk): 0 means tlog.DefaultMinFree, negative
	// no floor.
	MinFree int64
	// MaxFileSize, if positive, bounds each file: a larger one is an
	// error. Sort streams files of any size; Read, which holds them in
	// memory, sets it.
	MaxFileSize int64
}

// freeSpace is tlog.FreeSpace; tests fake a full disk.
var freeSpace = tlog.FreeSpace

// DefaultMemoryBytes is the default Options.MemoryBytes.
const DefaultMemoryBytes = 64 << 20

// checkLines is how many lines Sort reads between two looks at its
// context: a few milliseconds' worth.
const checkLines = 4096

// maxLine caps one go.sum line: a record is at most gosum.MaxRecordSize.
const maxLine = gosum.MaxRecordSize

// A Sorted is the lines of some go.sum files, checked and sorted by module
// version: the last run in memory, the others in temporary files. Scan
// reads them back paired into module versions, as often as needed. Close
// removes the files.
type Sorted struct {
	// Lines counts the go.sum lines read, but for those Ignored counts:
	// lines with the hash of an empty go.mod (gosum.ErrEmptyGoMod), dropped
	// as the go command drops them.
	Lines, Ignored int

	files []string  // named by entry.file
	runs  []string  // temporary files, each sorted
	mems  [][]entry // runs in memory, each sorted: the last one read, and those Add added
	dir   string
	space tlog.SpaceGuard // keeps Options.MinFree free under the runs
}

// Sort reads the go.sum files, checks every line (a malformed one is an
// error naming its file and line) and sorts them by module version,
// holding at most about opts.MemoryBytes of them in memory. The files may
// be of any size and their lines in any order. Sort stops with ctx's error
// when ctx is done: it checks between files and every checkLines lines.
func Sort(ctx context.Context, files []string, opts Options) (_ *Sorted, err error) {
	if opts.MemoryBytes <= 0 {
		opts.MemoryBytes = DefaultMemoryBytes
	}
	if opts.MinFree == 0 {
		opts.MinFree = tlog.DefaultMinFree
	}
	s := &Sorted{files: files, dir: opts.TempDir, space: tlog.SpaceGuard{Floor: opts.MinFree, Free: freeSpace}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	buf := make([]entry, 0, initialCap(files, opts.MemoryBytes))
	keys := 0 // bytes of buf's keys
	var c gosum.Checker
	for i, file := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := readLines(file, opts.MaxFileSize, func(line int, text []byte) error {
			if s.Lines%checkLines == checkLines-1 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			l, err := c.ParseLine(string(text))
			if errors.Is(err, gosum.ErrEmptyGoMod) {
				s.Ignored++
				return nil
			}
			if err != nil {
				return &LineError{Pos{file, line}, err}
			}
			s.Lines++
			kind, bit := 0, hasZip
			if l.GoMod {
				kind, bit = 1, hasMod
			}
			// The other line of the version just read: one entry.
			if n := len(buf); n > 0 && buf[n-1].file == int32(i) && buf[n-1].has&bit == 0 && isKey(buf[n-1].key, l.Path, l.Version.Version) {
				setLine(&buf[n-1], kind, bit, l.Hash, line)
				return nil
			}
			if full(buf, keys, opts.MemoryBytes) {
				if err := s.spill(buf); err != nil {
					return err
				}
				buf, keys = buf[:0], 0
			}
			buf = append(buf, entry{key: l.Path + "@" + l.Version.Version, file: int32(i)})
			setLine(&buf[len(buf)-1], kind, bit, l.Hash, line)
			keys += len(buf[len(buf)-1].key)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(buf, func(a, b entry) int { return compareEntries(&a, &b) })
	s.mems = append(s.mems, buf)
	return s, nil
}

// Add adds records from another source, such as versions completed from a
// module proxy, to what Scan reads: both lines of each, at "<name>:<i>"
// for the i'th record (from 1). They are held in memory.
func (s *Sorted) Add(name string, recs []gosum.Record) error {
	file := int32(len(s.files))
	s.files = append(slices.Clip(s.files), name)
	buf := make([]entry, 0, len(recs))
	var c gosum.Checker
	for i, r := range recs {
		if err := c.Record(r); err != nil {
			return &LineError{Pos{name, i + 1}, err}
		}
		e := entry{key: r.Key(), file: file}
		setLine(&e, 0, hasZip, r.Hash, i+1) // r.Check checked the hashes
		setLine(&e, 1, hasMod, r.GoMod, i+1)
		buf = append(buf, e)
	}
	slices.SortFunc(buf, func(a, b entry) int { return compareEntries(&a, &b) })
	s.mems = append(s.mems, buf)
	return nil
}

// full reports whether buf must be spilled before one more entry: its
// slice (all of its capacity, used or not) and keys would exceed memory,
// counting the growth append makes when the slice is full (as runtime's
// growslice: double, then by a quarter and 192). An empty buf is never
// full: a budget smaller than one entry spills one at a time.
func full(buf []entry, keys, memory int) bool {
	n := cap(buf)
	switch {
	case len(buf) == 0:
		return false
	case len(buf) < n:
	case n < 256:
		n *= 2
	default:
		n += (n + 3*256) / 4
	}
	return n*entrySize+keys > memory
}

// initialCap estimates the entries of files that fit in memory, at about
// 80 bytes a line in a file and a key of about 48 bytes: growing a slice
// of hundreds of thousands of entries copies them many times.
func initialCap(files []string, memory int) int {
	var size int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			size += fi.Size()
		}
	}
	return int(min(size/80, int64(memory/(entrySize+48)), 1<<22))
}

// readLines calls f for every line of file but those of white space only,
// without its "\r\n" or "\n", numbered from 1. A file of more than limit
// bytes, if limit is positive, is an error.
func readLines(file string, limit int64, f func(line int, text []byte) error) (err error) {
	// regfile.Open, not os.Open: a name Files found a regular file may be
	// a named pipe now, which os.Open waits on for a writer for ever.
	fh, err := regfile.Open(file)
	if err != nil {
		return fmt.Errorf("failed to read go.sum file: %w", err)
	}
	defer fh.Close()
	var r io.Reader = fh
	if limit > 0 {
		// One byte past limit tells a file over it. Its size is the error,
		// whatever else is: the last line read may have been cut short.
		lr := &io.LimitedReader{R: fh, N: limit + 1}
		r = lr
		defer func() {
			if lr.N == 0 {
				err = fmt.Errorf("%s is larger than %d bytes: not a go.sum file", file, limit)
			}
		}()
	}
	// The scanner's buffer is its line cap (bufio caps a line at the
	// larger of the two), too small to read a file by: it reads through a
	// larger one, so a 100k-version go.sum takes 60 reads, not 7,000.
	sc := bufio.NewScanner(bufio.NewReaderSize(r, 256<<10))
	sc.Buffer(make([]byte, maxLine), maxLine)
	n := 0
	for sc.Scan() {
		n++
		text := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(bytes.TrimSpace(text)) == 0 { // blank to the go command too (gosum.ParseLine)
			continue
		}
		if err := f(n, text); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return &LineError{Pos{file, n + 1}, fmt.Errorf("line longer than %d bytes: not a go.sum line", maxLine)}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("failed to read %s: %w", file, err)
	}
	return nil
}

// isKey reports whether key is path@version.
func isKey(key, path, version string) bool {
	return len(key) == len(path)+1+len(version) && key[len(path)] == '@' &&
		key[:len(path)] == path && key[len(path)+1:] == version
}

// setLine records one line, whose hash ParseLine checked (exactly the
// base64 of 32 bytes), in e.
func setLine(e *entry, kind int, bit uint8, hash string, line int) {
	base64.StdEncoding.Decode(e.hash[kind][:], []byte(hash[len("h1:"):]))
	e.has |= bit
	e.line[kind] = int32(line)
}

// spill sorts buf and writes it to a new run, keeping Options.MinFree
// free: TempDir is by default beside the database, or in $TMPDIR, often a
// running server's disk too, where a disk filled to the last byte fails a
// commit half-way, which stops the log. Runs of a large import take
// gigabytes.
func (s *Sorted) spill(buf []entry) error {
	slices.SortFunc(buf, func(a, b entry) int { return compareEntries(&a, &b) })
	f, err := scratch.Create(s.dir, scratch.Sort)
	if err != nil {
		return fmt.Errorf("failed to create a temporary file for sorting: %w", err)
	}
	s.runs = append(s.runs, f.Name())
	w := bufio.NewWriterSize(&tlog.FloorWriter{W: f, Path: f.Name(), Guard: s.space}, 256<<10)
	for i := range buf {
		writeEntry(w, &buf[i])
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("failed to write a temporary file for sorting: %w", err)
	}
	return nil
}

// Close removes the temporary files.
func (s *Sorted) Close() error {
	var errs []error
	for _, r := range s.runs {
		if err := os.Remove(r); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	s.runs = nil
	return errors.Join(errs...)
}

// A run's encoding of an entry: the key's length (uvarint) and bytes, the
// has byte, the file (uvarint), then for each line it has, the 32 bytes of
// the hash and the line (uvarint). Runs are sumd's own temporary files,
// read back by the process that wrote them.
func writeEntry(w *bufio.Writer, e *entry) {
	var b [binary.MaxVarintLen64]byte
	w.Write(b[:binary.PutUvarint(b[:], uint64(len(e.key)))])
	w.WriteString(e.key)
	w.WriteByte(e.has)
	w.Write(b[:binary.PutUvarint(b[:], uint64(e.file))])
	for kind, bit := range []uint8{hasZip, hasMod} {
		if e.has&bit != 0 {
			w.Write(e.hash[kind][:])
			w.Write(b[:binary.PutUvarint(b[:], uint64(e.line[kind]))])
		}
	}
}

// A runReader reads the entries of a run in order.
type runReader struct {
	f   *os.File
	r   *bufio.Reader
	cur entry
	ok  bool // cur holds an entry
	err error
}

func openRun(name string) (*runReader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("failed to read a temporary file for sorting: %w", err)
	}
	rr := &runReader{f: f, r: bufio.NewReaderSize(f, 64<<10)}
	rr.next()
	if rr.err != nil {
		// The caller gets no reader to close: close the file here.
		f.Close()
		return nil, rr.err
	}
	return rr, nil
}

// next reads the next entry into cur, or sets ok to false at the end.
func (rr *runReader) next() {
	rr.ok = false
	n, err := binary.ReadUvarint(rr.r)
	if err == io.EOF {
		return
	}
	if err == nil {
		rr.cur, err = readEntry(rr.r, n)
	}
	if err != nil {
		rr.err = fmt.Errorf("failed to read a temporary file for sorting: %w", noEOF(err))
		return
	}
	rr.ok = true
}

// readEntry reads the rest of an entry whose key is n bytes long.
func readEntry(r *bufio.Reader, n uint64) (entry, error) {
	var e entry
	if n > maxLine {
		return e, fmt.Errorf("key of %d bytes", n)
	}
	key := make([]byte, n)
	if _, err := io.ReadFull(r, key); err != nil {
		return e, err
	}
	e.key = string(key)
	var err error
	if e.has, err = r.ReadByte(); err != nil {
		return e, err
	}
	file, err := binary.ReadUvarint(r)
	if err != nil {
		return e, err
	}
	e.file = int32(file)
	for kind, bit := range []uint8{hasZip, hasMod} {
		if e.has&bit == 0 {
			continue
		}
		if _, err := io.ReadFull(r, e.hash[kind][:]); err != nil {
			return e, err
		}
		line, err := binary.ReadUvarint(r)
		if err != nil {
			return e, err
		}
		e.line[kind] = int32(line)
	}
	return e, nil
}

func (rr *runReader) close() { rr.f.Close() }

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
