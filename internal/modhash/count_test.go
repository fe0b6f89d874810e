package modhash

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/sync/semaphore"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// zipOfEmpty is a zip of n empty stored files under example.com/m@v1.0.0/,
// the first of them go.mod, with prefix bytes before it which its offsets
// do not count (as in a self-extracting archive).
func zipOfEmpty(t testing.TB, n int, prefix string) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(prefix)
	zw := zip.NewWriter(&buf)
	for i := range n {
		name := fmt.Sprintf("example.com/m@v1.0.0/f%d", i)
		data := ""
		if i == 0 {
			name, data = "example.com/m@v1.0.0/go.mod", "module example.com/m\n"
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// declare rewrites the number of entries a zip64 zip declares.
func declare(t testing.TB, data []byte, n uint64) []byte {
	t.Helper()
	data = bytes.Clone(data)
	loc := len(data) - directoryEndLen - directory64LocLen
	if binary.LittleEndian.Uint32(data[loc:]) != directory64LocSignature {
		t.Fatal("not a zip64 zip")
	}
	end := binary.LittleEndian.Uint64(data[loc+8:])
	binary.LittleEndian.PutUint64(data[end+24:], n) // this disk's
	binary.LittleEndian.PutUint64(data[end+32:], n)
	return data
}

// fakeDirectory is a zip of 3 entries whose offsets do not count a prefix
// that holds, where the zip's directory offset points, 65,539 empty
// directory headers: archive/zip, finding a header there, reads those
// (65,539 is 3 modulo 65536) and none of the 3.
func fakeDirectory(t testing.TB) []byte {
	t.Helper()
	z := zipOfEmpty(t, 3, "")
	off := int(binary.LittleEndian.Uint32(z[len(z)-directoryEndLen+16:]))
	const fakes = 65539
	prefix := bytes.Repeat([]byte{'#'}, off+fakes*directoryHeaderLen+1)
	for i := range fakes {
		h := prefix[off+i*directoryHeaderLen:][:directoryHeaderLen]
		clear(h)
		binary.LittleEndian.PutUint32(h, directoryHeaderSignature)
	}
	return append(prefix, z...)
}

// A countingReader counts the bytes read through it.
type countingReader struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// TestCheckFileCount checks that a zip of more entries than the cap is
// refused by what it declares, or, when it declares fewer (archive/zip
// checks the count modulo 65536 only), by counting its directory's
// headers, reading little of a large zip either way; and that a zip at
// the cap passes.
func TestCheckFileCount(t *testing.T) {
	big := zipOfEmpty(t, 65537, "") // zip64: more than 65535 entries
	lying := declare(t, big, 1)
	if z, err := zip.NewReader(bytes.NewReader(lying), int64(len(lying))); err != nil || len(z.File) != 65537 {
		t.Fatalf("archive/zip does not accept the lying zip's 65,537 entries: %v", err)
	}
	fake := fakeDirectory(t)
	if z, err := zip.NewReader(bytes.NewReader(fake), int64(len(fake))); err != nil || len(z.File) != 65539 {
		t.Fatalf("archive/zip does not read the 65,539 headers at the directory offset: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		max  int
		want string // "": accepted
	}{
		{"at the cap", zipOfEmpty(t, 10, ""), 10, ""},
		{"over the cap", zipOfEmpty(t, 11, ""), 10, "the zip holds 11 files, more than sumd hashes (10)"},
		{"prefixed, at the cap", zipOfEmpty(t, 10, "#!/bin/sh\nexit 0\n"), 10, ""},
		{"prefixed, over the cap", zipOfEmpty(t, 11, "#!/bin/sh\nexit 0\n"), 10, "the zip holds 11 files, more than sumd hashes (10)"},
		{"zip64", big, 100, "the zip holds 65537 files, more than sumd hashes (100)"},
		{"zip64 at the cap", big, 65537, ""},
		{"declaring 1", lying, 100, "the zip holds more than 100 files, the most sumd hashes"},
		{"declaring 3, 65539 where the offset points", fake, 100, "the zip holds more than 100 files, the most sumd hashes"},
		{"not a zip", []byte("not a zip"), 1, ""}, // archive/zip's to refuse
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(tt.data)}
			_, err := checkFileCount(r, int64(len(tt.data)), tt.max)
			var tm *TooManyFilesError
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("checkFileCount: %v", err)
			case tt.want != "" && (!errors.As(err, &tm) || err.Error() != tt.want):
				t.Fatalf("checkFileCount: %v, want %q", err, tt.want)
			}
			// The end records (the last 65 KiB at most) and 101 headers.
			if tt.want != "" && len(tt.data) > 1<<20 && r.n.Load() > 128<<10 {
				t.Errorf("read %d bytes of %d to refuse it", r.n.Load(), len(tt.data))
			}
		})
	}
}

