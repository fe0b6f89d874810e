package sumdbclient

import (
	"crypto/rand"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestSigners: of the keys given, those that signed a head, in the order
// given; Signer is the first of them, or the first key given if none did.
func TestSigners(t *testing.T) {
	var signers []note.Signer
	var vkeys []string
	for range 3 {
		skey, vkey, err := note.GenerateKey(rand.Reader, "sum.example.com")
		s, err2 := note.NewSigner(skey)
		if err != nil || err2 != nil {
			t.Fatal(err, err2)
		}
		signers, vkeys = append(signers, s), append(vkeys, vkey)
	}
	v, err := ParseVerifiers(vkeys[:2]...) // the third is not given
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		by      []note.Signer
		want    []string
		wantOne string
	}{
		{"the second", signers[1:2], vkeys[1:2], vkeys[1]},
		{"both, in the other order", []note.Signer{signers[1], signers[0]}, vkeys[:2], vkeys[0]},
		{"one not given", signers[2:], nil, vkeys[0]},
		{"the second and one not given", signers[1:], vkeys[1:2], vkeys[1]},
	} {
		msg, err := note.Sign(&note.Note{Text: "go.sum database tree\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"}, tc.by...)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Signers(msg); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Signers = %q, want %q", tc.name, got, tc.want)
		}
		if got := v.Signer(msg); got != tc.wantOne {
			t.Errorf("%s: Signer = %q, want %q", tc.name, got, tc.wantOne)
		}
	}
}

// TestSameKeyTwoSpellings: note takes a key's hash in either case, so one
// key could be given twice, spelled differently (from a .vkey file and
// typed by hand): two verifiers of one name and hash, which note refuses
// as ambiguous for every head, a signature problem however honest the
// database. The second spelling is the same key, and is dropped.
func TestSameKeyTwoSpellings(t *testing.T) {
	var skey, vkey, upper string
	for upper == vkey { // until the hash has a letter, to write in capitals
		var err error
		if skey, vkey, err = note.GenerateKey(rand.Reader, "sum.example.com"); err != nil {
			t.Fatal(err)
		}
		name, rest, _ := strings.Cut(vkey, "+")
		hash, key, _ := strings.Cut(rest, "+")
		upper = name + "+" + strings.ToUpper(hash) + "+" + key
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseVerifiers(vkey, upper)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "go.sum database tree\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Open(msg); err != nil || len(v.Keys()) != 1 {
		t.Errorf("keys %q: Open = %v; want one key that verifies", v.Keys(), err)
	}
}
