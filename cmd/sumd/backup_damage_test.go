package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestBackupDamagedSource: a source database with a damaged page (a
// record's size) copies, but its copy fails verification with a
// *DamagedError. The hint said to run the backup again, which copies the
// same damage: it says the source is damaged, how to check it and to
// restore it, without the temporary file's path.
func TestBackupDamagedSource(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "sumd.db")
	skey, _, err := itlog.GenerateKey(e2eName)
	if err != nil {
		t.Fatal(err)
	}
	key, err := itlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := itlog.Open(db, itlog.Options{Keys: []*itlog.Key{key}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := "h1:" + strings.Repeat("A", 43) + "="
	recs := make([]gosum.Record, 300)
	for i := range recs {
		recs[i] = gosum.Record{Path: fmt.Sprintf("example.com/m%d", i), Version: "v1.0.0", Hash: h, GoMod: h}
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	damageRecordSize(t, db)

	out := filepath.Join(dir, "backup.db")
	_, errOut, err := sumdRun(t, "backup", "-db", db, "-o", out)
	if err == nil {
		t.Fatal("the backup of a damaged database succeeded")
	}
	for _, want := range []string{"damaged", "hint:", "source database", "backup verify", "restore"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("sumd backup of a damaged database says, without %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "run the backup again") || strings.Contains(errOut, ".tmp-") {
		t.Errorf("sumd backup of a damaged database says to run it again, or names the temporary copy:\n%s", errOut)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the unverified copy was left at -o")
	}
}

// damageRecordSize sets the value size of the first element of a records
// leaf of the bbolt file at path (a leaf, flags 2, whose first element has
// an 8-byte key and a record's size) far beyond the file's end.
func damageRecordSize(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(binary.NativeEndian.Uint32(data[24:]))
	for off := 2 * pageSize; off+pageSize <= len(data); off += pageSize {
		p := data[off:]
		elem := p[16:]
		if binary.NativeEndian.Uint16(p[8:]) == 2 && binary.NativeEndian.Uint16(p[10:]) > 1 &&
			binary.NativeEndian.Uint32(elem[8:]) == 8 && binary.NativeEndian.Uint32(elem[12:]) > 100 && binary.NativeEndian.Uint32(elem[12:]) < 1000 {
			binary.NativeEndian.PutUint32(elem[12:], 64<<20)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("found no leaf of records to damage")
}

// TestCopyDamagedSource: sumd copy of a source database with a damaged page
// (a *DamagedError, an ErrCorrupt without a hint of its own) said "the
// destination does not match the signed head … copy into an empty
// database", though the destination was: it says the source is damaged,
// how to check it, and to restore it.
func TestCopyDamagedSource(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "sumd.db")
	skey, _, err := itlog.GenerateKey(e2eName)
	if err != nil {
		t.Fatal(err)
	}
	key, err := itlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := itlog.Open(db, itlog.Options{Keys: []*itlog.Key{key}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := "h1:" + strings.Repeat("A", 43) + "="
	recs := make([]gosum.Record, 300)
	for i := range recs {
		recs[i] = gosum.Record{Path: fmt.Sprintf("example.com/m%d", i), Version: "v1.0.0", Hash: h, GoMod: h}
	}
	if _, err := l.Add(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	l.Close()
	damageRecordSize(t, db)

	_, errOut, err := sumdRun(t, "copy", "-from", db, "-to", filepath.Join(dir, "copy.db"))
	if err == nil {
		t.Fatal("the copy of a damaged database succeeded")
	}
	for _, want := range []string{"damaged", "hint:", "source database", "backup verify", "restore"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("sumd copy of a damaged database says, without %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "the destination does not match") {
		t.Errorf("sumd copy of a damaged database blames the destination:\n%s", errOut)
	}
}
