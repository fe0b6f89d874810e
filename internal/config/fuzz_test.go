package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// FuzzLoadFile: any YAML file is refused with an error naming it, or its
// values are read; a configuration that validates is the same every time,
// and flags still override it.
func FuzzLoadFile(f *testing.F) {
	example, err := os.ReadFile("testdata/sumd.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	for _, s := range []string{
		"max-batch: 3\n", "listen_addr: x\n", "shutdown-timeout: 10\n", "registry: [a, b]\n",
		"registry: {a: b}\n", "db: [1]\n", "a: &x [*x]\n", "---\n---\n", "db: !!binary AAAA\n", "~\n",
	} {
		f.Add(s)
	}
	// One file per fuzz worker, which runs its inputs one at a time.
	file := filepath.Join(f.TempDir(), "sumd.yaml")
	f.Fuzz(func(t *testing.T, yaml string) {
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		// Reading the file: any failure names it.
		raw := defaultServe()
		if _, _, err := load(serveCommand, &raw, []string{"-config", file}, nil, io.Discard); err != nil {
			if !strings.Contains(err.Error(), file) {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		c, _, err := LoadServe([]string{"-config", file}, nil, io.Discard)
		if err != nil {
			return // Validate's, about values that parsed
		}
		again, _, err := LoadServe([]string{"-config", file}, nil, io.Discard)
		if err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("second load: %+v, %v; want %+v", again, err, c)
		}
		flagged, _, err := LoadServe([]string{"-config", file, "-max-batch", "7"}, nil, io.Discard)
		if err != nil || flagged.MaxBatch != 7 {
			t.Fatalf("-max-batch 7 over the file: %+v, %v", flagged, err)
		}
	})
}

// FuzzParseVerifierKeyFile: a .vkey file is refused, or gives keys x/mod
// accepts; one holding a private key is always refused, as ErrPrivateKey.
func FuzzParseVerifierKeyFile(f *testing.F) {
	f.Add([]byte("sum.example.com+2f9172d4+AabRYb7YzQCYm4Wf/lXgSEnAcuUNx62qJaAJYCoJ7nGV\n"))
	f.Add([]byte("a+2f9172d4+AabRYb7YzQCYm4Wf/lXgSEnAcuUNx62qJaAJYCoJ7nGV b+00000000+AabRYb7YzQCYm4Wf/lXgSEnAcuUNx62qJaAJYCoJ7nGV"))
	f.Add([]byte("PRIVATE+KEY+sum.example.com+2f9172d4+AQ\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vkeys, err := ParseVerifierKeyFile(data)
		if IsPrivateKey(string(data)) {
			if !errors.Is(err, ErrPrivateKey) {
				t.Fatalf("ParseVerifierKeyFile of a private key: %v, %v", vkeys, err)
			}
			return
		}
		if err != nil {
			return
		}
		if len(vkeys) == 0 {
			t.Fatal("accepted no key")
		}
		for _, v := range vkeys {
			if _, err := note.NewVerifier(v); err != nil {
				t.Fatalf("accepted %q: %v", v, err)
			}
		}
	})
}