// TestCheckFileCountSmall checks that a zip too small to hold more than
// the cap's headers is not read at all, and that one byte more is.
func TestCheckFileCountSmall(t *testing.T) {
	data := zipOfEmpty(t, 11, "")
	fits := len(data) / directoryHeaderLen // the most headers it can hold
	for _, tt := range []struct {
		max  int
		read bool
	}{{fits, false}, {fits + 1, false}, {fits - 1, true}} {
		r := &countingReader{r: bytes.NewReader(data)}
		if _, err := checkFileCount(r, int64(len(data)), tt.max); err != nil {
			t.Fatalf("checkFileCount(max %d): %v", tt.max, err)
		}
		if got := r.n.Load() > 0; got != tt.read {
			t.Errorf("checkFileCount of %d bytes, max %d: read %d bytes, want reading %v", len(data), tt.max, r.n.Load(), tt.read)
		}
	}
}

// TestHashZipMaxFiles checks that HashZip refuses a zip of more than
// MaxFiles entries before CheckZip (which would refuse this one for its
// name outside the module), in memory or read from the file, and still
// hashes one of MaxFiles entries as the go command does.
func TestHashZipMaxFiles(t *testing.T) {
	defer func(n int) { MaxFiles = n }(MaxFiles)
	MaxFiles = 20
	m := mv("example.com/m", "v1.0.0")
	over := zipOfEmpty(t, 21, "")
	// Make it invalid for CheckZip too: the last entry outside the module.
	i := bytes.LastIndex(over, []byte("example.com/m@v1.0.0/f20"))
	copy(over[i:], "example.com/x")
	// Past wholeZip, the zip is read from the file rather than memory.
	pad := strings.Repeat("#", 2*wholeZip)
	for _, data := range [][]byte{over, append([]byte(pad), over...)} {
		_, err := HashZip(m, writeTemp(t, data), nil)
		var tm *TooManyFilesError
		if !errors.As(err, &tm) || !strings.HasSuffix(err.Error(), ": the zip holds 21 files, more than sumd hashes (20)") {
			t.Errorf("HashZip of %d bytes: %v, want the zip refused for its 21 files", len(data), err)
		}
	}
	name := writeTemp(t, zipOfEmpty(t, 20, ""))
	got, err := HashZip(m, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want, err := dirhash.HashZip(name, dirhash.Hash1); err != nil || got.Hash != want {
		t.Errorf("HashZip = %s, want dirhash's %s (%v)", got.Hash, want, err)
	}
}

// FuzzCheckFileCount: checkFileCount never lets through a zip of which
// archive/zip reads more entries than the cap, whatever the zip declares,
// and the count it gives a zip it lets through is never below archive/zip's
// (the budget of MaxFilesInFlight relies on it).
func FuzzCheckFileCount(f *testing.F) {
	f.Add(zipOfEmpty(f, 3, ""))
	f.Add(zipOfEmpty(f, 3, "prefix"))
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	f.Fuzz(func(t *testing.T, data []byte) {
		z, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil || len(z.File) == 0 {
			return
		}
		for _, max := range []int{0, len(z.File) - 1} {
			if _, err := checkFileCount(bytes.NewReader(data), int64(len(data)), max); err == nil {
				t.Fatalf("checkFileCount lets %d entries through a cap of %d", len(z.File), max)
			}
		}
		for _, max := range []int{len(z.File), len(z.File) + 1, 1 << 30} {
			n, err := checkFileCount(bytes.NewReader(data), int64(len(data)), max)
			if err != nil || n < int64(len(z.File)) {
				t.Fatalf("checkFileCount(cap %d) = %d, %v for a zip of %d entries", max, n, err, len(z.File))
			}
		}
	})
}

// TestHashZipBudget checks that HashZip waits for its zip's entries while
// the MaxFilesInFlight budget is spent by others, and goes on once they
// are released, releasing its own when done.
func TestHashZipBudget(t *testing.T) {
	defer func(b *semaphore.Weighted) { inFlight = b }(inFlight)
	inFlight = semaphore.NewWeighted(MaxFilesInFlight)
	m := mv("example.com/m", "v1.0.0")
	data := zipOfEmpty(t, 10, "")
	name := writeTemp(t, data)
	others := int64(MaxFilesInFlight - len(data)/directoryHeaderLen + 1) // one entry too many
	if err := inFlight.Acquire(context.Background(), others); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := HashZip(m, name, nil); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("HashZip returned (%v) while the budget was spent", err)
	case <-time.After(200 * time.Millisecond):
	}
	inFlight.Release(others)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !inFlight.TryAcquire(MaxFilesInFlight) {
		t.Error("HashZip did not give its entries back")
	}
}

