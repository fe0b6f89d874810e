package audit

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// failFirst is a tlog.HashReader whose first read fails with err, as
// hash tiles that do not authenticate against the signed tree do; later
// reads are r's.
type failFirst struct {
	tlog.HashReader
	err    error
	failed bool
}

func (f *failFirst) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	if !f.failed {
		f.failed = true
		return nil, f.err
	}
	return f.HashReader.ReadHashes(indexes)
}

// TestResumedTileBadHashTiles resumes an incremental full audit in the
// middle of a data tile, and the hash tiles read to restart the rebuilt
// tree at the tile's start fail to authenticate: a tile mismatch (a
// problem, exit status 1) as when they fail while checking the tile, and
// the audit carries on after the tile. It was a run error (exit status
// 2). A failure to fetch them is still a run error.
func TestResumedTileBadHashTiles(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	state := t.TempDir()
	full := func(o *Options) { o.Full, o.StateDir = true, state }
	wantOK(t, mustAudit(t, tl.srv.URL, tl.vkey, full), CheckSignature, CheckTiles, CheckRecords)
	tl.add(600, 1000, testRecord)

	resumed := func(readErr error) (*run, error) {
		t.Helper()
		ctx := context.Background()
		opts := Options{URL: tl.srv.URL, VerifierKey: tl.vkey, Full: true, StateDir: state, retryBackoff: time.Millisecond}
		r, err := newRun(ctx, opts.withDefaults(), &Report{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		for _, step := range []func(context.Context) (bool, error){r.checkHead, r.checkTiles, r.checkConsistency} {
			if ok, err := step(ctx); err != nil || !ok {
				t.Fatalf("audit before the records: %v, %v", ok, err)
			}
		}
		if r.resumeFrom == nil || r.resumeFrom.size != 600 {
			t.Fatalf("resumes from %+v, want 600", r.resumeFrom)
		}
		r.thr = &failFirst{HashReader: r.thr, err: readErr}
		_, err = r.auditRecords(ctx)
		return r, err
	}

	r, err := resumed(errors.New("downloaded inconsistent tile"))
	if err != nil {
		t.Fatalf("audit of the records: %v; want it to run to the end", err)
	}
	if ps := r.found.problems; len(ps) != 1 || ps[0].Kind != KindTileMismatch || ps[0].Tile != "tile/8/data/002" {
		t.Errorf("problems %+v; want one tile mismatch of tile/8/data/002", ps)
	}
	if r.rep.RecordsFrom != 600 || r.rep.RecordsAudited != 400 {
		t.Errorf("records %d from %d; want 400 from 600", r.rep.RecordsAudited, r.rep.RecordsFrom)
	}

	fetch := &FetchError{Path: "/tile/8/1/000.p/3", Status: 503, Err: errors.New("503 Service Unavailable")}
	if r, err := resumed(fetch); !errors.Is(err, fetch) || len(r.found.problems) != 0 {
		t.Errorf("audit of the records with a hash tile out of reach: %v, problems %+v; want the fetch error, no problem", err, r.found.problems)
	}
}
