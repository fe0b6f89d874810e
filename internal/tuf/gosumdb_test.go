package tuf

import (
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	stlog "golang.org/x/mod/sumdb/tlog"
)

// headOnlyOps is the go command's view of a checksum database it cannot
// reach: its GOSUMDB key and the tree head it kept ($GOPATH/pkg/sumdb/NAME/latest).
type headOnlyOps struct{ config map[string][]byte }

func (o *headOnlyOps) ReadRemote(path string) ([]byte, error) {
	return nil, errors.New("offline: " + path)
}
func (o *headOnlyOps) ReadConfig(file string) ([]byte, error) { return o.config[file], nil }
func (o *headOnlyOps) WriteConfig(file string, old, new []byte) error {
	o.config[file] = new
	return nil
}
func (o *headOnlyOps) ReadCache(file string) ([]byte, error) { return nil, errors.New("no cache") }
func (o *headOnlyOps) WriteCache(file string, data []byte)   {}
func (o *headOnlyOps) Log(msg string)                        {}
func (o *headOnlyOps) SecurityError(msg string)              {}

// TestGOSUMDBDuringOverlap: a developer machine kept a tree head signed
// before the rotation, by the old key alone. During the overlap TUF
// publishes [old, new]; the GOSUMDB printed must verify that head, or the
// go command fails at its start with "note has no verifiable signatures"
// (x/mod's sumdb.Client checks the kept head with the GOSUMDB key).
func TestGOSUMDBDuringOverlap(t *testing.T) {
	const name = "sum.overlap.example"
	oldSKey, oldVKey, _ := note.GenerateKey(rand.Reader, name)
	_, newVKey, _ := note.GenerateKey(rand.Reader, name)
	signer, err := note.NewSigner(oldSKey)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := stlog.TreeHash(0, nil)
	head, err := note.Sign(&note.Note{Text: string(stlog.FormatTree(stlog.Tree{N: 0, Hash: h}))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		vkeys []string
		want  string
	}{
		{[]string{oldVKey}, oldVKey},
		{[]string{oldVKey, newVKey}, oldVKey},
		{[]string{newVKey}, newVKey},
	} {
		db, err := NewDatabase(tt.vkeys, "https://"+name)
		if err != nil {
			t.Fatal(err)
		}
		key, url, _ := strings.Cut(db.GOSUMDB(), " ")
		if key != tt.want || url != db.URL {
			t.Errorf("GOSUMDB() of %d keys = %q, want key %s (the oldest) and URL %s", len(tt.vkeys), db.GOSUMDB(), tt.want, db.URL)
		}
		if !slices.Contains(tt.vkeys, oldVKey) {
			continue // the old key is retired: the head is re-fetched
		}
		ops := &headOnlyOps{config: map[string][]byte{"key": []byte(key), name + "/latest": head}}
		_, err = sumdb.NewClient(ops).Lookup("example.com/m", "v1.0.0")
		if err == nil || strings.Contains(err.Error(), "verifiable") || !strings.Contains(err.Error(), "offline") {
			t.Errorf("go command with GOSUMDB %s and a head of the old key: %v, want it to verify the head and try the network", key, err)
		}
	}
}
