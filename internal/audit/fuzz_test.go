package audit

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// FuzzSplitDataTile checks that a data tile, which comes from an untrusted
// server, splits into exactly w records that rejoin to the tile, or is
// refused, and never panics.
func FuzzSplitDataTile(f *testing.F) {
	f.Add(append(testRecord(0).Text(), '\n'), uint8(1))
	f.Add([]byte("a\n\n\nb\n\n"), uint8(2))
	f.Add([]byte("a\n\nb"), uint8(1))
	f.Add([]byte(""), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, w uint8) {
		recs, err := splitDataTile(data, int(w))
		if err != nil {
			return
		}
		if len(recs) != int(w) {
			t.Fatalf("split into %d records, want %d", len(recs), w)
		}
		var joined []byte
		for _, r := range recs {
			if !bytes.HasSuffix(r, []byte("\n")) || bytes.Contains(r, []byte("\n\n")) {
				t.Fatalf("record %q is not newline-terminated record text", r)
			}
			joined = append(append(joined, r...), '\n')
		}
		if !bytes.Equal(joined, data) {
			t.Fatalf("records %q do not rejoin to the tile %q", recs, data)
		}
	})
}

// FuzzDataTileRoundTrip checks that a data tile formatted as x/mod does
// from any record texts it accepts splits back into exactly those texts.
func FuzzDataTileRoundTrip(f *testing.F) {
	f.Add(string(testRecord(0).Text()), string(testRecord(1).Text()))
	f.Add("a\n", "\nb\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		var tile []byte
		for _, text := range []string{a, b} {
			msg, err := tlog.FormatRecord(0, []byte(text))
			if err != nil {
				return
			}
			_, msg, _ = bytes.Cut(msg, []byte("\n")) // data tiles drop the id line
			tile = append(tile, msg...)
		}
		recs, err := splitDataTile(tile, 2)
		if err != nil || string(recs[0]) != a || string(recs[1]) != b {
			t.Fatalf("split %q = %q, %v; want %q and %q", tile, recs, err, a, b)
		}
	})
}

// FuzzParseGoSumLine checks that an accepted go.sum line is one the
// database could hold: its parts make a valid record line that parses back
// to the same thing.
func FuzzParseGoSumLine(f *testing.F) {
	r := testRecord(3)
	f.Add(r.Path + " " + r.Version + " " + r.Hash)
	f.Add(r.Path + " " + r.Version + "/go.mod " + r.GoMod)
	f.Add("example.com/m v1.0 h1:x")
	f.Add("  a  b  c  ")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseGoSumLine(s)
		if err != nil {
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
