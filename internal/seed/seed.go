// Package seed imports the module versions of existing go.sum files into a
// checksum database: the quickest way to give a new log the versions a
// company already builds with.
//
// A go.sum file holds up to two lines per module version: the hash of the
// module zip and the hash of its go.mod file. A record needs both, and
// real go.sum files are full of versions with only one: the go command
// writes just the go.mod line for the many versions it needed only for
// version selection, and occasionally just the zip line. Read pairs the
// lines of many files into records, keeps every version that has only one
// line as an Incomplete entry (named by its file and line), and refuses
// only what cannot be trusted: a line that is not a go.sum line, or two
// files disagreeing on a hash. Complete can then fetch the incomplete
// versions from a module proxy, checking the hash the go.sum files do
// have, so that they can be recorded too.
//
// TODO(issue 11): Read holds every record of every file in memory, which
// is fine for the tens of thousands of lines of a monorepo; a log seeded
// with millions of records needs it to stream.
package seed

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
)

// A Set is what the go.sum files hold, paired into records.
type Set struct {
	// Records are the versions with both lines, in the order of their
	// first line across the files.
	Records []gosum.Record
	// Incomplete are the versions with only one of the two lines, in the
	// same order.
	Incomplete []Incomplete
	// Lines counts the go.sum lines read.
	Lines int
}

// An Incomplete is a module version with only one of its two go.sum lines:
// the zip line (GoMod is false) or the go.mod line (GoMod is true).
type Incomplete struct {
	module.Version
	GoMod bool   // the line present is the go.mod line
	Hash  string // its hash
	At    Pos    // where it is
}

// A Pos is a line of a go.sum file.
type Pos struct {
	File string
	Line int // from 1
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Describe says where the version is and which of its lines it lacks.
func (inc Incomplete) Describe() string {
	if inc.GoMod {
		return fmt.Sprintf("%s: %s has only a go.mod line (no zip hash)", inc.At, inc.Version)
	}
	return fmt.Sprintf("%s: %s has only a zip line (no go.mod hash)", inc.At, inc.Version)
}

// A ConflictError reports two different hashes for one go.sum line: in one
// file, or in two. Nothing can be imported from files that disagree.
type ConflictError struct {
	Line        string // "<path> <version>[/go.mod]"
	First, Then Pos
	Hashes      [2]string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s: %s has hash %s, but %s says %s", e.Then, e.Line, e.Hashes[1], e.First, e.Hashes[0])
}

// hashAt is one hash and the first line it was read from.
type hashAt struct {
	hash string
	at   Pos
}

// reader pairs the lines of the files read so far.
type reader struct {
	zips, mods map[module.Version]hashAt
	order      []module.Version // by first line
	lines      int
}

// Read reads the go.sum files and pairs their lines. A malformed line or a
// conflicting hash is an error naming its file and line; nothing else is.
func Read(files []string) (*Set, error) {
	r := &reader{zips: map[module.Version]hashAt{}, mods: map[module.Version]hashAt{}}
	for _, file := range files {
		data, err := readFile(file)
		if err != nil {
			return nil, err
		}
		if err := r.add(file, data); err != nil {
			return nil, err
		}
	}
	return r.set()
}

// readFile reads a go.sum file, capped at gosum.MaxFileSize.
func readFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("failed to read go.sum file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, gosum.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", file, err)
	}
	if len(data) > gosum.MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a go.sum file", file, gosum.MaxFileSize)
	}
	return data, nil
}

// add reads the lines of one file.
func (r *reader) add(file string, data []byte) error {
	for i, raw := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSuffix(string(raw), "\r")
		if s == "" {
			continue
		}
		at := Pos{file, i + 1}
		l, err := gosum.ParseLine(s)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		r.lines++
		hashes := r.zips
		if l.GoMod {
			hashes = r.mods
		}
		if prev, ok := hashes[l.Version]; ok {
			if prev.hash != l.Hash {
				return &ConflictError{Line: strings.TrimSuffix(s, " "+l.Hash), First: prev.at, Then: at, Hashes: [2]string{prev.hash, l.Hash}}
			}
			continue
		}
		if _, seen := r.zips[l.Version]; !seen {
			if _, seen := r.mods[l.Version]; !seen {
				r.order = append(r.order, l.Version)
			}
		}
		hashes[l.Version] = hashAt{l.Hash, at}
	}
	return nil
}

// set pairs the lines into records and incomplete versions.
func (r *reader) set() (*Set, error) {
	s := &Set{Lines: r.lines}
	for _, v := range r.order {
		zip, hasZip := r.zips[v]
		mod, hasMod := r.mods[v]
		switch {
		case hasZip && hasMod:
			rec := gosum.Record{Path: v.Path, Version: v.Version, Hash: zip.hash, GoMod: mod.hash}
			if err := rec.Check(); err != nil {
				return nil, fmt.Errorf("%s: %w", zip.at, err)
			}
			s.Records = append(s.Records, rec)
		case hasMod:
			s.Incomplete = append(s.Incomplete, Incomplete{Version: v, GoMod: true, Hash: mod.hash, At: mod.at})
		default:
			s.Incomplete = append(s.Incomplete, Incomplete{Version: v, Hash: zip.hash, At: zip.at})
		}
	}
	return s, nil
}
