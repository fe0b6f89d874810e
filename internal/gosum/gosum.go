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
// "h1:" algorithm, single spaces, a final newline) is refused. The lines of
// go.sum files (ParseLine) are split as the go command splits them.
package gosum

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
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
	// Appended by hand: this runs for every record of every import, and
	// fmt costs several times more.
	b := make([]byte, 0, 2*(len(r.Path)+len(r.Version)+3)+len(r.Hash)+len(r.GoMod)+len("/go.mod"))
	b = append(append(append(append(append(b, r.Path...), ' '), r.Version...), ' '), r.Hash...)
	b = append(append(append(append(append(b, '\n'), r.Path...), ' '), r.Version...), "/go.mod "...)
	return append(append(b, r.GoMod...), '\n')
}

// Check reports whether r is a well-formed record: a valid module path with
// a canonical version, and two well-formed h1 hashes.
func (r Record) Check() error { return new(Checker).Record(r) }

// A Checker checks many records or lines one after another, remembering
// the last module path it found valid: checking the path is most of the
// cost of checking a record, and the versions of one module come one after
// another in go.sum files and in sorted input. Its zero value is ready; it
// is not safe for concurrent use.
type Checker struct {
	path  string // the last path module.CheckPath accepted, if valid
	valid bool
}

// Module is CheckModule, remembering the path.
func (c *Checker) Module(path, version string) error {
	if !c.valid || path != c.path {
		if err := module.CheckPath(path); err != nil {
			return err
		}
		c.path, c.valid = path, true
	}
	// What module.Check does beyond module.CheckPath, for a valid path.
	// FuzzChecker holds the two to the same answers.
	if !semver.IsValid(version) {
		return &module.ModuleError{Path: path, Err: &module.InvalidVersionError{Version: version, Err: errors.New("not a semantic version")}}
	}
	_, pathMajor, _ := module.SplitPathVersion(path)
	if err := module.CheckPathMajor(version, pathMajor); err != nil {
		return &module.ModuleError{Path: path, Err: err}
	}
	return checkCanonical(path, version)
}

// Size is len(r.Text()), without making the text.
func (r Record) Size() int {
	return 2*(len(r.Path)+len(r.Version)) + len(r.Hash) + len(r.GoMod) + len("  \n /go.mod \n")
}

// Record is Record.Check, remembering the path.
func (c *Checker) Record(r Record) error {
	// Readers (Parse, mirrors, bundles) refuse a record over the limit: one
	// must never be written (a valid module path may be 2,000 bytes long).
	if n := r.Size(); n > MaxRecordSize {
		return fmt.Errorf("%s: the record would be %d bytes, more than the limit of %d", r.Key(), n, MaxRecordSize)
	}
	return c.content(r)
}

