package gosum

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
)

// MaxFileSize bounds a go.sum file read by ParseFile callers. Large
// monorepos have go.sum files of a few MiB; 64 MiB leaves ample room.
const MaxFileSize = 64 << 20

// A File is the content of a go.sum file, paired into records.
type File struct {
	// Records holds every module version that has both its zip line and its
	// go.mod line, in the order of their first line in the file.
	Records []Record
	// GoModOnly lists path@version keys that have only a go.mod line. The go
	// command writes such lines for modules it needed only for version
	// selection; they cannot become records, which need both hashes.
	GoModOnly []string
}

// ParseFile parses a go.sum file. Blank lines are ignored; a repeated line is
// fine, but two different hashes for the same line are an error, as is any
// malformed line, named by its line number.
func ParseFile(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("go.sum is %d bytes, more than the limit of %d", len(data), MaxFileSize)
	}
	zips := map[string]string{} // path@version -> zip hash
	mods := map[string]string{} // path@version -> go.mod hash
	var order []string
	for i, raw := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSuffix(string(raw), "\r")
		if s == "" {
			continue
		}
		l, err := parseLine(s)
		if err != nil {
			return nil, fmt.Errorf("go.sum line %d: %w", i+1, err)
		}
		hashes := zips
		version := l.version
		if v, ok := strings.CutSuffix(version, "/go.mod"); ok {
			hashes, version = mods, v
		}
		key := l.path + "@" + version
		if prev, ok := hashes[key]; ok && prev != l.hash {
			return nil, fmt.Errorf("go.sum line %d: %s has two different hashes, %s and %s", i+1, s[:len(s)-len(l.hash)-1], prev, l.hash)
		}
		if _, ok := zips[key]; !ok {
			if _, ok := mods[key]; !ok {
				order = append(order, key)
			}
		}
		hashes[key] = l.hash
	}
	return pair(order, zips, mods)
}

// pair joins zip and go.mod lines into records and checks each one.
func pair(order []string, zips, mods map[string]string) (*File, error) {
	f := new(File)
	for _, key := range order {
		path, version, _ := strings.Cut(key, "@")
		zip, hasZip := zips[key]
		mod, hasMod := mods[key]
		switch {
		case hasZip && hasMod:
			r := Record{Path: path, Version: version, Hash: zip, GoMod: mod}
			if err := r.Check(); err != nil {
				return nil, fmt.Errorf("go.sum: %w", err)
			}
			f.Records = append(f.Records, r)
		case hasMod:
			f.GoModOnly = append(f.GoModOnly, key)
		default:
			return nil, fmt.Errorf("go.sum: %s has a zip hash but no go.mod hash", key)
		}
	}
	sort.Strings(f.GoModOnly)
	return f, nil
}
