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

// TestStateAcrossRotation keeps one state directory through a key
// rotation, as an auditor that learns of the rotation late does: the state
// is saved under the old key alone, then audited with the new key only
// (during the overlap), with both, and with the new key only after the old
// one is retired. Each run proves the tree extends the head saved before,
// and the full audit resumes from the checkpoint made under the old key.
// A log re-created under the same name with another key is a fork, not a
// damaged state.
func TestStateAcrossRotation(t *testing.T) {
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
	state := t.TempDir()
	withState := func(more ...string) func(*Options) {
		return func(o *Options) { o.StateDir, o.Full, o.VerifierKeys = state, true, more }
	}
	wantOK(t, mustAudit(t, tl.srv.URL, tl.vkey, withState()), allChecks[0], allChecks[1], CheckRecords)

	if err := tl.log.AddKey(ctx, newKey); err != nil {
		t.Fatal(err)
	}
	tl.add(300, 320, testRecord)
	rep := mustAudit(t, tl.srv.URL, newVKey, withState())
	wantOK(t, rep, allChecks...)
	if rep.Previous == nil || rep.Previous.Size != 300 || rep.RecordsFrom != 300 || rep.RecordsAudited != 20 {
		t.Errorf("new key only: previous %+v, records %d+%d; want the head of 300 saved under the old key, and 20 new records",
			rep.Previous, rep.RecordsFrom, rep.RecordsAudited)
	}

	tl.add(320, 330, testRecord)
	wantOK(t, mustAudit(t, tl.srv.URL, tl.vkey, withState(newVKey)), allChecks...)

	if err := tl.log.RemoveKey(ctx, tl.vkey); err != nil {
		t.Fatal(err)
	}
	tl.add(330, 340, testRecord)
	rep = mustAudit(t, tl.srv.URL, newVKey, withState())
	wantOK(t, rep, allChecks...)
	if rep.Previous == nil || rep.Previous.Size != 330 {
		t.Errorf("after retirement: previous %+v, want the head of 330", rep.Previous)
	}
	// The old key alone no longer verifies what the server signs.
	wantProblem(t, mustAudit(t, tl.srv.URL, tl.vkey, nil), KindSignature, "is not signed by key "+testName+"+")

	// Another log under the same name, trusted by a new key: the head saved
	// before verifies with a remembered key, and the new log does not
	// contain it.
	other := newTestLog(t, "", 400, seededRecord("other"))
	wantProblem(t, mustAudit(t, other.srv.URL, other.vkey, withState()), KindFork)
}
