// Package gosum holds the record format of a Go checksum database: the two
// go.sum lines of one module version.
//
// A record is exactly
//
//	<path> <version> h1:<base64 SHA-256>\n
//	<path> <version>/go.mod h1:<base64 SHA-256>\n
//
// which is what sum.golang.org stores and what the go command compares with
// its own go.sum lines. The parser is strict: a checksum database must never
// hold a record the go command would read differently from how we do, so
// anything but this exact shape (a canonical module path and version, the
// "h1:" algorithm, single spaces, a final newline) is refused.
package gosum

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/module"
)

// MaxFileSize bounds a go.sum file read whole. Large monorepos have go.sum
// files of a few MiB; 64 MiB leaves ample room.
const MaxFileSize = 64 << 20

// MaxRecordSize bounds one record. Module paths are short in practice; the
// bound keeps a hostile input from growing the log or a parser's memory.
const MaxRecordSize = 2048

// A Record is one module version's pair of go.sum hashes.
type Record struct {
	Path    string // module path, as in go.mod
	Version string // canonical version
	Hash    string // "h1:..." hash of the module zip
	GoMod   string // "h1:..." hash of the go.mod file
}

// Key is path@version: the identity under which a checksum database holds
// exactly one record.
func (r Record) Key() string { return r.Path + "@" + r.Version }

// Text returns the record in log format (two lines, newline-terminated).
func (r Record) Text() []byte {
	return fmt.Appendf(nil, "%s %s %s\n%s %s/go.mod %s\n", r.Path, r.Version, r.Hash, r.Path, r.Version, r.GoMod)
}

// Check reports whether r is a well-formed record: a valid module path with
// a canonical version, and two well-formed h1 hashes.
func (r Record) Check() error {
	if err := CheckModule(r.Path, r.Version); err != nil {
		return err
	}
	if err := checkHash(r.Hash); err != nil {
		return fmt.Errorf("%s: zip hash: %w", r.Key(), err)
	}
	if err := checkHash(r.GoMod); err != nil {
		return fmt.Errorf("%s: go.mod hash: %w", r.Key(), err)
	}
	return nil
}

// CheckModule reports whether path@version may be recorded: the path is a
// valid module path whose major-version suffix agrees with the version, and
// the version is canonical (so that one module version has one key).
func CheckModule(path, version string) error {
	if err := module.Check(path, version); err != nil {
		return err
	}
	if module.CanonicalVersion(version) != version {
		return fmt.Errorf("%s@%s: version is not canonical (want %s)", path, version, module.CanonicalVersion(version))
	}
	return nil
}

// checkHash accepts exactly "h1:" followed by the standard base64 of 32 bytes.
func checkHash(h string) error {
	b64, ok := strings.CutPrefix(h, "h1:")
	if !ok {
		return fmt.Errorf("%q is not an h1: hash", h)
	}
	sum, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(sum) != 32 || base64.StdEncoding.EncodeToString(sum) != b64 {
		return fmt.Errorf("%q is not an h1: hash (want base64 of 32 bytes)", h)
	}
	return nil
}

// Parse parses and checks one record in log format.
func Parse(text []byte) (Record, error) {
	if len(text) > MaxRecordSize {
		return Record{}, fmt.Errorf("record is %d bytes, more than the limit of %d", len(text), MaxRecordSize)
	}
	body, ok := bytes.CutSuffix(text, []byte("\n"))
	if !ok {
		return Record{}, errors.New("record does not end in a newline")
	}
	lines := strings.Split(string(body), "\n")
	if len(lines) != 2 {
		return Record{}, fmt.Errorf("record has %d lines, want 2 go.sum lines", len(lines))
	}
	zip, err := parseLine(lines[0])
	if err != nil {
		return Record{}, err
	}
	mod, err := parseLine(lines[1])
	if err != nil {
		return Record{}, err
	}
	if mod.path != zip.path || mod.version != zip.version+"/go.mod" || zip.isGoMod() {
		return Record{}, fmt.Errorf("record lines %q and %q are not the zip and go.mod lines of one module version", lines[0], lines[1])
	}
	r := Record{Path: zip.path, Version: zip.version, Hash: zip.hash, GoMod: mod.hash}
	if err := r.Check(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// line is one go.sum line, split but not yet checked.
type line struct{ path, version, hash string }

func (l line) isGoMod() bool { return strings.HasSuffix(l.version, "/go.mod") }

// parseLine splits "path version hash" on single spaces.
func parseLine(s string) (line, error) {
	f := strings.Split(s, " ")
	if len(f) != 3 || f[0] == "" || f[1] == "" || f[2] == "" {
		return line{}, fmt.Errorf("malformed go.sum line %q (want \"<path> <version> h1:<hash>\")", s)
	}
	return line{f[0], f[1], f[2]}, nil
}

// A Line is one checked line of a go.sum file.
type Line struct {
	module.Version        // the module path and canonical version, without "/go.mod"
	GoMod          bool   // the go.mod line ("<version>/go.mod"), not the zip line
	Hash           string // "h1:<base64 SHA-256>"
}

// ParseLine parses and checks one go.sum line, "<path> <version>[/go.mod]
// h1:<hash>": a valid module path, a canonical version and a well-formed
// hash, as a record needs them.
func ParseLine(s string) (Line, error) {
	l, err := parseLine(s)
	if err != nil {
		return Line{}, err
	}
	version, goMod := strings.CutSuffix(l.version, "/go.mod")
	if err := CheckModule(l.path, version); err != nil {
		return Line{}, err
	}
	if err := checkHash(l.hash); err != nil {
		return Line{}, fmt.Errorf("%s@%s: %w", l.path, version, err)
	}
	return Line{Version: module.Version{Path: l.path, Version: version}, GoMod: goMod, Hash: l.hash}, nil
}
