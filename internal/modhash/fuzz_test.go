package modhash

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/dirhash"
)

// FuzzHashZip feeds arbitrary bytes as the zip (and .mod) of a version, as
// an upstream proxy, an upload or a registry may: HashZip refuses them, or
// returns h1 hashes that are dirhash's own and the same every time.
func FuzzHashZip(f *testing.F) {
	const pre = "example.com/m@v1.0.0/"
	zipOf := func(names ...string) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, name := range names {
			w, _ := zw.Create(name)
			w.Write([]byte("module example.com/m\n"))
		}
		zw.Close()
		return buf.Bytes()
	}
	f.Add(zipOf(pre+"go.mod", pre+"m.go"), []byte("module example.com/m\n"), true)
	f.Add(zipOf(pre+"go.mod"), []byte(nil), false)
	f.Add(zipOf(pre+"../x.go"), []byte(nil), false)
	f.Add(zipOf(pre+"a.go", pre+"A.go"), []byte(nil), false)
	f.Add(zipOf("other@v1.0.0/go.mod"), []byte("module other\n"), true)
	f.Add([]byte("PK\x05\x06"+strings.Repeat("\x00", 18)), []byte(nil), false)
	file := filepath.Join(f.TempDir(), "m.zip") // a worker runs one input at a time
	f.Fuzz(func(t *testing.T, data, goMod []byte, withMod bool) {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if !withMod {
			goMod = nil
		} else if goMod == nil {
			goMod = []byte{}
		}
		m := mv("example.com/m", "v1.0.0")
		sums, err := HashZip(m, file, goMod)
		// A zip held in memory (a small upload) gets the same answer.
		if inMemory, merr := HashZipData(m, data, goMod); inMemory != sums || (merr == nil) != (err == nil) {
			t.Fatalf("HashZipData = %+v, %v; HashZip = %+v, %v", inMemory, merr, sums, err)
		}
		if err != nil {
			return
		}
		want, err := dirhash.HashZip(file, dirhash.Hash1)
		if err != nil || sums.Hash != want || !strings.HasPrefix(sums.GoMod, "h1:") {
			t.Fatalf("HashZip = %+v, dirhash says %q, %v", sums, want, err)
		}
		if again, err := HashZip(m, file, goMod); err != nil || again != sums {
			t.Fatalf("second HashZip = %+v, %v; want %+v", again, err, sums)
		}
	})
}
