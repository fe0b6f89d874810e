package audit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sumd-project/sumd/internal/gosum"
)

// A sumLine is one line of a go.sum file.
type sumLine struct {
	file    string
	num     int    // line number, from 1
	path    string // module path
	version string // version, without "/go.mod"
	goMod   bool   // a "/go.mod" line: the hash of the go.mod file only
	oneLine bool   // the only line of its version in the file (no zip line, or no go.mod line)
	hash    string
}

// text is the line as the database's lookup answer would spell it.
func (l sumLine) text() string { return l.path + " " + l.lookupVersion() + " " + l.hash }

// lookupVersion is the version as sumdb.Client.Lookup takes it.
func (l sumLine) lookupVersion() string {
	if l.goMod {
		return l.version + "/go.mod"
	}
	return l.version
}

func (l sumLine) where() string { return fmt.Sprintf("%s:%d", l.file, l.num) }

// readGoSum reads the lines of a go.sum file. A line that is not a go.sum
// line is a problem, not an error: go.sum files are checked, not trusted.
// A line with the hash of an empty go.mod file is skipped.
func readGoSum(file string) ([]sumLine, []Problem, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read go.sum file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, gosum.MaxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read %s: %w", file, err)
	}
	if len(data) > gosum.MaxFileSize {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes: not a go.sum file", file, gosum.MaxFileSize)
	}
	var lines []sumLine
	var probs []Problem
	for i, raw := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSuffix(string(raw), "\r")
		if strings.TrimSpace(s) == "" {
			continue
		}
		l, err := parseGoSumLine(s)
		l.file, l.num = file, i+1
		if err != nil {
			probs = append(probs, Problem{Kind: KindGosumMalformed, File: file, Line: i + 1,
				Message: fmt.Sprintf("%s: %v", l.where(), err)})
			continue
		}
		if l.hash == gosum.EmptyGoModHash {
			continue // dropped, as the go command and sumd add -gosum drop it (gosum.ErrEmptyGoMod)
		}
		lines = append(lines, l)
	}
	markOneLine(lines)
	return lines, probs, nil
}

// markOneLine marks the lines of versions that have only one of their two
// lines in the file: sumd add -gosum could not record those.
func markOneLine(lines []sumLine) {
	zips, mods := map[string]bool{}, map[string]bool{}
	for _, l := range lines {
		if l.goMod {
			mods[l.path+"@"+l.version] = true
		} else {
			zips[l.path+"@"+l.version] = true
		}
	}
	for i, l := range lines {
		key := l.path + "@" + l.version
		lines[i].oneLine = !zips[key] || !mods[key]
	}
}

// parseGoSumLine parses "<path> <version>[/go.mod] h1:<hash>". Like the
// go command it splits on any run of spaces; unlike it, it also checks the
// path, the version and the hash, since a line that cannot be a record
// cannot match one. A line of three fields with gosum.EmptyGoModHash is
// returned unchecked, whatever its path and version, to be dropped.
func parseGoSumLine(s string) (sumLine, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return sumLine{}, fmt.Errorf("malformed go.sum line %q: want \"<path> <version> h1:<hash>\"", quoteCap(s))
	}
	l := sumLine{path: f[0], hash: f[2]}
	l.version, l.goMod = strings.CutSuffix(f[1], "/go.mod")
	if l.hash == gosum.EmptyGoModHash {
		// The go command drops the line before it looks at its path and
		// version (readGoSum), so one it would refuse does not make the
		// line malformed: returned unchecked, for readGoSum to drop.
		return l, nil
	}
	if err := gosum.CheckModule(l.path, l.version); err != nil {
		return sumLine{}, fmt.Errorf("malformed go.sum line %q: %w", quoteCap(s), err)
	}
	// With the module checked, Record.Check can only fail on the hash; the
	// line's one hash stands in for both of a record's.
	rec := gosum.Record{Path: l.path, Version: l.version, Hash: l.hash, GoMod: l.hash}
	if rec.Check() != nil {
		return sumLine{}, fmt.Errorf("malformed go.sum line %q: the hash is not h1: and the base64 of 32 bytes", quoteCap(s))
	}
	return l, nil
}

// quoteCap shortens a line for an error message.
func quoteCap(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
