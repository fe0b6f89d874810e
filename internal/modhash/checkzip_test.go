package modhash

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	modzip "golang.org/x/mod/zip"
)

// FuzzCheckZip holds checkVersion and checkZip, a copy of x/mod's CheckZip
// that checks a zip already open, to CheckZip itself: for any bytes as the zip of any
// version, the same files valid, the same invalid with the same reasons,
// and the same error. A seed that fails after an x/mod upgrade means the
// copy must follow a change in CheckZip.
func FuzzCheckZip(f *testing.F) {
	zipOf := func(names ...string) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, name := range names {
			w, _ := zw.Create(name)
			if !strings.HasSuffix(name, "/") {
				w.Write([]byte("module example.com/m\n"))
			}
		}
		zw.Close()
		return buf.Bytes()
	}
	const pre = "example.com/m@v1.0.0/"
	for _, names := range [][]string{
		{pre + "go.mod", pre + "m.go"},
		{pre + "go.mod", pre + "sub/", pre + "sub/s.go", pre + "sub/"},
		{pre + "a.go", pre + "A.go", pre + "k.go", pre + "\u212a.go"},
		{pre + "sub/go.mod", pre + "GO.MOD", pre + "Go.mod"},
		{pre + "../x.go", pre + "./x.go", pre + "a//b.go", pre, pre + "x/", pre + "x"},
		{pre + "x", pre + "x/", pre + "x/y.go", pre + "x.go", pre + "x.go"},
		{"example.com/m@v1.0.0", "other@v1.0.0/go.mod", pre + "con.go", pre + "a\x00b"},
	} {
		f.Add(zipOf(names...), "example.com/m", "v1.0.0")
	}
	f.Add(zipOf(pre+"go.mod"), "example.com/m", "v1.0")
	f.Add(zipOf(pre+"go.mod"), "example.com/m/v2", "v1.0.0")
	f.Add(zipOf("example.com/m@v2.0.0+incompatible/go.mod"), "example.com/m", "v2.0.0+incompatible")
	// Entries that claim sizes over CheckZip's limits (the directory says
	// so; the data is not there, which CheckZip never reads).
	type entry struct {
		name string
		size uint64
	}
	sized := func(entries ...entry) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, e := range entries {
			zw.CreateRaw(&zip.FileHeader{Name: pre + e.name, Method: zip.Store, UncompressedSize64: e.size})
		}
		zw.Close()
		return buf.Bytes()
	}
	f.Add(sized(entry{"LICENSE", modzip.MaxLICENSE + 1}, entry{"go.mod", modzip.MaxGoMod + 1}), "example.com/m", "v1.0.0")
	f.Add(sized(entry{"LICENSE", modzip.MaxLICENSE}, entry{"go.mod", modzip.MaxGoMod}), "example.com/m", "v1.0.0")
	f.Add(sized(entry{"a", modzip.MaxZipFile / 2}, entry{"b", modzip.MaxZipFile / 2}), "example.com/m", "v1.0.0")
	f.Add(sized(entry{"a", modzip.MaxZipFile / 2}, entry{"b", modzip.MaxZipFile/2 + 1}), "example.com/m", "v1.0.0")
	f.Add(sized(entry{"c", 1 << 63}), "example.com/m", "v1.0.0") // negative as an int64
	f.Add([]byte("PK\x05\x06"+strings.Repeat("\x00", 18)), "example.com/m", "v1.0.0")
	f.Add([]byte("not a zip"), "example.com/m", "v1.0.0")
	file := filepath.Join(f.TempDir(), "m.zip") // a worker runs one input at a time
	f.Fuzz(func(t *testing.T, data []byte, path, version string) {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		m := mv(path, version)
		want, wantErr := modzip.CheckZip(m, file)
		z, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			// checkZip is never given such a zip: HashZip has failed
			// already, as CheckZip does.
			if wantErr == nil {
				t.Fatalf("archive/zip refuses the zip (%v), CheckZip does not", err)
			}
			return
		}
		var got modzip.CheckedFiles
		gotErr := checkVersion(m)
		if gotErr == nil {
			got, gotErr = checkZip(m, z, int64(len(data)))
		}
		if errText(gotErr) != errText(wantErr) {
			t.Fatalf("checkZip error:\n%s\nCheckZip error:\n%s", errText(gotErr), errText(wantErr))
		}
		if !reflect.DeepEqual(got.Valid, want.Valid) || errText(got.SizeError) != errText(want.SizeError) || !sameFileErrors(got.Invalid, want.Invalid) {
			t.Fatalf("checkZip = %+v\nCheckZip = %+v", got, want)
		}
	})
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func sameFileErrors(a, b []modzip.FileError) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path || errText(a[i].Err) != errText(b[i].Err) {
			return false
		}
	}
	return true
}
