package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/mod/sumdb/note"
	xtlog "golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestTamperedDataTile flips one byte of one data tile on the way: that
// tile, and only that tile, fails to match the signed tree, and the rest
// of the log is still audited.
func TestTamperedDataTile(t *testing.T) {
	tl := newTestLog(t, "", 2000, testRecord)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path == "/tile/8/data/003" {
			return status, flipByte(body, 100)
		}
		return status, body
	})
	rep := mustAudit(t, srv.URL, tl.vkey, func(o *Options) { o.Full = true })
	p := wantProblem(t, rep, KindDataMismatch, "tile/8/data/003 (records 768 to 1023)", "do not hash to the signed tree")
	if p.Tile != "tile/8/data/003" {
		t.Errorf("problem names tile %q", p.Tile)
	}
	if rep.RecordsAudited != 2000 {
		t.Errorf("audited %d records, want all 2000 despite the bad tile", rep.RecordsAudited)
	}
}

// TestTamperedHashTile alters a hash tile: the quick audit's tile check
// fails, since that tile no longer hashes to the signed root.
func TestTamperedHashTile(t *testing.T) {
	tl := newTestLog(t, "", 1000, testRecord)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path == "/tile/8/0/003.p/232" {
			return status, flipByte(body, 7)
		}
		return status, body
	})
	rep := mustAudit(t, srv.URL, tl.vkey, nil)
	wantProblem(t, rep, KindTileMismatch, "do not match the signed tree of size 1000")
}

// TestMalformedDataTile removes a record's blank line: the tile no longer
// splits into its 256 records.
func TestMalformedDataTile(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path == "/tile/8/data/001" {
			return status, bytes.Replace(body, []byte("\n\n"), []byte("\n"), 1)
		}
		return status, body
	})
	rep := mustAudit(t, srv.URL, tl.vkey, func(o *Options) { o.Full = true })
	wantProblem(t, rep, KindMalformedTile, "tile/8/data/001 (records 256 to 511)", "holds 255 records, want 256")
}

// TestDamagedDataTile serves, for a data tile, the answer a sumd server
// gives for data damaged in its database (sumdbclient.DamagedText): a
// finding, reported as a problem like a malformed tile, and the audit
// carries on past the tile. It stopped the audit with a run error, so
// that the report (and -json's "error") said the audit could not run.
func TestDamagedDataTile(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path == "/tile/8/data/001" {
			return http.StatusInternalServerError, []byte(sumdbclient.DamagedText + "\n")
		}
		return status, body
	})
	rep, err := audit(t, srv.URL, tl.vkey, func(o *Options) { o.Full = true })
	if err != nil || rep.Error != "" {
		t.Fatalf("audit: %v (report error %q); want it to run to the end", err, rep.Error)
	}
	wantProblem(t, rep, KindDamaged, "tile/8/data/001 (records 256 to 511)", "damaged in its database")
	if rep.RecordsAudited != 600 {
		t.Errorf("records audited %d, want 600 (the damaged tile's counted, as a malformed one's)", rep.RecordsAudited)
	}
}

// TestResumedTileChecksPrefix resumes an incremental full audit from a
// checkpoint in the middle of a data tile (the tree ended there), against
// a server that changes record 520, which the earlier run audited through
// the partial tile: the full tile must still hash to the signed tree as a
// whole. Only the records after the checkpoint were hashed, so it passed.
func TestResumedTileChecksPrefix(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	state := t.TempDir()
	full := func(o *Options) { o.Full, o.StateDir = true, state }
	wantOK(t, mustAudit(t, tl.srv.URL, tl.vkey, full), CheckSignature, CheckTiles, CheckRecords)
	tl.add(600, 1000, testRecord)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path != "/tile/8/data/002" || status != http.StatusOK {
			return status, body
		}
		recs := bytes.SplitAfter(body, []byte("\n\n"))
		r := bytes.Clone(recs[520-512])
		i := bytes.Index(r, []byte("h1:")) + 5
		r[i] ^= 1
		recs[520-512] = r
		return status, bytes.Join(recs, nil)
	})
	rep := mustAudit(t, srv.URL, tl.vkey, full)
	wantProblem(t, rep, KindDataMismatch, "tile/8/data/002 (records 512 to 767)")
	if rep.RecordsFrom != 600 || rep.RecordsAudited != 400 {
		t.Errorf("records %d from %d; want 400 from 600", rep.RecordsAudited, rep.RecordsFrom)
	}
}

