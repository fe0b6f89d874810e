package mirror

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/seed"
)

// A Selection names the records a partial mirror holds: the module
// versions of go.sum files (fetched through the origin's /lookup, each
// proved by inclusion), and every version of the modules whose path
// matches a pattern (found by reading the data tiles, so the traffic of a
// full mirror for the disk of a partial one). Hash tiles are always held
// in full: the go command proves every lookup, and the consistency of
// every head it sees, from them. Patterns marked "!" exclude modules from
// both: their go.sum versions are never looked up (a company's private
// modules, which the go command never asks a checksum database about and
// whose paths an origin such as sum.golang.org must not learn), and
// their records in the data tiles never kept. A client's lookup of one is
// forwarded all the same: the go command asks only what its GONOSUMDB
// lets it.
type Selection struct {
	files    []string // go.sum files, read at each round (they change)
	patterns string   // comma-separated, for module.MatchPrefixPatterns
	excluded string   // the "!" patterns, likewise
}

// ParseSelection parses a -modules list: an entry ending in ".sum" is a
// go.sum file, one starting with "!" a module path pattern to exclude,
// any other a module path pattern in GOPRIVATE syntax (a glob matching a
// path prefix, such as golang.org/x/* or example.com/m).
func ParseSelection(entries []string) (*Selection, error) {
	s := new(Selection)
	var patterns, excluded []string
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case strings.HasPrefix(e, "!"):
			p := strings.TrimSpace(e[1:])
			if err := checkPattern(p); err != nil {
				return nil, err
			}
			excluded = append(excluded, p)
		case strings.HasSuffix(e, ".sum"):
			s.files = append(s.files, e)
		default:
			if err := checkPattern(e); err != nil {
				return nil, err
			}
			patterns = append(patterns, e)
		}
	}
	switch {
	case len(s.files) == 0 && len(patterns) == 0 && len(excluded) > 0:
		// Meant, likely, to keep private modules out of a full mirror,
		// which looks nothing up by path and so has nothing to exclude.
		return nil, errors.New("the module list is empty: its '!' entries only exclude modules from those its go.sum files and patterns select")
	case len(s.files) == 0 && len(patterns) == 0:
		return nil, errors.New("the module list is empty: name go.sum files (ending in .sum) or module path patterns")
	}
	s.patterns = strings.Join(patterns, ",")
	s.excluded = strings.Join(excluded, ",")
	return s, nil
}

// excludes reports whether module path is excluded ("!" patterns).
func (s *Selection) excludes(path string) bool {
	return s.excluded != "" && module.MatchPrefixPatterns(s.excluded, path)
}

// checkPattern refuses what could not match a module path: a glob of
// path elements separated by "/" (GOPRIVATE syntax).
func checkPattern(p string) error {
	bad := strings.ContainsAny(p, " ,@") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/")
	for elem := range strings.SplitSeq(p, "/") {
		if _, err := path.Match(elem, ""); err != nil || elem == "" {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("invalid module path pattern %q: want a path prefix glob such as golang.org/x/* (GOPRIVATE syntax)", p)
	}
	return nil
}

// Scans reports whether the selection has patterns: the mirror then reads
// every data tile, keeping the records that match.
func (s *Selection) Scans() bool { return s.patterns != "" }

// Match reports whether a record's module path matches a pattern. The
// record comes from the origin, verified or not; it is matched by its
// first line's path.
func (s *Selection) Match(record []byte) bool {
	if s.patterns == "" {
		return false
	}
	line, _, _ := bytes.Cut(record, []byte("\n"))
	path, _, ok := bytes.Cut(line, []byte(" "))
	return ok && module.MatchPrefixPatterns(s.patterns, string(path)) && !s.excludes(string(path))
}

// Versions reads the go.sum files and returns their module versions, each
// once, in order: those with both lines, and those with only one (the go
// command looks those up too), but for those excluded.
func (s *Selection) Versions() ([]module.Version, error) {
	if len(s.files) == 0 {
		return nil, nil
	}
	set, err := seed.Read(s.files)
	if err != nil {
		return nil, fmt.Errorf("failed to read the mirror's go.sum files: %w", err)
	}
	out := make([]module.Version, 0, len(set.Records)+len(set.Incomplete))
	for _, r := range set.Records {
		if !s.excludes(r.Path) {
			out = append(out, module.Version{Path: r.Path, Version: r.Version})
		}
	}
	for _, inc := range set.Incomplete {
		if !s.excludes(inc.Path) {
			out = append(out, inc.Version)
		}
	}
	return out, nil
}

// Describe lists the selection for logs: files and patterns.
func (s *Selection) Describe() string {
	parts := slices.Clone(s.files)
	if s.patterns != "" {
		parts = append(parts, s.patterns)
	}
	return strings.Join(parts, ",")
}
