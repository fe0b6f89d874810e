package gosum

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

const (
	hashA = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	hashB = "h1:Ecm3bQzABmxvvAZb9E2gIS5T8SUqmmlBVHRj2vYSMC4="
)

func TestParseRoundTrip(t *testing.T) {
	for _, r := range []Record{
		{"example.com/m", "v1.0.0", hashA, hashB},
		{"example.com/!upper", "v1.2.3", hashA, hashB}, // escaped? no: paths are unescaped in records
		{"example.com/m/v2", "v2.0.0-20240101000000-abcdefabcdef", hashA, hashB},
		{"example.com/old", "v2.0.0+incompatible", hashA, hashB},
		{"golang.org/toolchain", "v0.0.1-go1.21.0.linux-amd64", hashA, hashB},
	} {
		got, err := Parse(r.Text())
		if strings.Contains(r.Path, "!") {
			// '!' is not allowed in a module path: records hold unescaped paths.
			if err == nil {
				t.Errorf("Parse(%q) succeeded, want error for escaped path", r.Text())
			}
			continue
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v", r.Text(), err)
		}
		if got != r {
			t.Errorf("Parse(%q) = %+v, want %+v", r.Text(), got, r)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	good := "example.com/m v1.0.0 " + hashA + "\nexample.com/m v1.0.0/go.mod " + hashB + "\n"
	for _, tc := range []struct{ text, want string }{
		{strings.TrimSuffix(good, "\n"), "newline"},
		{good + "example.com/m v1.0.1 " + hashA + "\n", "3 lines"},
		{"example.com/m v1.0.0 " + hashA + "\n", "1 lines"},
		{strings.Replace(good, "v1.0.0 ", "v1.0.0  ", 1), "malformed"},
		{strings.Replace(good, "v1.0.0/go.mod", "v1.0.1/go.mod", 1), "not the zip and go.mod lines"},
		{strings.Replace(good, "example.com/m v1.0.0/", "example.com/n v1.0.0/", 1), "not the zip and go.mod lines"},
		{strings.ReplaceAll(good, "v1.0.0", "v1.0"), "not canonical"},
		{strings.ReplaceAll(good, "v1.0.0", "v2.0.0"), "invalid version"},
		{strings.ReplaceAll(good, "example.com/m", "Example..com/m"), "malformed module path"},
		{strings.Replace(good, "h1:", "h2:", 1), "not an h1: hash"},
		{strings.Replace(good, hashA, "h1:AAAA", 1), "base64 of 32 bytes"},
		{strings.Replace(good, hashA, hashA[:len(hashA)-2]+"V=", 1), "base64 of 32 bytes"}, // non-canonical padding bits
		{strings.Repeat("x", MaxRecordSize+1), "limit"},
	} {
		_, err := Parse([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", tc.text, err, tc.want)
		}
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts
// round-trips byte for byte: one record has one text.
func FuzzParse(f *testing.F) {
	f.Add([]byte("example.com/m v1.0.0 " + hashA + "\nexample.com/m v1.0.0/go.mod " + hashB + "\n"))
	f.Add([]byte("example.com/m v1.0.0 h1:x\n\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		r, err := Parse(text)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Text(), text) {
			t.Fatalf("Parse(%q) accepted a text that formats back as %q", text, r.Text())
		}
	})
}

// FuzzParseLine checks that ParseLine never panics, that what it accepts
// formats back as the same line, and that a line of three fields with the
// hash of an empty go.mod file, whatever its path and version, is returned
// with ErrEmptyGoMod to be dropped, formatting back the same, and never
// refused as malformed.
func FuzzParseLine(f *testing.F) {
	f.Add("example.com/a v1.0.0 " + hashA)
	f.Add("example.com/a v1.0.0/go.mod " + hashB)
	f.Add("example.com/a v1.0 h1:x")
	f.Add("a  b c")
	f.Add("a b c d")
	f.Add("nodot v1.0/go.mod " + EmptyGoModHash)
	f.Add("example.com/a v1.0.0+incompatible/go.mod " + EmptyGoModHash)
	f.Add("example.com/a v1.0.0 " + EmptyGoModHash)
	f.Add(" \t" + "example.com/a\tv1.0.0/go.mod  " + EmptyGoModHash + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		_, splitErr := parseLine(s)
		f := strings.Split(s, " ")
		if fields := len(f) == 3 && f[0] != "" && f[1] != "" && f[2] != ""; fields != (splitErr == nil) {
			t.Fatalf("parseLine(%q) = %v, but the line has three fields: %v", s, splitErr, fields)
		}
		l, err := ParseLine(s)
		fields := strings.Fields(s)
		empty := len(s) <= MaxRecordSize && len(fields) == 3 && fields[2] == EmptyGoModHash
		if errors.Is(err, ErrEmptyGoMod) != empty {
			t.Fatalf("ParseLine(%q) = %v; a line with the empty go.mod hash: %v", s, err, empty)
		}
		if err != nil && !empty {
			if l != (Line{}) {
				t.Fatalf("ParseLine(%q) refused the line (%v) but returned %+v", s, err, l)
			}
			return
		}
		v := l.Version.Version
		if l.GoMod {
			v += "/go.mod"
		}
		if got, want := l.Path+" "+v+" "+l.Hash, strings.Join(strings.Fields(s), " "); got != want {
			t.Fatalf("ParseLine(%q) accepted a line that formats back as %q, not as its fields %q", s, got, want)
		}
	})
}

func TestParseLine(t *testing.T) {
	l, err := ParseLine("example.com/a v1.0.0/go.mod " + hashB)
	if err != nil || l.Path != "example.com/a" || l.Version.Version != "v1.0.0" || !l.GoMod || l.Hash != hashB {
		t.Errorf("ParseLine = %+v, %v", l, err)
	}
	for _, tc := range []struct{ line, want string }{
		{"example.com/a v1.0.0", "malformed go.sum line"},
		{"example.com/a v1.0.0 " + hashA + " x", "malformed go.sum line"},
		{"example.com/a v1.0 " + hashA, "not canonical"},
		{"example.com/a v1.0.0 h2:abc", "is not an h1: hash"},
		{"Example.com/A/V2 v1.0.0 " + hashA, "malformed module path"},
	} {
		if _, err := ParseLine(tc.line); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseLine(%q) = %v, want error containing %q", tc.line, err, tc.want)
		}
	}
}

// TestParseLineEmptyGoMod: a line with the hash of a go.mod of zero bytes,
// zip line or go.mod line, comes back parsed with ErrEmptyGoMod, for the
// caller to drop as the go command does (modfetch's emptyGoModHash).
func TestParseLineEmptyGoMod(t *testing.T) {
	const empty = "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="
	for _, s := range []string{"example.com/a v1.0.0/go.mod " + empty, "example.com/a v1.0.0 " + empty} {
		l, err := ParseLine(s)
		if !errors.Is(err, ErrEmptyGoMod) || l.Path != "example.com/a" || l.Hash != empty {
			t.Errorf("ParseLine(%q) = %+v, %v; want the line with ErrEmptyGoMod", s, l, err)
		}
	}
	// The go command drops such a line before it reads its path and
	// version (readGoSum), so a module path or version it would refuse
	// does not make the line malformed: it is dropped all the same, not
	// refused with the whole go.sum file.
	for _, s := range []string{
		"example.com/a v1.0.0+incompatible/go.mod " + empty,
		"example.com/a v1.0/go.mod " + empty,
		"nodot/a v1.0.0/go.mod " + empty,
	} {
		if _, err := ParseLine(s); !errors.Is(err, ErrEmptyGoMod) {
			t.Errorf("ParseLine(%q) = %v; want ErrEmptyGoMod (dropped, as the go command drops it)", s, err)
		}
	}
}

// TestParseLineAsGoCommand: ParseLine reads a go.sum line as the go command
// does (modfetch's readGoSum, strings.Fields): any run of white space
// separates the three fields. And it refuses the +incompatible versions the
// go command never makes, which module.Check lets through (modfetch's
// coderepo): one whose major version the path allows without it.
func TestParseLineAsGoCommand(t *testing.T) {
	for _, s := range []string{
		"example.com/a\tv1.0.0/go.mod\t" + hashB,
		"  example.com/a   v1.0.0/go.mod " + hashB + " \t\r",
	} {
		l, err := ParseLine(s)
		if err != nil || l.Path != "example.com/a" || l.Version.Version != "v1.0.0" || !l.GoMod || l.Hash != hashB {
			t.Errorf("ParseLine(%q) = %+v, %v; want the line the go command reads", s, l, err)
		}
	}
	for _, v := range [][2]string{
		{"example.com/m", "v2.0.0+incompatible"},
		{"example.com/m", "v3.1.0-rc.1+incompatible"},
	} {
		if _, err := ParseLine(v[0] + " " + v[1] + " " + hashA); err != nil {
			t.Errorf("ParseLine of %s@%s: %v, want it accepted (a major version without a go.mod)", v[0], v[1], err)
		}
	}
	for _, v := range [][2]string{
		{"example.com/m", "v1.0.0+incompatible"},
		{"example.com/m", "v0.3.0+incompatible"},
		{"example.com/m/v2", "v2.0.0+incompatible"},
		{"gopkg.in/yaml.v2", "v2.1.0+incompatible"},
	} {
		want := v[0] + "@" + v[1] + ": invalid version: +incompatible suffix not allowed: major version "
		if _, err := ParseLine(v[0] + " " + v[1] + "/go.mod " + hashB); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseLine of %s@%s: %v, want %q...", v[0], v[1], err, want)
		}
	}
}

// TestCheckNewModule: CheckNewModule refuses what CheckModule refuses, and
// the +incompatible versions ParseLine refuses, which CheckModule (for
// records other logs hold) accepts.
func TestCheckNewModule(t *testing.T) {
	for _, v := range [][2]string{
		{"example.com/m", "v1.0.0"},
		{"example.com/m", "v2.0.0+incompatible"},
		{"example.com/m", "v3.1.0-rc.1+incompatible"},
	} {
		if err := CheckNewModule(v[0], v[1]); err != nil {
			t.Errorf("CheckNewModule(%q, %q) = %v, want nil", v[0], v[1], err)
		}
	}
	for _, v := range [][2]string{
		{"example.com/m", "v1.0.0+incompatible"},
		{"example.com/m", "v0.3.0+incompatible"},
		{"example.com/m/v2", "v2.0.0+incompatible"},
	} {
		if err := CheckModule(v[0], v[1]); err != nil {
			t.Errorf("CheckModule(%q, %q) = %v, want nil (another log may hold it)", v[0], v[1], err)
		}
		want := v[0] + "@" + v[1] + ": invalid version: +incompatible suffix not allowed"
		if err := CheckNewModule(v[0], v[1]); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("CheckNewModule(%q, %q) = %v, want %q...", v[0], v[1], err, want)
		}
	}
	if err := CheckNewModule("example.com/m", "v1.0"); err == nil || !strings.Contains(err.Error(), "not canonical") {
		t.Errorf("CheckNewModule of v1.0 = %v, want not canonical", err)
	}
}