// TestBadSignature alters a byte of the signature on /latest.
func TestBadSignature(t *testing.T) {
	tl := newTestLog(t, "", 10, testRecord)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		if path != "/latest" {
			return status, body
		}
		// The base64 after the name: 4 bytes of key hash, then the
		// signature; character 40 is well inside the signature.
		i := bytes.LastIndexByte(body[:len(body)-1], ' ') + 1 + 40
		out := bytes.Clone(body)
		out[i] = map[bool]byte{true: 'B', false: 'A'}[out[i] == 'A']
		return status, out
	})
	rep := mustAudit(t, srv.URL, tl.vkey, nil)
	p := wantProblem(t, rep, KindSignature, "SECURITY ERROR", "does not verify", "altered in transit or forged")
	if len(p.Heads) != 1 || !strings.HasPrefix(p.Heads[0].Note, "go.sum database tree\n10\n") {
		t.Errorf("problem quotes %q, want the head served", p.Heads)
	}
	if rep.Tree != nil || len(rep.Checks) != 0 {
		t.Errorf("tree %v, checks %q: nothing may pass on an unverified head", rep.Tree, rep.Checks)
	}
}

// TestWrongKey audits with the key of another database of the same name:
// the message names the key given and the signer found.
func TestWrongKey(t *testing.T) {
	tl := newTestLog(t, "", 10, testRecord)
	other := newTestLog(t, "", 1, testRecord)
	rep := mustAudit(t, tl.srv.URL, other.vkey, nil)
	given, _, _ := strings.Cut(strings.TrimPrefix(other.vkey, testName+"+"), "+")
	signer, _, _ := strings.Cut(strings.TrimPrefix(tl.vkey, testName+"+"), "+")
	wantProblem(t, rep, KindSignature, "not signed by key "+testName+"+"+given, "signed by "+testName+"+"+signer+" only", "check -key")
}

// TestPartialTileGone audits a head older than the tree the server now
// has, from a server that serves only full tiles once they are complete:
// the auditor falls back to the full tiles and keeps their prefix.
func TestPartialTileGone(t *testing.T) {
	tl := newTestLog(t, "", 200, testRecord)
	old, err := tl.log.Signed(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tl.add(200, 300, testRecord)
	srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
		switch {
		case path == "/latest":
			return status, old
		case strings.Contains(path, ".p/"):
			return http.StatusNotFound, []byte("gone\n")
		}
		return status, body
	})
	rep := mustAudit(t, srv.URL, tl.vkey, func(o *Options) { o.Full = true })
	wantOK(t, rep, CheckSignature, CheckTiles, CheckRecords)
	if rep.RecordsAudited != 200 || rep.Tree.Size != 200 {
		t.Errorf("audited %d records of a tree of %d, want 200 of 200", rep.RecordsAudited, rep.Tree.Size)
	}
}

// TestDuplicate serves a malicious log whose records hold one module
// version twice, within one data tile and across tiles and checkpoints.
func TestDuplicate(t *testing.T) {
	recs := healthyRecords(1500)
	recs[100] = recs[7]
	recs[1400] = testRecord(7).Text()
	f, vkey := newFakeLog(t, recs)
	srv := serve(t, f, nil)
	state := t.TempDir()
	for range 2 { // a duplicate is found again on every run
		rep := mustAudit(t, srv.URL, vkey, func(o *Options) { o.Full, o.StateDir, o.checkpointTiles = true, state, 1 })
		if rep.OK || len(rep.Problems) != 2 {
			t.Fatalf("want two duplicate problems: %s", problems(rep))
		}
		key := testRecord(7).Key()
		for i, then := range []int64{100, 1400} {
			p := rep.Problems[i]
			if p.Kind != KindDuplicate || p.Module != key || len(p.Records) != 2 || p.Records[0] != 7 || p.Records[1] != then {
				t.Errorf("problem %d = %+v, want %s at records 7 and %d", i, p, key, then)
			}
		}
		if !strings.Contains(rep.Problems[0].Message, key+" is recorded twice, as records 7 and 100") {
			t.Errorf("message %q", rep.Problems[0].Message)
		}
	}
}

