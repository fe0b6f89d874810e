package audit

import (
	"context"
	"testing"

	"github.com/sumd-project/sumd/internal/tlog"
)

// TestSeveralKeys audits a log through a key rotation with the keys a TUF
// repository publishes: a head verifies if any known key signed it, the
// state saved under the old key verifies after the old key is retired,
// and go.sum lookups use the key that signed /latest.
func TestSeveralKeys(t *testing.T) {
	ctx := context.Background()
	tl := newTestLog(t, "", 300, testRecord)
	skey, newVKey, err := tlog.GenerateKey(testName)
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := tlog.ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	state, sum := t.TempDir(), writeGoSum(t, goSumOf(0, 299))
	both := func(o *Options) { o.VerifierKeys, o.StateDir, o.GoSum = []string{newVKey}, state, []string{sum} }
	wantOK(t, mustAudit(t, tl.srv.URL, tl.vkey, both), CheckSignature, CheckTiles, CheckGosum)

	if err := tl.log.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	wantOK(t, mustAudit(t, tl.srv.URL, newVKey, nil), CheckSignature, CheckTiles)
	if err := tl.log.RemoveKey(ctx, tl.vkey); err != nil {
		t.Fatal(err)
	}
	tl.add(300, 310, testRecord)
	rep := mustAudit(t, tl.srv.URL, tl.vkey, both)
	wantOK(t, rep, CheckSignature, CheckTiles, CheckConsistency, CheckGosum)
	if rep.Previous == nil || rep.Previous.Size != 300 {
		t.Errorf("previous head %+v, want the one of 300 records saved under the old key", rep.Previous)
	}
	wantProblem(t, mustAudit(t, tl.srv.URL, tl.vkey, nil), KindSignature, "is not signed by key "+testName+"+")
}

// TestKeysOfTwoDatabases refuses keys naming different databases.
func TestKeysOfTwoDatabases(t *testing.T) {
	tl := newTestLog(t, "", 1, testRecord)
	_, other, err := tlog.GenerateKey("other.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.VerifierKeys = []string{other} }); err == nil {
		t.Error("audit with keys of two databases ran")
	}
}