func ExampleRecord_Text() {
	r := Record{Path: "example.com/m", Version: "v1.0.0", Hash: hashA, GoMod: hashB}
	fmt.Print(string(r.Text()))
	// Output:
	// example.com/m v1.0.0 h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
	// example.com/m v1.0.0/go.mod h1:Ecm3bQzABmxvvAZb9E2gIS5T8SUqmmlBVHRj2vYSMC4=
}

// FuzzChecker holds a Checker to CheckModule's answers, whatever path it
// checked before: remembering a valid path changes nothing but the cost.
func FuzzChecker(f *testing.F) {
	f.Add("example.com/m", "v1.0.0", "example.com/m", "v1.0")
	f.Add("example.com/m/v2", "v2.0.0", "example.com/m/v2", "v1.0.0")
	f.Add("gopkg.in/yaml.v3", "v3.0.1", "gopkg.in/yaml.v3", "v2.0.0+incompatible")
	f.Add("example.com/old", "v2.0.0+incompatible", "example.com/old", "v2.0.0")
	f.Add("Example.com/m", "v1.0.0", "example.com/m", "v1.0.0-rc.1")
	f.Fuzz(func(t *testing.T, p1, v1, p2, v2 string) {
		var c Checker
		for _, m := range [][2]string{{p1, v1}, {p2, v2}, {p1, v2}, {p2, v1}} {
			got, want := c.Module(m[0], m[1]), CheckModule(m[0], m[1])
			if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
				t.Fatalf("Checker.Module(%q, %q) = %v, CheckModule = %v", m[0], m[1], got, want)
			}
		}
	})
}