// TestLongRecord audits a log holding a record longer than sumd records
// (gosum.MaxRecordSize), of a valid module path: the protocol does not
// limit records, so it is not malformed.
func TestLongRecord(t *testing.T) {
	recs := healthyRecords(300)
	r := testRecord(9)
	r.Path = "example.com" + strings.Repeat("/"+strings.Repeat("e", 49), 45)
	if err := gosum.CheckModule(r.Path, r.Version); err != nil || r.Size() <= gosum.MaxRecordSize {
		t.Fatalf("a valid record over %d bytes: %d bytes, %v", gosum.MaxRecordSize, r.Size(), err)
	}
	recs[9] = r.Text()
	f, vkey := newFakeLog(t, recs)
	rep := mustAudit(t, serve(t, f, nil).URL, vkey, func(o *Options) { o.Full = true })
	wantOK(t, rep, CheckSignature, CheckTiles, CheckRecords)
	if rep.RecordsAudited != 300 {
		t.Errorf("audited %d records, want 300", rep.RecordsAudited)
	}
}

// TestOverlongKey audits a log whose records hold a valid module path
// longer than a bbolt key may be (32 KiB), twice: the audit runs to the end
// and finds the duplicate, on every run with a state, where it used to stop
// on bbolt's "key too large".
func TestOverlongKey(t *testing.T) {
	recs := healthyRecords(300)
	r := testRecord(9)
	r.Path = "example.com/" + strings.Repeat("k", 40<<10)
	recs[9], recs[290] = r.Text(), r.Text()
	f, vkey := newFakeLog(t, recs)
	srv := serve(t, f, nil)
	state := t.TempDir()
	for range 2 {
		rep := mustAudit(t, srv.URL, vkey, func(o *Options) { o.Full, o.StateDir = true, state })
		p := wantProblem(t, rep, KindDuplicate, "is recorded twice, as records 9 and 290")
		if !strings.HasPrefix(p.Module, "example.com/kkk") {
			t.Errorf("duplicate of module %.40q…", p.Module)
		}
		if rep.RecordsAudited != 300 {
			t.Errorf("audited %d records, want 300", rep.RecordsAudited)
		}
	}
}

// TestMalformedRecords serves a malicious log whose records are not all
// the two go.sum lines of one module version.
func TestMalformedRecords(t *testing.T) {
	recs := healthyRecords(300)
	r5 := testRecord(5)
	recs[5] = []byte(r5.Path + " " + r5.Version + " " + r5.Hash + "\n")                                   // one line
	recs[6] = append(testRecord(6).Text(), "example.com/x v1.0.0 "+r5.Hash+"\n"...)                       // three lines
	recs[7] = []byte("example.com/m0 v1.0 " + r5.Hash + "\nexample.com/m0 v1.0/go.mod " + r5.Hash + "\n") // not canonical
	recs[280] = []byte("hello, world\n")
	f, vkey := newFakeLog(t, recs)
	rep := mustAudit(t, serve(t, f, nil).URL, vkey, func(o *Options) { o.Full = true })
	want := map[int64]string{5: "has 1 lines", 6: "has 3 lines", 7: "not canonical", 280: "has 1 lines"}
	if rep.OK || len(rep.Problems) != len(want) {
		t.Fatalf("want %d malformed records: %s", len(want), problems(rep))
	}
	for _, p := range rep.Problems {
		if p.Kind != KindMalformedRecord || p.Record == nil || !strings.Contains(p.Message, want[*p.Record]) ||
			!strings.Contains(p.Message, "is not the two go.sum lines of one module version") {
			t.Errorf("unexpected problem %+v", p)
		}
	}
	if rep.RecordsAudited != 300 {
		t.Errorf("audited %d records, want 300", rep.RecordsAudited)
	}
}

