package sumdbclient

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func testRecordText(i int) []byte {
	return fmt.Appendf(nil, "example.com/m%d v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"+
		"example.com/m%d v1.0.0/go.mod h1:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=\n", i, i)
}

// appendDataTile appends records to a data tile in the protocol's format:
// each record's text followed by a blank line. Record texts end in a
// newline, so that is one more newline each.
func appendDataTile(tile []byte, records ...[]byte) []byte {
	for _, r := range records {
		tile = append(append(tile, r...), '\n')
	}
	return tile
}

// FuzzSplitDataTile checks that a data tile, which comes from an untrusted
// server, splits into exactly w records that rejoin to the tile, or is
// refused, and never panics.
func FuzzSplitDataTile(f *testing.F) {
	f.Add(append(testRecordText(0), '\n'), uint8(1))
	f.Add([]byte("a\n\n\nb\n\n"), uint8(2))
	f.Add([]byte("a\n\nb"), uint8(1))
	f.Add([]byte(""), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, w uint8) {
		recs, err := SplitDataTile(data, int(w))
		if err != nil {
			return
		}
		if len(recs) != int(w) {
			t.Fatalf("split into %d records, want %d", len(recs), w)
		}
		for _, r := range recs {
			if !bytes.HasSuffix(r, []byte("\n")) || bytes.Contains(r, []byte("\n\n")) {
				t.Fatalf("record %q is not newline-terminated record text", r)
			}
		}
		if joined := appendDataTile(nil, recs...); !bytes.Equal(joined, data) {
			t.Fatalf("records %q do not rejoin to the tile %q", recs, data)
		}
	})
}

// FuzzDataTileRoundTrip checks that a data tile formatted as x/mod does
// from any record texts it accepts splits back into exactly those texts.
func FuzzDataTileRoundTrip(f *testing.F) {
	f.Add(string(testRecordText(0)), string(testRecordText(1)))
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
		recs, err := SplitDataTile(tile, 2)
		if err != nil || string(recs[0]) != a || string(recs[1]) != b {
			t.Fatalf("split %q = %q, %v; want %q and %q", tile, recs, err, a, b)
		}
	})
}

// FuzzParseLookup checks that a lookup answer, from an untrusted server,
// parses into parts that x/mod's FormatRecord joins back into the answer,
// or is refused, and never panics.
func FuzzParseLookup(f *testing.F) {
	rec, _ := tlog.FormatRecord(7, testRecordText(7))
	f.Add(append(rec, "go.sum database tree\n8\nAAAA\n\n— sum.example.com AAAA\n"...))
	f.Add([]byte("1\n\n\nx"))
	f.Add([]byte("01\na\n\nb"))
	f.Add([]byte("-1\na\n\nb"))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := ParseLookup(body)
		if err != nil {
			return
		}
		msg, err := tlog.FormatRecord(a.ID, a.Record)
		if err != nil {
			t.Fatalf("parsed record %q is not one x/mod formats: %v", a.Record, err)
		}
		if !bytes.Equal(append(msg, a.Head...), body) {
			t.Fatalf("parts %d %q %q do not rejoin to %q", a.ID, a.Record, a.Head, body)
		}
	})
}

// FuzzTreeSize checks the two readers of a tree head's size, whose input
// comes from an untrusted server, against x/mod's own reading: whenever
// x/mod's note and tlog read a tree of more than MaxTreeSize records from
// it (after a lookup's record, which x/mod's client skips), CheckTreeSize
// refuses it, since x/mod's proofs of such a tree never return; Open
// returns only a tree the key signed, within its limit; neither panics.
func FuzzTreeSize(f *testing.F) {
	skey, vkey, err := note.GenerateKey(nil, "size.example")
	if err != nil {
		f.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		f.Fatal(err)
	}
	vs, err := ParseVerifiers(vkey)
	if err != nil {
		f.Fatal(err)
	}
	rec, _ := tlog.FormatRecord(7, testRecordText(7))
	for _, n := range []int64{0, 8, 1000, 1001, MaxTreeSize, MaxTreeSize + 1, 1<<63 - 1} {
		head := signedHead(f, skey, n)
		f.Add(head)
		f.Add(append(bytes.Clone(rec), head...))
	}
	f.Add([]byte("go.sum database tree\n+4611686018427387905\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— x AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if tree, ok := xmodTree(data); ok && tree.N > MaxTreeSize && CheckTreeSize(data) == nil {
			t.Fatalf("CheckTreeSize accepted %q, a tree of %d records", data, tree.N)
		}
		for _, v := range []*Verifiers{vs, vs.Limit(1000)} {
			tree, err := v.Open(data)
			if err != nil {
				continue
			}
			n, err := note.Open(data, note.VerifierList(verifier))
			if err != nil {
				t.Fatalf("Open accepted %q, which x/mod's note does not verify: %v", data, err)
			}
			want, err := tlog.ParseTree([]byte(n.Text))
			if err != nil || tree != want || tree.N > MaxTreeSize || v.max > 0 && tree.N > v.max {
				t.Fatalf("Open(%q) = %+v, x/mod's tree %+v, %v (limit %d)", data, tree, want, err, v.max)
			}
		}
	})
}

// xmodTree is the tree of the head in data, read as x/mod's client reads
// a lookup's answer or /latest, its signatures aside.
func xmodTree(data []byte) (tlog.Tree, bool) {
	if _, _, rest, err := tlog.ParseRecord(data); err == nil {
		data = rest
	}
	_, err := note.Open(data, note.VerifierList()) // no key: every note is unverified
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return tlog.Tree{}, false
	}
	tree, err := tlog.ParseTree([]byte(unverified.Note.Text))
	return tree, err == nil
}

// FuzzRecordShaped checks RecordShaped, which judges an untrusted body:
// only its first line (within maxRecordLine) counts, any line of three
// words whose last holds "algorithm:" is a record's shape, and it never
// panics.
func FuzzRecordShaped(f *testing.F) {
	f.Add(testRecordText(0), "example.com/m", "v1.0.0", "h1", "AAAA=")
	f.Add([]byte("<html>\n"), "a", "b", "c", "d")
	f.Add([]byte(""), "", "", "", "")
	f.Fuzz(func(t *testing.T, data []byte, mod, ver, alg, sum string) {
		first := data[:min(len(data), maxRecordLine)]
		if i := bytes.IndexByte(first, '\n'); i >= 0 {
			first = first[:i]
		}
		if got, want := RecordShaped(data), RecordShaped(first); got != want {
			t.Fatalf("RecordShaped(%q) = %v, but of its first line %v", data, got, want)
		}
		for _, w := range []string{mod, ver, alg, sum} {
			if w == "" || len(w) > 64 || strings.ContainsRune(w, ':') || strings.IndexFunc(w, unicode.IsSpace) >= 0 || !utf8.ValidString(w) {
				return
			}
		}
		line := mod + " " + ver + " " + alg + ":" + sum + "\n"
		if !RecordShaped([]byte(line + "more")) {
			t.Fatalf("RecordShaped(%q) = false for a go.sum line", line)
		}
	})
}
