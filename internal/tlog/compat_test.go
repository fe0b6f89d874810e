package tlog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"
)

// TestFormat1 opens a database written by sumd before the Store contract
// (tlog at commit 345e96a: 300 records in three batches, a key rotation
// started, two more records, an auxiliary value) and finds all of it: the
// bbolt layout is format "1", unchanged.
func TestFormat1(t *testing.T) {
	ctx := context.Background()
	keys := format1Keys(t)
	path := format1Copy(t)
	l, err := Open(path, Options{Keys: keys, Verify: VerifyFull, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open of a format-1 database: %v", err)
	}
	tree, _ := l.Tree(ctx)
	if tree.N != 302 || len(l.VerifierKeys()) != 2 {
		t.Fatalf("tree %d with keys %v, want 302 records signed by two keys", tree.N, l.VerifierKeys())
	}
	for i, id := range map[int]int64{0: 0, 299: 299, 1001: 301} {
		r := record(i, 9)
		got, err := l.Lookup(ctx, module.Version{Path: r.Path, Version: r.Version})
		if err != nil || got != id {
			t.Fatalf("Lookup(%s) = %d, %v; want %d", r.Key(), got, err, id)
		}
	}
	if v, err := l.Aux(ctx, "oci-sync"); string(v) != `{"version":1}` || err != nil {
		t.Fatalf("Aux = %q, %v", v, err)
	}
	head, _ := l.Signed(ctx)
	if !verifiesWith(t, head, keys[0].VerifierKey()) || !verifiesWith(t, head, keys[1].VerifierKey()) {
		t.Fatalf("head does not verify with both keys:\n%s", head)
	}
	if ids, err := l.Add(ctx, record(2000, 9)); err != nil || ids[0] != 302 {
		t.Fatalf("Add = %v, %v; want id 302", ids, err)
	}
	l.Close()
	l = openTest(t, path, keys[0], VerifyFull, keys[1])
	defer l.Close()
	if tree, _ := l.Tree(ctx); tree.N != 303 {
		t.Fatalf("tree %d after reopening, want 303", tree.N)
	}
}

// format1Copy copies testdata/format1.db into a temporary directory and
// returns the copy's path.
func format1Copy(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("testdata/format1.db")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sumd.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// format1Keys reads the signing keys of testdata/format1.db.
func format1Keys(t *testing.T) []*Key {
	t.Helper()
	data, err := os.ReadFile("testdata/format1.keys")
	if err != nil {
		t.Fatal(err)
	}
	var keys []*Key
	for _, line := range strings.Fields(string(data)) {
		k, err := ParseKey(line)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}
