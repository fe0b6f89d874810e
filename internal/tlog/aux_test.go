package tlog

import (
	"context"
	"path/filepath"
	"testing"
)

// TestAux checks that auxiliary state survives a reopen and leaves the
// signed tree alone.
func TestAux(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sumd.db")
	k := testKey(t, "sum.example.com")
	l := openTest(t, path, k, VerifyTail)
	if v, err := l.Aux(ctx, "oci-sync"); v != nil || err != nil {
		t.Fatalf("Aux of a new log = %q, %v; want nil", v, err)
	}
	head, _ := l.Signed(ctx)
	if err := l.SetAux(ctx, "oci-sync", []byte(`{"version":1}`)); err != nil {
		t.Fatal(err)
	}
	if after, _ := l.Signed(ctx); string(after) != string(head) {
		t.Errorf("SetAux changed the signed tree head")
	}
	l.Close()
	l = openTest(t, path, k, VerifyFull)
	defer l.Close()
	if v, err := l.Aux(ctx, "oci-sync"); string(v) != `{"version":1}` || err != nil {
		t.Fatalf("Aux after reopen = %q, %v", v, err)
	}
}