// TestLatestRedirectedElsewhere redirects /latest to another host, as a
// hostile database could to an address only the auditor reaches: neither
// that host's answer (not a signed note) nor its error reason may end up
// in the report, which goes to CI logs.
func TestLatestRedirectedElsewhere(t *testing.T) {
	tl := newTestLog(t, "", 10, testRecord)
	const secret = "AWS_SECRET=hunter2"
	for _, tc := range []struct {
		name   string
		status int
	}{{"200", http.StatusOK}, {"403", http.StatusForbidden}} {
		t.Run(tc.name, func(t *testing.T) {
			internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(tc.status)
				w.Write([]byte(secret + " from the metadata service\n"))
			}))
			defer internal.Close()
			hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, internal.URL+"/computeMetadata", http.StatusFound)
			}))
			defer hostile.Close()
			rep, err := audit(t, hostile.URL, tl.vkey, nil)
			out, jerr := json.Marshal(rep)
			if jerr != nil {
				t.Fatal(jerr)
			}
			if rep.OK || strings.Contains(string(out), "hunter2") || err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the other host's answer is quoted: %v\n%s", err, out)
			}
			if n := fmt.Sprintf("%d bytes", len(secret)+len(" from the metadata service\n")); tc.status == http.StatusOK &&
				(err == nil || !strings.Contains(err.Error(), "not a signed note") || !strings.Contains(err.Error(), n)) {
				t.Errorf("audit = %v, want a failure to fetch naming the %s served", err, n)
			}
		})
	}
}

// TestHugeTree: a head signed by the database's key that claims 2^62
// records, the first size x/mod's tlog never returns from (maxpow2), served
// by /latest or carried by a lookup, ends the audit (a problem, or an
// error) instead of spinning for ever, deaf to its deadline.
func TestHugeTree(t *testing.T) {
	tl := newTestLog(t, "", 10, testRecord)
	signer, err := note.NewSigner(tl.skey)
	if err != nil {
		t.Fatal(err)
	}
	huge, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: 1 << 62}))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	r1 := testRecord(1)
	for _, c := range []struct {
		name, path string
		want       string // in the problem or the error
	}{
		{"latest", "/latest", "more than the 4611686018427387903 accepted"},
		{"lookup", "/lookup/" + r1.Path + "@" + r1.Version, "broken or compromised database"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := serve(t, tl.log, func(path string, status int, body []byte) (int, []byte) {
				switch {
				case path != c.path:
					return status, body
				case path == "/latest":
					return status, huge
				}
				rec, _, _ := bytes.Cut(body, []byte("\n\n"))
				return status, append(append(rec, "\n\n"...), huge...)
			})
			file := writeGoSum(t, goSumOf(1))
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			done := make(chan string, 1)
			go func() {
				rep, err := Run(ctx, Options{URL: srv.URL, VerifierKey: tl.vkey, GoSum: []string{file}, retryBackoff: time.Millisecond})
				done <- fmt.Sprintf("%v %s", err, problems(rep))
			}()
			select {
			case got := <-done:
				if !strings.Contains(got, c.want) {
					t.Errorf("audit: %s; want %q", got, c.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the audit is still running 10 s past its deadline")
			}
		})
	}
}

