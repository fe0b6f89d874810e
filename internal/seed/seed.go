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
// only what cannot be trusted: a line that is not a go.sum line, two
// files disagreeing on a hash, or a version whose record would be larger
// than any log holds (gosum.MaxRecordSize). Complete can then fetch the incomplete
// versions from a module proxy, checking the hash the go.sum files do
// have, so that they can be recorded too. A line with the hash of an
// empty go.mod file, which old go commands wrote for non-modules, is
// dropped and counted, as the go command drops it.
//
// # Any size, bounded memory
//
// Sort streams the files line by line and sorts the lines by module
// version through temporary files (an external merge sort: runs of about
// Options.MemoryBytes each, in sumd's scratch directory), so that go.sum
// files of millions of lines in any order take bounded memory. Scan merges
// the runs and pairs the lines, as often as the caller needs: once to
// check every version against the log before anything is committed, once
// to commit. Versions come out in the order of their keys (path@version,
// bytewise), the order of the log's index, in which bbolt appends fastest;
// the log gives them ids in that order, not in the order of the files.
package seed

import (
	"context"
	"fmt"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
)

// A Set is what the go.sum files hold, paired into records.
type Set struct {
	// Records are the versions with both lines, in the order of their
	// keys (path@version).
	Records []gosum.Record
	// Incomplete are the versions with only one of the two lines, in the
	// same order.
	Incomplete []Incomplete
	// Lines counts the go.sum lines read, Ignored those dropped as the go
	// command drops them (Sorted.Ignored).
	Lines, Ignored int
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

// A LineError is a go.sum line that Sort refuses: malformed, or too long.
type LineError struct {
	At  Pos
	Err error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s: %v", e.At, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

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

// Read reads the go.sum files and pairs their lines, in memory: for the
// files of a repository or two. A malformed line or a conflicting hash is
// an error naming its file and line, and a file over gosum.MaxFileSize
// an error, so that a huge file cannot take all memory; nothing else is.
// Larger inputs use Sort and Scan, which take bounded memory.
func Read(files []string) (*Set, error) {
	s, err := Sort(context.Background(), files, Options{MemoryBytes: 1 << 62, MaxFileSize: gosum.MaxFileSize})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	set := &Set{Lines: s.Lines, Ignored: s.Ignored}
	err = s.Scan(func(r gosum.Record, _ Pos) error {
		set.Records = append(set.Records, r)
		return nil
	}, func(inc Incomplete) error {
		set.Incomplete = append(set.Incomplete, inc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}