// FuzzCheckHash holds checkHash to the definition it implements without
// allocating: "h1:" and the canonical standard base64 of 32 bytes.
func FuzzCheckHash(f *testing.F) {
	f.Add(hashA)
	f.Add("h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=")
	f.Add("h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSu\nFU=")
	f.Add("h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU")
	f.Fuzz(func(t *testing.T, h string) {
		b64, ok := strings.CutPrefix(h, "h1:")
		sum, err := base64.StdEncoding.Strict().DecodeString(b64)
		want := ok && err == nil && len(sum) == 32 && base64.StdEncoding.EncodeToString(sum) == b64
		if got := checkHash(h) == nil; got != want {
			t.Fatalf("checkHash(%q) accepts: %v, want %v", h, got, want)
		}
	})
}

// TestRecordSizeLimit: Check refuses a record whose text would exceed
// MaxRecordSize, with a valid module path, and Size is len(Text()).
func TestRecordSizeLimit(t *testing.T) {
	h := "h1:" + strings.Repeat("A", 43) + "="
	for _, n := range []int{900, 960, 975, 1500} {
		path := "example.com/" + strings.Repeat("a", n)
		r := Record{Path: path, Version: "v1.0.0", Hash: h, GoMod: h}
		if r.Size() != len(r.Text()) {
			t.Fatalf("Size = %d, len(Text()) = %d", r.Size(), len(r.Text()))
		}
		err := r.Check()
		if over := len(r.Text()) > MaxRecordSize; over != (err != nil) {
			t.Errorf("path of %d bytes, record of %d: Check = %v", len(path), len(r.Text()), err)
		}
		if err == nil {
			if _, perr := Parse(r.Text()); perr != nil {
				t.Errorf("Check accepts a record Parse refuses: %v", perr)
			}
		}
	}
}