// TestIsFileError: HashZip's failure to read the file is a file error; a
// zip whose content is wrong is not.
func TestIsFileError(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	_, err := HashZip(m, filepath.Join(t.TempDir(), "gone.zip"), nil)
	if err == nil || !IsFileError(err) {
		t.Errorf("a missing zip: %v, IsFileError false", err)
	}
	if _, err := HashZip(m, t.TempDir(), nil); err == nil || !IsFileError(err) {
		t.Errorf("a directory: %v, IsFileError false", err)
	}
	for name, data := range map[string][]byte{
		"not a zip":          []byte("not a zip"),
		"outside the module": bytes.ReplaceAll(zipOfEmpty(t, 3, ""), []byte("example.com/m@"), []byte("example.com/x@")),
		"truncated":          zipOfEmpty(t, 3, "")[:100],
	} {
		if _, err := HashZip(m, writeTemp(t, data), nil); err == nil || IsFileError(err) {
			t.Errorf("%s: %v, want an error that IsFileError calls the content's", name, err)
		}
	}
}

// TestIsFileErrorNegativeOffset: a zip over wholeZip whose end record puts
// its directory past where it is makes archive/zip read at a negative
// offset, which the os package refuses with an *fs.PathError. That is the
// content's fault, not a file-system failure (it was taken for one: a 503
// "could not read back" on every lookup, never remembered).
func TestIsFileErrorNegativeOffset(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range map[string]string{"go.mod": "module example.com/m\n", "big.txt": strings.Repeat("x", 2*wholeZip)} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "example.com/m@v1.0.0/" + name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	end := bytes.LastIndex(b, []byte("PK\x05\x06"))
	binary.LittleEndian.PutUint32(b[end+16:], binary.LittleEndian.Uint32(b[end+16:])+1<<20)
	_, err := HashZip(mv("example.com/m", "v1.0.0"), writeTemp(t, b), nil)
	if err == nil || IsFileError(err) {
		t.Errorf("HashZip = %v, want an error of the content's, not a file error", err)
	}
}

// TestIsFileErrorFarOffset: a zip over wholeZip whose go.mod entry's
// header lies at 2^63-8 (a zip64 offset) made archive/zip read there, and
// pread(2) failed with EINVAL, an Errno: the zip was taken for the disk's
// failure (503, -tmp-dir blamed in /healthz, never remembered). Read from
// a file or from memory, it is now the content's error, the same one.
func TestIsFileErrorFarOffset(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	data, err := testproxy.FarOffsetZip(m, "module example.com/m\n")
	if err != nil {
		t.Fatal(err)
	}
	_, fileErr := HashZip(m, writeTemp(t, data), nil)
	if fileErr == nil || IsFileError(fileErr) {
		t.Errorf("HashZip = %v, want an error of the content's, not a file error", fileErr)
	}
	_, memErr := HashZipData(m, data, nil)
	if memErr == nil || IsFileError(memErr) {
		t.Errorf("HashZipData = %v, want an error of the content's, not a file error", memErr)
	}
	if fileErr != nil && memErr != nil && fileErr.Error() != memErr.Error() {
		t.Errorf("HashZip = %v, HashZipData = %v; want the same answer", fileErr, memErr)
	}
}
