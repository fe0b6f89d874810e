package testproxy

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"

	"golang.org/x/mod/module"
)

// FarOffsetZip returns a zip of m of more than 1 MiB (so that sumd reads
// it from a file rather than from memory) whose go.mod entry's local
// header offset, given by a zip64 extra field, is 2^63-8. Reading that
// entry makes archive/zip read at that offset, where a pread(2) fails with
// EINVAL (the offset plus the count overflows): a system call's error
// caused by the zip's content alone.
func FarOffsetZip(m module.Version, goMod string) ([]byte, error) {
	prefix := m.Path + "@" + m.Version + "/"
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	// A zip64 extra field of one 8-byte value, filled in below: the
	// writer neither writes one nor keeps the offset it is given.
	extra := make([]byte, 12)
	binary.LittleEndian.PutUint16(extra[0:], 0x0001)
	binary.LittleEndian.PutUint16(extra[2:], 8)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + "go.mod", Method: zip.Store, Extra: extra})
	if err != nil {
		return nil, err
	}
	w.Write([]byte(goMod))
	noise := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	if w, err = zw.CreateHeader(&zip.FileHeader{Name: prefix + "big.txt", Method: zip.Store}); err != nil {
		return nil, err
	}
	w.Write(noise)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	// The go.mod's central directory header: its 32-bit offset is set to
	// 0xffffffff, which makes readers take the zip64 field's.
	name := []byte(prefix + "go.mod")
	for i := 0; i+46 < len(data); i++ {
		if binary.LittleEndian.Uint32(data[i:]) != 0x02014b50 {
			continue
		}
		nl := int(binary.LittleEndian.Uint16(data[i+28:]))
		if !bytes.Equal(data[i+46:i+46+nl], name) {
			continue
		}
		ex := i + 46 + nl
		if binary.LittleEndian.Uint16(data[ex:]) != 0x0001 {
			return nil, errors.New("testproxy: the zip64 extra field is not where expected")
		}
		binary.LittleEndian.PutUint32(data[i+42:], 0xffffffff)
		binary.LittleEndian.PutUint64(data[ex+4:], 1<<63-8)
		return data, nil
	}
	return nil, errors.New("testproxy: the go.mod's central directory header was not found")
}

// WithNoise returns m with a file data.bin of n deterministic random bytes
// added: they do not compress, so m's zip is larger than n, to test what
// happens to zips past a size (the 1 MiB sumd hashes in memory).
func WithNoise(m Module, n int) Module {
	data := make([]byte, n)
	rand.NewChaCha8([32]byte{2}).Read(data)
	files := make(map[string]string, len(m.Files)+1)
	for name, content := range m.Files {
		files[name] = content
	}
	files["data.bin"] = string(data)
	m.Files = files
	return m
}
