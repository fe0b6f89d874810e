package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/sumdbclient"
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

// TestRecheckDamagedTile: a data tile the server answers damaged in its
// database (sumdbclient.DamagedText) is a damaged problem, and the
// recheck carries on past it; it was a run error saying the audit could
// not run.
func TestRecheckDamagedTile(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path == "/tile/8/data/001" {
			return http.StatusInternalServerError, []byte(sumdbclient.DamagedText + "\n")
		}
		return status, body
	})
	src := newSource(600)
	rep, err := audit(t, srv.URL, tl.vkey, func(o *Options) { o.Recheck = src.recheck })
	if err != nil {
		t.Fatalf("audit: %v; want the damaged tile reported as a problem", err)
	}
	wantProblem(t, rep, KindDamaged, "tile/8/data/001", "damaged in its database")
	if rep.RecordsRechecked != 600-256 {
		t.Errorf("rechecked %d records, want the %d of the other tiles", rep.RecordsRechecked, 600-256)
	}
}

// TestRecheckMalformedRecord: a record that is not a go.sum record has
// nothing to re-hash; it is not counted as rechecked, but it is a
// malformed record, authenticated, which the run reports once: by the
// recheck without -full, which passed it over in silence (exit status 0),
// by the full audit with it.
func TestRecheckMalformedRecord(t *testing.T) {
	recs := healthyRecords(300)
	recs[7] = []byte("hello, world\n")
	f, vkey := newFakeLog(t, recs)
	srv := serve(t, f, nil)
	for _, full := range []bool{false, true} {
		src := newSource(300)
		rep := mustAudit(t, srv.URL, vkey, func(o *Options) { o.Recheck = src.recheck; o.Full = full })
		if rep.RecordsRechecked != 299 || len(src.asked) != 299 {
			t.Errorf("full=%v: rechecked %d records (source asked %d times), want 299: record 7 has nothing to re-hash", full, rep.RecordsRechecked, len(src.asked))
		}
		if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != KindMalformedRecord || rep.Problems[0].Record == nil || *rep.Problems[0].Record != 7 {
			t.Errorf("full=%v: want record 7 reported malformed, once: %s", full, problems(rep))
		}
	}
}

// TestRecheckForgetsTiles rechecks 40 data tiles' records: the run's tile
// reader must not keep the level-0 hash tiles it authenticated them with
// (8 KiB each, 1.5 GB at sum.golang.org's size). It kept every one.
func TestRecheckForgetsTiles(t *testing.T) {
	const n = 256 * 40
	tl := newTestLog(t, "", n, testRecord)
	ctx := context.Background()
	src := newSource(n)
	opts := Options{URL: tl.srv.URL, VerifierKey: tl.vkey, retryBackoff: 1, Recheck: src.recheck}
	r, err := newRun(ctx, opts.withDefaults(), &Report{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if err := r.run(ctx); err != nil {
		t.Fatal(err)
	}
	if r.rep.RecordsRechecked != n {
		t.Fatalf("rechecked %d records, want %d", r.rep.RecordsRechecked, n)
	}
	cached := 0
	for i := int64(0); i < n/256; i++ {
		if _, ok := r.tiles.Cached(tlog.Tile{H: 8, L: 0, N: i, W: 256}); ok {
			cached++
		}
	}
	if cached > 1 {
		t.Errorf("the run's tile reader holds %d of the %d level-0 tiles after -recheck", cached, n/256)
	}
}

// TestRecheckStopsFetching: a source error stops -recheck, which must
// then fetch no more data tiles. It went on fetching every one, with the
// run's context rather than the group's.
func TestRecheckStopsFetching(t *testing.T) {
	const n = 256 * 20
	tl := newTestLog(t, "", n, testRecord)
	var fetched atomic.Int32
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if strings.HasPrefix(path, "/tile/8/data/") {
			fetched.Add(1)
		}
		return status, body
	})
	failing := func(context.Context, module.Version) (gosum.Record, error) {
		return gosum.Record{}, errors.New("the proxy is down")
	}
	_, err := audit(t, srv.URL, tl.vkey, func(o *Options) { o.Recheck = failing })
	if err == nil || !strings.Contains(err.Error(), "the proxy is down") {
		t.Fatalf("audit with a failing source: %v, want the source's error", err)
	}
	if got := fetched.Load(); got > 2 {
		t.Errorf("fetched %d of the %d data tiles after the source failed on the first record", got, n/256)
	}
}

