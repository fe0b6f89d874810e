package tlog

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestRetiredKeysDamaged: a damaged list of retired keys (AuxRetiredKeys)
// is reported as damage (ErrCorrupt) by AddKey, RemoveKey and Copy, never
// read as some other list, where a retired key damaged into garbage, or
// run into its neighbour, would no longer be refused.
func TestRetiredKeysDamaged(t *testing.T) {
	ctx := context.Background()
	// The key hash must hold a letter, or the upper-case case below is the
	// very list it damages (a hash of digits only, about 2% of keys).
	retired := testKey(t, "sum.example.com")
	for upperHash(retired.VerifierKey()) == retired.VerifierKey() {
		retired = testKey(t, "sum.example.com")
	}
	vkey := retired.VerifierKey()
	for name, v := range map[string]string{
		"garbage":        "not a key\n",
		"flipped":        strings.Replace(vkey, "+", "-", 1) + "\n",
		"truncated":      vkey[:len(vkey)-3] + "\n",
		"run together":   vkey + " " + testKey(t, "sum.example.com").VerifierKey() + "\n",
		"no newline":     vkey,
		"empty line":     vkey + "\n\n",
		"duplicate":      vkey + "\n" + vkey + "\n",
		"upper-case hex": upperHash(vkey) + "\n",
		"too large":      strings.Repeat(vkey+"\n", maxRetiredSize/len(vkey)+1),
	} {
		t.Run(name, func(t *testing.T) {
			store := NewMemStore()
			k := testKey(t, "sum.example.com")
			l := openMem(t, store, k)
			defer l.Close()
			if err := store.SetAux(ctx, AuxRetiredKeys, []byte(v)); err != nil {
				t.Fatal(err)
			}
			if err := l.AddKey(ctx, retired); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "retired keys") {
				t.Errorf("AddKey with a damaged list = %v, want ErrCorrupt naming the retired keys", err)
			}
			if _, _, err := Copy(ctx, NewMemStore(), store, CopyOptions{}); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Copy from a damaged list = %v, want ErrCorrupt", err)
			}
		})
	}
}

// upperHash is vkey with its key hash in upper case, which note accepts.
func upperHash(vkey string) string {
	f := strings.Split(vkey, "+")
	f[1] = strings.ToUpper(f[1])
	return strings.Join(f, "+")
}

// FuzzParseRetired: a value of AuxRetiredKeys is refused as damage
// (ErrCorrupt), or is the list retiredValue writes of the keys it gives,
// byte for byte, each a canonical verifier key named once.
func FuzzParseRetired(f *testing.F) {
	_, a, _ := GenerateKey("sum.example.com")
	_, b, _ := GenerateKey("sum.example.com")
	f.Add([]byte(""))
	f.Add([]byte(a + "\n"))
	f.Add([]byte(a + "\n" + b + "\n"))
	f.Add([]byte(a + "\n" + a + "\n"))
	f.Add([]byte(a + " " + b + "\n"))
	f.Add([]byte(upperHash(a) + "\n"))
	f.Add([]byte(a + "\r\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, v []byte) {
		keys, err := parseRetired(v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parseRetired(%q) = %v, want ErrCorrupt", v, err)
			}
			return
		}
		if len(keys) == 0 {
			if len(v) != 0 {
				t.Fatalf("parseRetired(%q) accepted no keys", v)
			}
			return
		}
		if got := retiredValue(keys); !bytes.Equal(got, v) {
			t.Fatalf("parseRetired(%q) = %q, which re-encodes as %q", v, keys, got)
		}
		for _, k := range keys {
			if _, err := lostKey(k); err != nil {
				t.Fatalf("parseRetired(%q) accepted %q: %v", v, k, err)
			}
		}
	})
}