// content is Record without the size limit.
func (c *Checker) content(r Record) error {
	if err := c.Module(r.Path, r.Version); err != nil {
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
	return checkCanonical(path, version)
}

// CheckNewModule is CheckModule for a version sumd is to record as a new
// record (fetched, uploaded, added as go.sum lines, or looked up for the
// first time): it also refuses a +incompatible version the go command
// never makes (checkIncompatible), which no go command would look up.
// Where sumd copies a record another log holds (mirrors, bundles, verify),
// CheckModule and Checker.Module still accept it: that log's record is
// not sumd's to judge.
func CheckNewModule(path, version string) error {
	if err := CheckModule(path, version); err != nil {
		return err
	}
	return checkIncompatible(path, version)
}

func checkCanonical(path, version string) error {
	if module.CanonicalVersion(version) != version {
		return fmt.Errorf("%s@%s: version is not canonical (want %s)", path, version, module.CanonicalVersion(version))
	}
	return nil
}

var strictBase64 = base64.StdEncoding.Strict()

// checkHash accepts exactly "h1:" followed by the standard base64 of 32 bytes.
func checkHash(h string) error {
	b64, ok := strings.CutPrefix(h, "h1:")
	if !ok {
		return fmt.Errorf("%s is not an h1: hash", quote(h))
	}
	// 44 characters that decode, strictly (zero padding bits), to 32 bytes
	// are the one encoding of those bytes, unless the decoder skipped
	// newlines, which it ignores.
	if len(b64) == 44 && !strings.ContainsAny(b64, "\r\n") {
		var src [44]byte
		var sum [33]byte // DecodedLen(44)
		copy(src[:], b64)
		if n, err := strictBase64.Decode(sum[:], src[:]); err == nil && n == 32 {
			return nil
		}
	}
	return fmt.Errorf("%s is not an h1: hash (want base64 of 32 bytes)", quote(h))
}

// Parse parses and checks one record in log format.
func Parse(text []byte) (Record, error) { return ParseMax(text, MaxRecordSize) }

// ParseMax is Parse with max in place of MaxRecordSize. It reads other
// logs' records (sumd verify), which the protocol does not limit: a valid
// module path may be longer than sumd records, and a log that holds one is
// not malformed for it.
func ParseMax(text []byte, max int) (Record, error) {
	if len(text) > max {
		return Record{}, fmt.Errorf("record is %d bytes, more than the limit of %d", len(text), max)
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
		return Record{}, fmt.Errorf("record lines %s and %s are not the zip and go.mod lines of one module version", quote(lines[0]), quote(lines[1]))
	}
	r := Record{Path: zip.path, Version: zip.version, Hash: zip.hash, GoMod: mod.hash}
	if err := new(Checker).content(r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// maxQuoted caps what an error quotes of its input: an error quoting a
// line of megabytes whole is as large, and so is every answer and log line
// that holds it. Real go.sum lines are shorter, and are quoted whole: the
// person fixing one needs to see it.
const maxQuoted = 256

// quote is s quoted (%q), cut to its first maxQuoted bytes if longer, with
// its length.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:n], len(s))
}

// line is one go.sum line, split but not yet checked.
type line struct{ path, version, hash string }

func (l line) isGoMod() bool { return strings.HasSuffix(l.version, "/go.mod") }

// parseLine splits "path version hash" on single spaces.
func parseLine(s string) (line, error) {
	path, rest, ok1 := strings.Cut(s, " ")
	version, hash, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || path == "" || version == "" || hash == "" || strings.IndexByte(hash, ' ') >= 0 {
		return line{}, fmt.Errorf("malformed go.sum line %s (want \"<path> <version> h1:<hash>\")", quote(s))
	}
	return line{path, version, hash}, nil
}

// EmptyGoModHash is the hash of a go.mod file of zero bytes. A bug of old
// go commands wrote it into go.sum files as the go.mod line of non-modules,
// and every go command since drops any go.sum line with this hash as it
// reads the file (cmd/go/internal/modfetch/fetch.go, emptyGoModHash).
const EmptyGoModHash = "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="

// ErrEmptyGoMod is ParseLine's error for a well-formed line whose hash is
// EmptyGoModHash. A reader of go.sum files must drop the line, as the go
// command does: recorded, it would be a go.mod hash no go command agrees
// with, and it contradicts the real go.mod line of the same version.
var ErrEmptyGoMod = errors.New("the hash of an empty go.mod file, which old go commands wrote for non-modules: the go command ignores the line")

// A Line is one checked line of a go.sum file.
type Line struct {
	module.Version        // the module path and canonical version, without "/go.mod"
	GoMod          bool   // the go.mod line ("<version>/go.mod"), not the zip line
	Hash           string // "h1:<base64 SHA-256>"
}

// Name is the line without its hash, as go.sum writes it:
// "<path> <version>[/go.mod]".
func (l Line) Name() string {
	if l.GoMod {
		return l.Path + " " + l.Version.Version + "/go.mod"
	}
	return l.Path + " " + l.Version.Version
}

// ParseLine parses and checks one go.sum line, "<path> <version>[/go.mod]
// h1:<hash>": a valid module path, a canonical version and a well-formed
// hash, as a record needs them. The fields are split as the go command
// splits them (cmd/go/internal/modfetch's readGoSum: strings.Fields), so
// that a line means to sumd what it means to the go command: any run of
// white space separates them, and white space around them is ignored. A
// version with "+incompatible" is refused where the go command never makes
// one, which module.Check lets through (as CheckNewModule). A line of
// three fields with EmptyGoModHash is returned, its path and version
// unchecked, with ErrEmptyGoMod (wrapped): the caller drops it, as the go
// command does whatever they are.
func ParseLine(s string) (Line, error) { return new(Checker).ParseLine(s) }

// ParseLine is the package's ParseLine, remembering the path.
func (c *Checker) ParseLine(s string) (Line, error) {
	// A line longer than a record cannot be half of one; refused unread,
	// its module path is not checked (module.CheckPath takes any length)
	// nor quoted whole by the error.
	if len(s) > MaxRecordSize {
		return Line{}, fmt.Errorf("go.sum line of %d bytes: a record is at most %d", len(s), MaxRecordSize)
	}
	f := strings.Fields(s)
	if len(f) != 3 {
		return Line{}, fmt.Errorf("malformed go.sum line %s (want \"<path> <version> h1:<hash>\")", quote(s))
	}
	l := line{f[0], f[1], f[2]}
	version, goMod := strings.CutSuffix(l.version, "/go.mod")
	parsed := Line{Version: module.Version{Path: l.path, Version: version}, GoMod: goMod, Hash: l.hash}
	// The go command drops the line whichever it is (no zip has this hash
	// either: a zip's hash names its files path@version/...), before it
	// looks at its path and version: one it would refuse does not make the
	// line, nor its go.sum file, malformed. The fields are then unchecked.
	if l.hash == EmptyGoModHash {
		return parsed, fmt.Errorf("%s@%s: %w", l.path, version, ErrEmptyGoMod)
	}
	if err := c.Module(l.path, version); err != nil {
		return Line{}, err
	}
	if err := checkIncompatible(l.path, version); err != nil {
		return Line{}, err
	}
	if err := checkHash(l.hash); err != nil {
		return Line{}, fmt.Errorf("%s@%s: %w", l.path, version, err)
	}
	return parsed, nil
}

// checkIncompatible refuses a +incompatible version of a module whose path
// allows its major version without the suffix: v0 or v1 (example.com/m
// v1.0.0+incompatible) or the path's own major version (example.com/m/v2
// v2.0.0+incompatible). module.Check accepts both, but the go command
// never resolves such a version (modfetch's codeRepo.convert: "+incompatible
// suffix not allowed"), so no go command would look up its record.
func checkIncompatible(path, version string) error {
	base, ok := strings.CutSuffix(version, "+incompatible")
	if !ok {
		return nil
	}
	_, pathMajor, _ := module.SplitPathVersion(path)
	if !module.MatchPathMajor(base, pathMajor) {
		return nil
	}
	return &module.ModuleError{Path: path, Err: &module.InvalidVersionError{Version: version,
		Err: fmt.Errorf("+incompatible suffix not allowed: major version %s is compatible", semver.Major(base))}}
}