// TestRecheckPastBadTile: a data tile whose records do not hash to the
// signed tree (or that does not split) is reported and its records left
// unchecked, and the recheck carries on past it, as past a damaged tile
// (TestRecheckDamagedTile) and as the full audit does: it stopped there,
// so one bad tile early in the log hid every re-tagged version after it,
// and the go.sum check after the recheck did not run.
func TestRecheckPastBadTile(t *testing.T) {
	for _, tamper := range []func([]byte) []byte{
		func(body []byte) []byte { return flipByte(body, 10) },                         // records altered
		func(body []byte) []byte { return body[:bytes.Index(body, []byte("\n\n"))+2] }, // one record of 256
	} {
		tl := newTestLog(t, "", 600, testRecord)
		srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
			if path == "/tile/8/data/000" {
				return status, tamper(body)
			}
			return status, body
		})
		src := newSource(600)
		retagged := testRecord(300)
		src.changed[retagged.Key()] = fakeHash("re-tagged")
		file := writeGoSum(t, goSumOf(3))
		rep := mustAudit(t, srv.URL, tl.vkey, func(o *Options) { o.Recheck = src.recheck; o.GoSum = []string{file} })
		var kinds []string
		for _, p := range rep.Problems {
			kinds = append(kinds, p.Kind)
		}
		if len(kinds) != 2 || kinds[0] == KindRecheckMismatch || !slices.Contains(kinds, KindRecheckMismatch) {
			t.Errorf("problems %s; want the bad tile's and the re-tagged version's", problems(rep))
		}
		if !slices.Equal(rep.Checks, []string{CheckSignature, CheckTiles, CheckRecheck, CheckGosum}) || rep.RecordsRechecked != 600-256 {
			t.Errorf("checks %q, %d records rechecked; want every check and the %d records past the bad tile", rep.Checks, rep.RecordsRechecked, 600-256)
		}
	}
}

// TestRecheckSincePastEnd: a RecheckSince past the tree's size (-since
// naming a record the log does not hold, a typo or another database's
// id) stops the audit with ErrSincePastEnd before any data tile is read,
// where it rechecked nothing and passed; one at the size (the next
// record's id: nothing added since) rechecks nothing and passes.
func TestRecheckSincePastEnd(t *testing.T) {
	const n = 300
	tl := newTestLog(t, "", n, testRecord)
	src := newSource(n)
	rep, err := audit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.Full = true; o.Recheck = src.recheck; o.RecheckSince = n + 1 })
	if !errors.Is(err, ErrSincePastEnd) || !strings.Contains(err.Error(), "holds 300 records") {
		t.Fatalf("audit with RecheckSince past the tree's end: %v; want ErrSincePastEnd naming the tree's size", err)
	}
	if rep.OK || rep.RecordsAudited != 0 || len(src.asked) != 0 {
		t.Errorf("report ok %v, %d records audited, source asked %d times; want an error before any record is read", rep.OK, rep.RecordsAudited, len(src.asked))
	}
	rep = mustAudit(t, tl.srv.URL, tl.vkey, func(o *Options) { o.Recheck = src.recheck; o.RecheckSince = n })
	wantOK(t, rep, CheckSignature, CheckTiles, CheckRecheck)
	if rep.RecordsRechecked != 0 {
		t.Errorf("rechecked %d records from the tree's size, want none", rep.RecordsRechecked)
	}
}

// TestFullRecheckBadTileOnce: with Full and Recheck, a bad data tile
// (records altered, not splitting, damaged in the server's database) is
// one problem, the full audit's: the recheck, which reads the same tile
// of the same tree, reported it a second time.
func TestFullRecheckBadTileOnce(t *testing.T) {
	for kind, tamper := range map[string]func(int, []byte) (int, []byte){
		KindDataMismatch:  func(status int, body []byte) (int, []byte) { return status, flipByte(body, 10) },
		KindMalformedTile: func(status int, body []byte) (int, []byte) { return status, body[:bytes.Index(body, []byte("\n\n"))+2] },
		KindDamaged: func(int, []byte) (int, []byte) {
			return http.StatusInternalServerError, []byte(sumdbclient.DamagedText + "\n")
		},
	} {
		tl := newTestLog(t, "", 600, testRecord)
		srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
			if path == "/tile/8/data/001" {
				return tamper(status, body)
			}
			return status, body
		})
		src := newSource(600)
		rep, err := audit(t, srv.URL, tl.vkey, func(o *Options) { o.Full = true; o.Recheck = src.recheck })
		if err != nil {
			t.Fatalf("%s: audit: %v", kind, err)
		}
		if len(rep.Problems) != 1 || rep.Problems[0].Kind != kind || rep.Problems[0].Tile != "tile/8/data/001" {
			t.Errorf("%s: problems %s; want the bad tile's, once", kind, problems(rep))
		}
		if rep.RecordsRechecked != 600-256 {
			t.Errorf("%s: rechecked %d records, want the %d of the other tiles", kind, rep.RecordsRechecked, 600-256)
		}
	}
}
