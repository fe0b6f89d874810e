package tlog

import (
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// FuzzParseKey: a signing key file's text is refused, or gives a key whose
// verifier key parses, names the same database and verifies what the key
// signs. The text is never part of an error (it is a secret).
func FuzzParseKey(f *testing.F) {
	skey, vkey, err := GenerateKey("sum.example.com")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(skey)
	f.Add(skey + "\n")
	f.Add(vkey)
	f.Add("PRIVATE+KEY+sum.example.com+00000000+AQ")
	f.Add("PRIVATE+KEY+a+b+c+d")
	f.Fuzz(func(t *testing.T, text string) {
		k, err := ParseKey(text)
		if err != nil {
			if secret := strings.TrimSpace(text); len(secret) > 40 && strings.Contains(err.Error(), secret) {
				t.Fatalf("ParseKey error repeats the key: %v", err)
			}
			return
		}
		v, err := note.NewVerifier(k.VerifierKey())
		if err != nil || v.Name() != k.Name() || k.Name() == "" {
			t.Fatalf("ParseKey(%q): verifier key %q: %v", text, k.VerifierKey(), err)
		}
		msg, err := note.Sign(&note.Note{Text: "x\n"}, k.Signer())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
			t.Fatalf("ParseKey(%q): its verifier rejects its signature: %v", text, err)
		}
	})
}
