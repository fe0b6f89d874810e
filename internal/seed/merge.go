package seed

import (
	"container/heap"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
)

// Scan reads the sorted lines back, merging the runs, and pairs them into
// module versions, in the order of their keys (path@version, bytewise: the
// order of the log's index, in which bbolt appends fastest). It calls rec
// for each version with both lines, with the place of its first line, and
// inc for each version with only one. Two hashes for one line, in one file
// or in two, are a *ConflictError naming both places, returned before the
// callbacks see that version; a version whose record would be larger than
// gosum.MaxRecordSize, with both lines or one, is a *LineError at its line. Scan stops at the first error; it may be
// called again, and reads the same versions in the same order.
func (s *Sorted) Scan(rec func(gosum.Record, Pos) error, inc func(Incomplete) error) error {
	m := &merger{}
	defer m.close()
	for _, r := range s.runs {
		rr, err := openRun(r)
		if err != nil {
			return err
		}
		m.add(rr)
	}
	for _, mem := range s.mems {
		m.add(&memReader{entries: mem})
	}
	var v version
	for m.Len() > 0 {
		e, err := m.pop()
		if err != nil {
			return err
		}
		if v.key != "" && v.key != e.key {
			if err := s.pair(&v, rec, inc); err != nil {
				return err
			}
			v = version{}
		}
		if err := s.add(&v, &e); err != nil {
			return err
		}
	}
	if v.key != "" {
		return s.pair(&v, rec, inc)
	}
	return nil
}

// A version is what Scan keeps of one module version's entries, which
// come sorted by their first place: the first entry with each line. A
// repeat that agrees with it is dropped, not kept (a version repeated in
// a million go.sum files takes no more memory than one); one that
// disagrees is a conflict at once.
type version struct {
	key   string
	first [2]entry // with the zip line, with the go.mod line
	has   [2]bool
}

// add adds e, an entry of v's key, to v.
func (s *Sorted) add(v *version, e *entry) error {
	v.key = e.key
	for kind, bit := range []uint8{hasZip, hasMod} {
		switch {
		case e.has&bit == 0:
		case !v.has[kind]:
			v.first[kind], v.has[kind] = *e, true
		case v.first[kind].hash[kind] != e.hash[kind]:
			return s.conflict(&v.first[kind], e, kind)
		}
	}
	return nil
}

// pair turns the lines of one module version into a record or an
// incomplete version.
func (s *Sorted) pair(v *version, rec func(gosum.Record, Pos) error, inc func(Incomplete) error) error {
	path, ver, _ := strings.Cut(v.key, "@")
	m := module.Version{Path: path, Version: ver}
	zip, mod := &v.first[0], &v.first[1]
	switch {
	case v.has[0] && v.has[1]:
		r := gosum.Record{Path: path, Version: ver, Hash: h1(zip.hash[0]), GoMod: h1(mod.hash[1])}
		// Sort bounds each line, not the two together: a long module path
		// makes lines that are each short enough a record too large for
		// any log, which would fail the sink's add half way through.
		if n := r.Size(); n > gosum.MaxRecordSize {
			return &LineError{s.pos(zip, 0), fmt.Errorf("%s: with its go.mod line (%s) the record would be %d bytes, more than the limit of %d", m, s.pos(mod, 1), n, gosum.MaxRecordSize)}
		}
		return rec(r, s.pos(zip, 0))
	}
	one := Incomplete{Version: m, Hash: h1(zip.hash[0]), At: s.pos(zip, 0)}
	if v.has[1] {
		one = Incomplete{Version: m, GoMod: true, Hash: h1(mod.hash[1]), At: s.pos(mod, 1)}
	}
	// Its record, whatever its other hash (all are as long), would be as
	// large: it could never be recorded, and its probe (Survey) is a record
	// the admin API refuses, failing sumd add -server where a local run
	// listed it.
	if n := one.probe().Size(); n > gosum.MaxRecordSize {
		return &LineError{one.At, fmt.Errorf("%s: its record would be %d bytes, more than the limit of %d", m, n, gosum.MaxRecordSize)}
	}
	return inc(one)
}

func (s *Sorted) conflict(first, then *entry, kind int) error {
	path, version, _ := strings.Cut(first.key, "@")
	line := path + " " + version
	if kind == 1 {
		line += "/go.mod"
	}
	return &ConflictError{Line: line, First: s.pos(first, kind), Then: s.pos(then, kind), Hashes: [2]string{h1(first.hash[kind]), h1(then.hash[kind])}}
}

// pos is where e's line of kind (0: zip, 1: go.mod) is.
func (s *Sorted) pos(e *entry, kind int) Pos { return Pos{s.files[e.file], int(e.line[kind])} }

// h1 formats a hash as go.sum does, in one allocation.
func h1(sum [32]byte) string {
	var b [3 + 44]byte
	copy(b[:], "h1:")
	base64.StdEncoding.Encode(b[3:], sum[:])
	return string(b[:])
}

// A source is a sorted run being merged.
type source interface {
	head() (*entry, bool) // the next entry, if any
	next()                // moves past it
	failed() error
	close()
}

func (rr *runReader) head() (*entry, bool) { return &rr.cur, rr.ok }
func (rr *runReader) failed() error        { return rr.err }

// A memReader is the run held in memory.
type memReader struct {
	entries []entry
	i       int
}

func (m *memReader) head() (*entry, bool) {
	if m.i < len(m.entries) {
		return &m.entries[m.i], true
	}
	return nil, false
}
func (m *memReader) next()         { m.i++ }
func (m *memReader) failed() error { return nil }
func (m *memReader) close()        {}

// A merger is a heap of sources ordered by their next entries.
type merger struct {
	srcs []source
	all  []source // to close
}

func (m *merger) add(s source) {
	m.all = append(m.all, s)
	if _, ok := s.head(); ok {
		heap.Push(m, s)
	}
}

// pop returns the least entry of all sources.
func (m *merger) pop() (entry, error) {
	s := m.srcs[0]
	e, _ := s.head()
	out := *e
	s.next()
	if err := s.failed(); err != nil {
		return entry{}, err
	}
	if _, ok := s.head(); ok {
		heap.Fix(m, 0)
	} else {
		heap.Pop(m)
	}
	return out, nil
}

func (m *merger) close() {
	for _, s := range m.all {
		s.close()
	}
}

func (m *merger) Len() int { return len(m.srcs) }
func (m *merger) Less(i, j int) bool {
	a, _ := m.srcs[i].head()
	b, _ := m.srcs[j].head()
	return compareEntries(a, b) < 0
}
func (m *merger) Swap(i, j int) { m.srcs[i], m.srcs[j] = m.srcs[j], m.srcs[i] }
func (m *merger) Push(x any)    { m.srcs = append(m.srcs, x.(source)) }
func (m *merger) Pop() any {
	x := m.srcs[len(m.srcs)-1]
	m.srcs = m.srcs[:len(m.srcs)-1]
	return x
}
