package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
)

// sourceOf is a module source holding the test records, with overrides.
type sourceOf struct {
	mu      sync.Mutex
	recs    map[string]gosum.Record
	asked   []int64
	changed map[string]string // key -> the zip hash the source has now
	gone    map[string]bool
}

func newSource(n int) *sourceOf {
	s := &sourceOf{recs: map[string]gosum.Record{}, changed: map[string]string{}, gone: map[string]bool{}}
	for i := range n {
		s.recs[testRecord(i).Key()] = testRecord(i)
	}
	return s
}

func (s *sourceOf) recheck(ctx context.Context, m module.Version) (gosum.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := m.Path + "@" + m.Version
	rec, ok := s.recs[key]
	if !ok {
		return gosum.Record{}, fmt.Errorf("source asked for unknown %s", key)
	}
	s.asked = append(s.asked, 0)
	if s.gone[key] {
		return gosum.Record{}, fmt.Errorf("%w: 410 Gone", ErrUnavailable)
	}
	if h, ok := s.changed[key]; ok {
		rec.Hash = h
	}
	return rec, nil
}

// TestRecheck re-hashes recorded versions from their source: an unchanged
// source passes; a re-tagged version is a mismatch naming both hashes; a
// version the source lost is unavailable; -since limits the range; a
// source error stops the audit.
func TestRecheck(t *testing.T) {
	const n = 600
	tl := newTestLog(t, "", n, testRecord)
	src := newSource(n)
	rep := mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.Recheck = src.recheck })
	wantOK(t, rep, CheckSignature, CheckTiles, CheckRecheck)
	if rep.RecordsRechecked != n || len(src.asked) != n {
		t.Fatalf("rechecked %d records (source asked %d times), want %d", rep.RecordsRechecked, len(src.asked), n)
	}

	retagged := testRecord(300)
	src.changed[retagged.Key()] = fakeHash("re-tagged")
	src.asked = nil
	rep = mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.Recheck = src.recheck; o.RecheckSince = 256 })
	p := wantProblem(t, rep, KindRecheckMismatch, retagged.Key(), "record 300", retagged.Hash, fakeHash("re-tagged"))
	if p.Record == nil || *p.Record != 300 || len(src.asked) != n-256 {
		t.Errorf("problem record %v, source asked %d times; want record 300 and %d asks", p.Record, len(src.asked), n-256)
	}

	delete(src.changed, retagged.Key())
	src.gone[testRecord(599).Key()] = true
	rep = mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.Recheck = src.recheck; o.RecheckSince = 590 })
	wantProblem(t, rep, KindRecheckUnavailable, testRecord(599).Key(), "410 Gone")
	if rep.RecordsRechecked != 9 {
		t.Errorf("rechecked %d records, want the 9 of 590…599 the source still has", rep.RecordsRechecked)
	}

	failing := func(ctx context.Context, m module.Version) (gosum.Record, error) {
		return gosum.Record{}, errors.New("connection refused")
	}
	if _, err := audit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.Recheck = failing }); err == nil {
		t.Error("audit with a failing source succeeded; want it to stop with the error")
	}
}

// TestRecheckTamperedTile: records are authenticated before they are
// compared with the source, so a tampered data tile is reported as such and
// never passed to the rechecker.
func TestRecheckTamperedTile(t *testing.T) {
	tl := newTestLog(t, "", 300, testRecord)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path == "/tile/8/data/001.p/44" {
			return status, flipByte(body, 10)
		}
		return status, body
	})
	src := newSource(300)
	rep := mustAudit(t, srv.URL, tl.vkey, func(o *Options) { o.Recheck = src.recheck; o.RecheckSince = 256 })
	wantProblem(t, rep, KindDataMismatch, "does not hash to the signed tree")
	if len(src.asked) != 0 {
		t.Errorf("source asked %d times for records of a tampered tile", len(src.asked))
	}
}

// TestRecheckMalformedRecord: a record that is not a go.sum record has
// nothing to re-hash; it is not counted as rechecked.
func TestRecheckMalformedRecord(t *testing.T) {
	recs := healthyRecords(300)
	recs[7] = []byte("hello, world\n")
	f, vkey := newFakeLog(t, recs)
	src := newSource(300)
	rep := mustAudit(t, serve(t, f, nil).URL, vkey, func(o *Options) { o.Recheck = src.recheck })
	if rep.RecordsRechecked != 299 || len(src.asked) != 299 {
		t.Errorf("rechecked %d records (source asked %d times), want 299: record 7 has nothing to re-hash", rep.RecordsRechecked, len(src.asked))
	}
}
