package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A fakeLog is a malicious database: whatever records it is given, in a
// correctly built tree under a correctly signed head, so that only the
// checks of the records themselves can catch it. It is built with x/mod's
// tlog and note alone, as a dishonest server could be.
type fakeLog struct {
	records [][]byte
	hashes  []tlog.Hash // stored hashes
	signed  []byte
}

var _ sumdb.ServerOps = (*fakeLog)(nil)

// newFakeLog builds and signs a log of records; it returns the log and
// its verifier key.
func newFakeLog(t testing.TB, records [][]byte) (*fakeLog, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testName)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLog{records: records}
	for i, rec := range records {
		hashes, err := tlog.StoredHashes(int64(i), rec, f)
		if err != nil {
			t.Fatal(err)
		}
		f.hashes = append(f.hashes, hashes...)
	}
	n := int64(len(records))
	h, err := tlog.TreeHash(n, f)
	if err != nil {
		t.Fatal(err)
	}
	f.signed, err = note.Sign(&note.Note{Text: string(tlog.FormatTree(tlog.Tree{N: n, Hash: h}))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return f, vkey
}

// ReadHashes serves the stored hashes, for building the tree and tiles.
func (f *fakeLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(f.hashes)) {
			return nil, fmt.Errorf("stored hash %d: %w", x, fs.ErrNotExist)
		}
		out[i] = f.hashes[x]
	}
	return out, nil
}

func (f *fakeLog) Signed(context.Context) ([]byte, error) { return f.signed, nil }

func (f *fakeLog) ReadRecords(_ context.Context, id, n int64) ([][]byte, error) {
	if id < 0 || n < 0 || id+n > int64(len(f.records)) {
		return nil, fmt.Errorf("records %d+%d: %w", id, n, fs.ErrNotExist)
	}
	return f.records[id : id+n], nil
}

// Lookup finds the first record whose first line names m.
func (f *fakeLog) Lookup(_ context.Context, m module.Version) (int64, error) {
	prefix := []byte(m.Path + " " + m.Version + " ")
	for id, rec := range f.records {
		if bytes.HasPrefix(rec, prefix) {
			return int64(id), nil
		}
	}
	return 0, fmt.Errorf("%v: %w", m, fs.ErrNotExist)
}

func (f *fakeLog) ReadTileData(_ context.Context, t tlog.Tile) ([]byte, error) {
	return tlog.ReadTileData(t, f)
}

// healthyRecords returns the texts of the first n records of a healthy log.
func healthyRecords(n int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = testRecord(i).Text()
	}
	return recs
}
