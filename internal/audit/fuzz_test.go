package audit

import (
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
)

// SplitDataTile is fuzzed in internal/sumdbclient.

// FuzzParseGoSumLine checks that an accepted go.sum line is one the
// database could hold: its parts make a valid record line that parses back
// to the same thing. A line with the hash of an empty go.mod file, which is
// returned unchecked to be dropped, parses back to the same thing too.
func FuzzParseGoSumLine(f *testing.F) {
	r := testRecord(3)
	f.Add(r.Path + " " + r.Version + " " + r.Hash)
	f.Add(r.Path + " " + r.Version + "/go.mod " + r.GoMod)
	f.Add("example.com/m v1.0 h1:x")
	f.Add("  a  b  c  ")
	f.Add("nodot v1.0/go.mod " + gosum.EmptyGoModHash)
	f.Add("example.com/m v1.0.0+incompatible " + gosum.EmptyGoModHash)
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseGoSumLine(s)
		if err != nil {
			if f := strings.Fields(s); len(f) == 3 && f[2] == gosum.EmptyGoModHash {
				t.Fatalf("parseGoSumLine(%q) refused a line the go command drops unread: %v", s, err)
			}
			return
		}
		if strings.Join(strings.Fields(s), " ") != l.text() {
			t.Fatalf("line %q parsed as %q", s, l.text())
		}
		again, err := parseGoSumLine(l.text())
		if err != nil || again != l {
			t.Fatalf("re-parse of %q = %+v, %v", l.text(), again, err)
		}
	})
}
