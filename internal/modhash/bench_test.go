package modhash

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkHashZipSmall hashes the zip of a small module, two files as
// most are, the part of a first lookup's cost (issue 11) that is
// modhash's: system calls more than hashing.
func BenchmarkHashZipSmall(b *testing.B) {
	m := mv("example.com/m", "v1.0.0")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range map[string]string{"go.mod": "module example.com/m\n\ngo 1.21\n", "m.go": "package m\n\nconst V = \"v1.0.0\"\n"} {
		w, err := zw.Create(m.Path + "@" + m.Version + "/" + name)
		if err != nil {
			b.Fatal(err)
		}
		w.Write([]byte(data))
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	name := filepath.Join(b.TempDir(), "m.zip")
	if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HashZip(m, name, nil); err != nil {
			b.Fatal(err)
		}
	}
}