// TestServerTextQuotedBounded: text a hostile database chooses — a record's
// module path, the hash of a lookup's record, the name of a head's signer —
// is quoted in problem messages cut to a few hundred bytes and with its
// control characters replaced, so that it can neither grow the report by
// up to a megabyte a problem nor write escape sequences to a terminal.
func TestServerTextQuotedBounded(t *testing.T) {
	long := strings.Repeat("a", 20<<10)
	recs := healthyRecords(300)
	r5, r8 := testRecord(5), testRecord(8)
	bad := "example.com/" + long + "?" // not a module path
	recs[5] = []byte(bad + " v1.0.0 " + r5.Hash + "\n" + bad + " v1.0.0/go.mod " + r5.GoMod + "\n")
	dup := testRecord(6)
	dup.Path = "example.com/" + long
	recs[6], recs[7] = dup.Text(), dup.Text()
	recs[8] = []byte(r8.Path + " " + r8.Version + " h1:" + long + "\n" + r8.Path + " " + r8.Version + "/go.mod " + r8.GoMod + "\n")
	f, vkey := newFakeLog(t, recs)
	file := writeGoSum(t, goSumOf(8))
	srv := serve(t, f, func(path string, status int, body []byte) (int, []byte) {
		if !strings.HasPrefix(path, "/lookup/") {
			return status, body
		}
		// sumd's server answers no lookup of a record over
		// gosum.MaxRecordSize; a hostile one would.
		answer, err := xtlog.FormatRecord(8, recs[8])
		if err != nil {
			t.Error(err)
		}
		return http.StatusOK, append(answer, f.signed...)
	})
	rep := mustAudit(t, srv.URL, vkey, func(o *Options) { o.Full, o.GoSum = true, []string{file} })
	kinds := map[string]int{}
	for _, p := range rep.Problems {
		kinds[p.Kind]++
	}
	if want := map[string]int{KindMalformedRecord: 2, KindDuplicate: 1, KindGosumMismatch: 1}; !maps.Equal(kinds, want) {
		t.Fatalf("problems of kinds %v, want %v: %s", kinds, want, problems(rep))
	}
	wantBounded(t, rep)

	// A head signed by a key not given, whose name is long and holds a
	// terminal's escape sequence (CSI in C1: a note has no C0 control).
	skey, _, err := note.GenerateKey(nil, testName+"\u009b2J"+strings.Repeat("b", 10<<10))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	head, err := note.Sign(&note.Note{Text: string(xtlog.FormatTree(xtlog.Tree{N: 0, Hash: emptyTreeHash}))}, signer)
	if err != nil {
		t.Fatal(err)
	}
	srv = serve(t, f, func(path string, status int, body []byte) (int, []byte) {
		if path == "/latest" {
			return status, head
		}
		return status, body
	})
	rep = mustAudit(t, srv.URL, vkey, nil)
	wantProblem(t, rep, KindSignature, "not signed by key")
	wantBounded(t, rep)
}

// wantBounded fails if a problem of rep has a message of more than 2 KiB
// or a control character other than a newline or a tab, or a Module of more
// than 1 KiB.
func wantBounded(t *testing.T, rep *Report) {
	t.Helper()
	for _, p := range rep.Problems {
		if len(p.Message) > 2<<10 || len(p.Module) > 1<<10 {
			t.Errorf("%s problem of %d bytes, module of %d bytes: %.300s…", p.Kind, len(p.Message), len(p.Module), p.Message)
		}
		if i := strings.IndexFunc(p.Message, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }); i >= 0 {
			t.Errorf("%s problem with a control character at byte %d: %q", p.Kind, i, p.Message[max(i-20, 0):min(i+20, len(p.Message))])
		}
	}
}

// TestDamagedHashTile: a hash tile the server answers damaged in its
// database (sumdbclient.DamagedText) stops the audit, none of whose checks
// can go on without it; it is a finding all the same (sumd verify exits 1),
// so the report lists it as a damaged problem beside the error: it listed
// none, and a script reading the JSON saw only that the audit could not
// run.
func TestDamagedHashTile(t *testing.T) {
	tl := newTestLog(t, "", 600, testRecord)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/tile/8/0/002.p/88" {
			http.Error(w, sumdbclient.DamagedText, http.StatusInternalServerError)
			return
		}
		tl.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer srv.Close()
	rep, err := audit(t, srv.URL, tl.vkey, nil)
	if !errors.Is(err, sumdbclient.ErrDamaged) || rep.Error != err.Error() {
		t.Fatalf("audit = %v (report error %q), want the damaged tile's error", err, rep.Error)
	}
	wantProblem(t, rep, KindDamaged, "/tile/8/0/002.p/88", "damaged in its database")
}
