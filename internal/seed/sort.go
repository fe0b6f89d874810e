package seed

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/scratch"
)

// An entry is one go.sum line, checked, as Sort keeps it: its module
// version's key (path@version, the order of the log's index), which of the
// two lines it is, its hash and where it is.
type entry struct {
	key   string
	goMod bool
	hash  [32]byte
	file  int32 // index in Sorted.files
	line  int32
}

// compareEntries orders entries by key (bytewise, as the log's index),
// the zip line before the go.mod line, then by file and line: the first
// place a line appears comes first.
func compareEntries(a, b *entry) int {
	if c := strings.Compare(a.key, b.key); c != 0 {
		return c
	}
	if a.goMod != b.goMod {
		if a.goMod {
			return 1
		}
		return -1
	}
	return cmp.Or(cmp.Compare(a.file, b.file), cmp.Compare(a.line, b.line))
}

// entryBytes approximates what an entry costs in memory: the struct, its
// slot in the slice and the key's bytes.
func (e *entry) bytes() int { return 64 + len(e.key) }

// Options configure Sort.
type Options struct {
	// TempDir holds the sorted runs ("" means os.TempDir()); see package
	// scratch. Runs take about 80 bytes per line.
	TempDir string
	// MemoryBytes bounds the lines held in memory while sorting (default
	// DefaultMemoryBytes): past it, the lines read so far are sorted and
	// written to a run in TempDir.
	MemoryBytes int
}

// DefaultMemoryBytes is the default Options.MemoryBytes.
const DefaultMemoryBytes = 64 << 20

// maxLine caps one go.sum line: a record is at most gosum.MaxRecordSize.
const maxLine = gosum.MaxRecordSize

// A Sorted is the lines of some go.sum files, checked and sorted by module
// version: the last run in memory, the others in temporary files. Scan
// reads them back paired into module versions, as often as needed. Close
// removes the files.
type Sorted struct {
	// Lines counts the go.sum lines read.
	Lines int

	files []string  // named by entry.file
	runs  []string  // temporary files, each sorted
	mems  [][]entry // runs in memory, each sorted: the last one read, and those Add added
	dir   string
}

// Sort reads the go.sum files, checks every line (a malformed one is an
// error naming its file and line) and sorts them by module version,
// holding at most about opts.MemoryBytes of them in memory. The files may
// be of any size and their lines in any order.
func Sort(files []string, opts Options) (_ *Sorted, err error) {
	if opts.MemoryBytes <= 0 {
		opts.MemoryBytes = DefaultMemoryBytes
	}
	s := &Sorted{files: files, dir: opts.TempDir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	var buf []entry
	size := 0
	for i, file := range files {
		err := readLines(file, func(line int, text []byte) error {
			e, err := parseEntry(text)
			if err != nil {
				return fmt.Errorf("%s: %w", Pos{file, line}, err)
			}
			e.file, e.line = int32(i), int32(line)
			s.Lines++
			buf = append(buf, e)
			if size += e.bytes(); size >= opts.MemoryBytes {
				if err := s.spill(buf); err != nil {
					return err
				}
				buf, size = buf[:0], 0
			}
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
	buf := make([]entry, 0, 2*len(recs))
	for i, r := range recs {
		if err := r.Check(); err != nil {
			return fmt.Errorf("%s: %w", Pos{name, i + 1}, err)
		}
		for _, goMod := range []bool{false, true} {
			e := entry{key: r.Key(), goMod: goMod, file: file, line: int32(i + 1)}
			h := r.Hash
			if goMod {
				h = r.GoMod
			}
			base64.StdEncoding.Decode(e.hash[:], []byte(h[len("h1:"):])) // r.Check checked it
			buf = append(buf, e)
		}
	}
	slices.SortFunc(buf, func(a, b entry) int { return compareEntries(&a, &b) })
	s.mems = append(s.mems, buf)
	return nil
}

// readLines calls f for every non-empty line of file, without its "\r\n"
// or "\n", numbered from 1.
func readLines(file string, f func(line int, text []byte) error) error {
	fh, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("failed to read go.sum file: %w", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		text := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(text) == 0 {
			continue
		}
		if err := f(n, text); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return fmt.Errorf("%s: line longer than %d bytes: not a go.sum line", Pos{file, n + 1}, maxLine)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("failed to read %s: %w", file, err)
	}
	return nil
}

// parseEntry parses and checks one go.sum line.
func parseEntry(text []byte) (entry, error) {
	l, err := gosum.ParseLine(string(text))
	if err != nil {
		return entry{}, err
	}
	e := entry{key: l.Path + "@" + l.Version.Version, goMod: l.GoMod}
	// ParseLine checked that the hash is exactly base64 of 32 bytes.
	if _, err := base64.StdEncoding.Decode(e.hash[:], []byte(l.Hash[len("h1:"):])); err != nil {
		return entry{}, err
	}
	return e, nil
}

// spill sorts buf and writes it to a new run.
func (s *Sorted) spill(buf []entry) error {
	slices.SortFunc(buf, func(a, b entry) int { return compareEntries(&a, &b) })
	f, err := scratch.Create(s.dir, scratch.Sort)
	if err != nil {
		return fmt.Errorf("failed to create a temporary file for sorting: %w", err)
	}
	s.runs = append(s.runs, f.Name())
	w := bufio.NewWriterSize(f, 256<<10)
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

// A run's encoding of an entry: the key's length (uvarint) and bytes, a
// flags byte (1: the go.mod line), the 32 bytes of the hash, then file and
// line (uvarints). Runs are sumd's own temporary files, read back by the
// process that wrote them.
func writeEntry(w *bufio.Writer, e *entry) {
	var b [3 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(b[:], uint64(len(e.key)))
	w.Write(b[:n])
	w.WriteString(e.key)
	flags := byte(0)
	if e.goMod {
		flags = 1
	}
	w.WriteByte(flags)
	w.Write(e.hash[:])
	n = binary.PutUvarint(b[:], uint64(e.file))
	n += binary.PutUvarint(b[n:], uint64(e.line))
	w.Write(b[:n])
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
	return rr, rr.err
}

// next reads the next entry into cur, or sets ok to false at the end.
func (rr *runReader) next() {
	rr.ok = false
	n, err := binary.ReadUvarint(rr.r)
	if err == io.EOF {
		return
	}
	key := make([]byte, n)
	if err == nil && n <= maxLine {
		_, err = io.ReadFull(rr.r, key)
	} else if err == nil {
		err = fmt.Errorf("key of %d bytes", n)
	}
	var flags byte
	if err == nil {
		flags, err = rr.r.ReadByte()
	}
	var e entry
	if err == nil {
		_, err = io.ReadFull(rr.r, e.hash[:])
	}
	var file, line uint64
	if err == nil {
		file, err = binary.ReadUvarint(rr.r)
	}
	if err == nil {
		line, err = binary.ReadUvarint(rr.r)
	}
	if err != nil {
		rr.err = fmt.Errorf("failed to read a temporary file for sorting: %w", noEOF(err))
		return
	}
	e.key, e.goMod, e.file, e.line = string(key), flags == 1, int32(file), int32(line)
	rr.cur, rr.ok = e, true
}

func (rr *runReader) close() { rr.f.Close() }

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