// TestErrorsQuoteLittle: an error quotes at most the start of a bad line
// or hash, saying how long it was, and refuses a line longer than any
// record unread: a line of megabytes made an error (and each answer and
// log line holding it) of megabytes.
func TestErrorsQuoteLittle(t *testing.T) {
	junk := strings.Repeat("\x00", MaxRecordSize/2) // %q takes 4 bytes for each
	for _, line := range []string{
		junk,
		"example.com/m v1.0.0 h1:" + junk,
		"example.com/m v1.0.0 h2:" + junk,
		"example.com/m v1.0.0 " + strings.Repeat("h", 10<<20),
		"example.com/" + strings.Repeat("a", 10<<20) + " v1.0.0 " + hashA,
	} {
		_, err := ParseLine(line)
		if err == nil || len(err.Error()) > 1200 || !strings.Contains(err.Error(), " bytes") {
			t.Errorf("ParseLine of a %d-byte line = %.400v, want an error of at most 1,200 bytes saying how long the line or hash was", len(line), err)
		}
	}
	_, err := ParseMax([]byte(junk+"\n"+junk+"\n"), 1<<20)
	if err == nil || len(err.Error()) > 2400 {
		t.Errorf("ParseMax of a bad record = %.400v, want an error of at most 2,400 bytes", err)
	}
	// A long but real line (here with a field too many) is quoted whole.
	real := "github.com/some-organisation/some-repository/internal/sub/module v1.14.0-rc.1.0.20240101120000-abcdef012345 h1:" + strings.Repeat("A", 44) + " extra"
	if _, err := ParseLine(real); err == nil || !strings.Contains(err.Error(), strconv.Quote(real)) {
		t.Errorf("ParseLine of a %d-byte line = %v, want it quoted whole", len(real), err)
	}
}
