package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

func fakeRec(i int, salt string) gosum.Record {
	p := fmt.Sprintf("example.com/bulk%d", i)
	h := func(s string) string {
		var b [32]byte
		copy(b[:], s+salt)
		return gosumHash(b)
	}
	return gosum.Record{Path: p, Version: "v1.0.0", Hash: h(p), GoMod: h(p + "/go.mod")}
}

// TestAdd records go.sum lines in bulk: all of them, then again (present),
// with check first; a request with one conflict adds nothing and names
// every conflicting line.
func TestAdd(t *testing.T) {
	ctx := context.Background()
	s := newSetup(t, Options{})
	recs := []gosum.Record{fakeRec(0, ""), fakeRec(1, ""), fakeRec(2, "")}
	res, err := s.client.Add(ctx, recs, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := (AddResult{Records: 3, New: 3, TreeSize: 0}); fmt.Sprint(*res) != fmt.Sprint(want) {
		t.Errorf("check = %+v, want %+v", *res, want)
	}
	if s.treeSize(t) != 0 {
		t.Fatal("check added records")
	}
	res, err = s.client.Add(ctx, recs, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := (AddResult{Records: 3, New: 3, TreeSize: 3}); fmt.Sprint(*res) != fmt.Sprint(want) {
		t.Errorf("add = %+v, want %+v", *res, want)
	}
	res, err = s.client.Add(ctx, append(recs[1:], fakeRec(3, "")), false)
	if err != nil || res.New != 1 || res.Records != 3 || res.TreeSize != 4 {
		t.Errorf("add again = %+v, %v; want 3 records, 1 new, tree 4", res, err)
	}

	bad := []gosum.Record{fakeRec(5, ""), fakeRec(0, "evil"), fakeRec(6, ""), fakeRec(2, "evil")}
	res, err = s.client.Add(ctx, bad, true)
	if err != nil || res.ConflictCount != 2 || len(res.Conflicts) != 2 || res.New != 2 ||
		res.Conflicts[0].Line != 3 || res.Conflicts[0].ID != 0 || res.Conflicts[1].Line != 7 || res.Conflicts[1].ID != 2 ||
		res.Conflicts[0].Recorded != string(recs[0].Text()) || res.Conflicts[0].Offered != string(bad[1].Text()) {
		t.Errorf("check with conflicts = %+v, %v", res, err)
	}
	_, err = s.client.Add(ctx, bad, false)
	wantStatus(t, err, http.StatusConflict, "2 module version(s) are recorded with other hashes; nothing was added\nline 3: example.com/bulk0@v1.0.0 is recorded as record 0")
	wantStatus(t, err, http.StatusConflict, "\nline 7: example.com/bulk2@v1.0.0 is recorded as record 2")
	if s.treeSize(t) != 4 {
		t.Errorf("a refused add changed the tree: %d", s.treeSize(t))
	}
}

// TestAddBadLines: every bad line of a request is named, and nothing is
// added; the size caps hold.
func TestAddBadLines(t *testing.T) {
	s := newSetup(t, Options{})
	r0, r1 := fakeRec(0, ""), fakeRec(1, "")
	body := string(r0.Text()) +
		"not a go.sum line\n" +
		"example.com/bulk1 v1.0.0/go.mod " + r1.GoMod + "\r\n" +
		"\n" +
		"example.com/bulk0 v1.0.0 " + fakeRec(0, "x").Hash + "\n" +
		"example.com/bulk2 v1.0 " + r1.Hash + "\n"
	resp := s.post(t, "/admin/add", body)
	for _, want := range []string{
		"4 bad line(s); nothing was added\n",
		"line 3: malformed go.sum line",
		"line 6: example.com/bulk0 v1.0.0 has hash " + fakeRec(0, "x").Hash + ", but line 1 says " + r0.Hash,
		"line 7: example.com/bulk2@v1.0: version is not canonical",
		"line 4: example.com/bulk1@v1.0.0 has only its go.mod line",
	} {
		if resp.Code != http.StatusBadRequest || !strings.Contains(resp.Body.String(), want) {
			t.Errorf("bad lines: %d %q, want 400 with %q", resp.Code, resp.Body, want)
		}
	}
	// Each line is well-formed, but the record they make is too long: the
	// parser names it like any bad line (neither the recorder nor the log
	// is left to refuse it).
	long := fakeRec(0, "")
	long.Path += "/" + strings.Repeat("long/", 200) + "m"
	resp = s.post(t, "/admin/add", "\n"+string(long.Text())+string(r1.Text()))
	if want := "1 bad line(s); nothing was added\nline 2: " + long.Key() + ": the record would be"; resp.Code != http.StatusBadRequest || !strings.HasPrefix(resp.Body.String(), want) {
		t.Errorf("a record over gosum.MaxRecordSize: %d %q, want 400 starting %q", resp.Code, resp.Body, want)
	}
	if resp := s.post(t, "/admin/add", ""); resp.Code != http.StatusBadRequest || !strings.Contains(resp.Body.String(), "no go.sum lines") {
		t.Errorf("empty body: %d %q", resp.Code, resp.Body)
	}
	if resp := s.post(t, "/admin/add?check=maybe", string(r0.Text())); resp.Code != http.StatusBadRequest {
		t.Errorf("check=maybe: %d %q", resp.Code, resp.Body)
	}
	if resp := s.post(t, "/admin/add", strings.Repeat("x", MaxAddBody+1)); resp.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("body over MaxAddBody: %d %q", resp.Code, resp.Body)
	}
	var many bytes.Buffer
	for i := range tlog.MaxAddRecords + 1 {
		many.Write(fakeRec(i, "").Text())
	}
	if resp := s.post(t, "/admin/add", many.String()); resp.Code != http.StatusRequestEntityTooLarge || !strings.Contains(resp.Body.String(), "split it") {
		t.Errorf("too many versions: %d %q", resp.Code, resp.Body)
	}
	if s.treeSize(t) != 0 {
		t.Errorf("bad requests added records: tree %d", s.treeSize(t))
	}
}

// TestAddHugeBadLines: an answer listing bad lines is bounded whatever
// their length (each was quoted whole: one 10 MB line made a 10 MB answer,
// and logged it), and still names each line by number.
func TestAddHugeBadLines(t *testing.T) {
	s := newSetup(t, Options{})
	r0 := fakeRec(0, "")
	long := strings.Repeat("\x00", 100<<10) // quoted, each byte takes 4
	var body strings.Builder
	for i := range 150 {
		switch i % 3 {
		case 0: // not a go.sum line
			body.WriteString(long + "\n")
		case 1: // a malformed module path, quoted by x/mod: short enough for a record
			body.WriteString("example.com/" + long[:1900] + " v1.0.0 " + r0.Hash + "\n")
		case 2: // a malformed hash
			body.WriteString("example.com/m v1.0.0 h1:" + long + "\n")
		}
	}
	resp := s.post(t, "/admin/add", body.String())
	if resp.Code != http.StatusBadRequest || !strings.HasPrefix(resp.Body.String(), "150 bad line(s); nothing was added\n") {
		t.Fatalf("huge bad lines: %d %.200q, want 400 counting 150 bad lines", resp.Code, resp.Body)
	}
	if n := resp.Body.Len(); n > 64<<10 {
		t.Errorf("huge bad lines: an answer of %d bytes, want at most 64 KiB", n)
	}
	for _, want := range []string{"\nline 1: ", "\nline 2: ", "\nline 3: ", "\n... and "} {
		if !strings.Contains(resp.Body.String(), want) {
			t.Errorf("huge bad lines: the answer lacks %q: %.300q", want, resp.Body)
		}
	}
}

// post sends an authenticated POST through the handler.
func (s *setup) post(t *testing.T, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := httptest.NewRecorder()
	s.srv.Config.Handler.ServeHTTP(w, req)
	return w
}

// FuzzParseAdd: a /admin/add body is refused with a 4xx listing at most
// maxReported lines, or parses into distinct, well-formed records, each
// exactly as its lines say.
func FuzzParseAdd(f *testing.F) {
	r0 := fakeRec(0, "")
	f.Add([]byte(string(r0.Text())))
	f.Add([]byte(string(r0.Text()) + string(r0.Text()) + "\r\n\n"))
	f.Add([]byte("example.com/a v1.0.0/go.mod " + r0.GoMod + "\nexample.com/a v1.0.0 " + r0.Hash))
	f.Add([]byte("example.com/a v1.0.0 " + r0.Hash + "\nexample.com/a v1.0.0 " + r0.GoMod + "\n"))
	f.Add([]byte(string(r0.Text()) + "example.com/bulk0 v1.0.0/go.mod " + gosum.EmptyGoModHash + "\n"))
	f.Add([]byte("example.com/a\tv1.0.0  " + r0.Hash + " \n \t\nexample.com/a v1.0.0/go.mod\t" + r0.GoMod + "\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, lines, _, err := parseAdd(body)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.status/100 != 4 || strings.Count(he.msg, "\n") > maxReported+1 {
				t.Fatalf("parseAdd(%q) = %v, want a 4xx of at most %d lines", body, err, maxReported+2)
			}
			return
		}
		seen := map[string]bool{}
		said := map[string]bool{} // each line of the body, its fields joined by single spaces
		for l := range strings.SplitSeq(string(body), "\n") {
			said[strings.Join(strings.Fields(l), " ")] = true
		}
		for i, r := range recs {
			if err := r.Check(); err != nil || seen[r.Key()] || lines[i] < 1 || r.Hash == gosum.EmptyGoModHash || r.GoMod == gosum.EmptyGoModHash {
				t.Fatalf("parseAdd(%q) record %v (line %d): %v, repeated %v", body, r, lines[i], err, seen[r.Key()])
			}
			seen[r.Key()] = true
			for _, l := range strings.Split(strings.TrimSuffix(string(r.Text()), "\n"), "\n") {
				if !said[l] {
					t.Fatalf("parseAdd(%q) made line %q, which the body lacks", body, l)
				}
			}
		}
	})
}

func gosumHash(sum [32]byte) string { return "h1:" + base64.StdEncoding.EncodeToString(sum[:]) }

// TestCrossOrigin: a POST that a browser marks as sent by another site's
// page is refused with 403 and records nothing, although it carries the
// operator's credentials (a browser attaches them to a cross-site form
// submission); the same from sumd's client, curl or the same origin is
// served, and so is a cross-site GET of a backup.
func TestCrossOrigin(t *testing.T) {
	s := newSetup(t, Options{})
	post := func(i int, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		// What a page's <form enctype="text/plain"> sends: no preflight.
		body := string(fakeRec(i, "").Text())
		req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/admin/add", strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Authorization", "Bearer "+testToken)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp, b.String()
	}
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "http://evil.example"}, // an older browser: Origin only
	} {
		resp, body := post(0, hdr)
		if resp.StatusCode != http.StatusForbidden || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
			!strings.Contains(body, "cross-origin request refused") {
			t.Errorf("POST with %v: %s %q, want 403 cross-origin", hdr, resp.Status, body)
		}
		if n := s.treeSize(t); n != 0 {
			t.Fatalf("POST with %v was refused but recorded: tree %d", hdr, n)
		}
	}
	for i, hdr := range []map[string]string{
		{}, // sumd's client, curl
		{"Sec-Fetch-Site": "same-origin", "Origin": s.srv.URL},
		{"Sec-Fetch-Site": "none"}, // typed by the user
		{"Origin": s.srv.URL},
	} {
		if resp, body := post(i+1, hdr); resp.StatusCode != http.StatusOK {
			t.Errorf("POST with %v: %s %q, want 200", hdr, resp.Status, body)
		}
	}
	if n := s.treeSize(t); n != 4 {
		t.Errorf("tree %d, want the 4 records sent from the same origin", n)
	}
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site GET of a backup: %s, want 403 (each copies the whole database; see TestBackupCrossSite)", resp.Status)
	}
}

// TestAddDropsEmptyGoMod: a go.sum line with the hash of an empty go.mod
// is dropped and counted, as the go command drops it: beside the real
// go.mod line it is no conflict, and alone it leaves the version with its
// zip line only, a bad line saying why, never a record of that hash.
func TestAddDropsEmptyGoMod(t *testing.T) {
	const emptyGoMod = "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="
	s := newSetup(t, Options{})
	r0, r1 := fakeRec(0, ""), fakeRec(1, "")
	resp := s.post(t, "/admin/add", string(r1.Text())+"example.com/bulk1 v1.0.0/go.mod "+emptyGoMod+"\n")
	if want := `{"records":1,"new":1,"tree_size":1,"ignored":1}`; resp.Code != http.StatusOK || strings.TrimSpace(resp.Body.String()) != want {
		t.Errorf("a version with an empty go.mod line beside its real one: %d %q, want 200 %s", resp.Code, resp.Body, want)
	}
	resp = s.post(t, "/admin/add", "example.com/bulk0 v1.0.0 "+r0.Hash+"\nexample.com/bulk0 v1.0.0/go.mod "+emptyGoMod+"\n")
	want := "1 bad line(s); nothing was added\nline 1: example.com/bulk0@v1.0.0 has only its zip line: a record needs both lines " +
		"(line 2, its go.mod line, has the hash of an empty go.mod file, which old go commands wrote for non-modules: the go command ignores the line)"
	if resp.Code != http.StatusBadRequest || strings.TrimSpace(resp.Body.String()) != want {
		t.Errorf("a version whose only go.mod line is empty: %d %q, want 400 %q", resp.Code, resp.Body, want)
	}
	if s.treeSize(t) != 1 {
		t.Errorf("tree size %d, want 1", s.treeSize(t))
	}
}

// TestAddOnlyDroppedLines: a body whose lines are all dropped as the go
// command drops them is a 400 saying so, not "no go.sum lines" (there were
// some); and a version of dropped lines only, never a record, does not
// count toward the tlog.MaxAddRecords versions of a request (a 413).
func TestAddOnlyDroppedLines(t *testing.T) {
	const emptyGoMod = "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="
	s := newSetup(t, Options{})
	resp := s.post(t, "/admin/add", "example.com/bulk0 v1.0.0/go.mod "+emptyGoMod+"\nexample.com/bulk1 v1.0.0/go.mod "+emptyGoMod+"\n")
	want := "nothing to record: the body's 2 go.sum line(s) were all dropped (the hash of an empty go.mod file, which old go commands wrote for non-modules: the go command ignores the line)"
	if resp.Code != http.StatusBadRequest || strings.TrimSpace(resp.Body.String()) != want {
		t.Errorf("a body of dropped lines only: %d %q, want 400 %q", resp.Code, resp.Body, want)
	}
	var body strings.Builder
	for i := range tlog.MaxAddRecords {
		fmt.Fprintf(&body, "example.com/bulk%d v1.0.0/go.mod %s\n", i+1, emptyGoMod)
	}
	body.Write(fakeRec(0, "").Text())
	resp = s.post(t, "/admin/add", body.String())
	if want := fmt.Sprintf(`{"records":1,"new":1,"tree_size":1,"ignored":%d}`, tlog.MaxAddRecords); resp.Code != http.StatusOK || strings.TrimSpace(resp.Body.String()) != want {
		t.Errorf("one version beside %d of dropped lines only: %d %.200q, want 200 %s", tlog.MaxAddRecords, resp.Code, resp.Body, want)
	}
}

// TestAddReadsLinesAsGoCommand: the body's lines are read as the go command
// reads go.sum (strings.Fields): tabs and runs of spaces separate the
// fields, and a line of white space only is blank. A +incompatible version
// the go command never makes is a bad line.
func TestAddReadsLinesAsGoCommand(t *testing.T) {
	s := newSetup(t, Options{})
	r0, r1 := fakeRec(0, ""), fakeRec(1, "")
	body := "example.com/bulk0\tv1.0.0 " + r0.Hash + "\n \t\n  example.com/bulk0  v1.0.0/go.mod\t" + r0.GoMod + " \r\n" +
		"example.com/bulk0\tv1.0.0/go.mod\t" + r1.GoMod + "\n"
	want := "1 bad line(s); nothing was added\nline 4: example.com/bulk0 v1.0.0/go.mod has hash " + r1.GoMod + ", but line 3 says " + r0.GoMod
	if resp := s.post(t, "/admin/add", body); resp.Code != http.StatusBadRequest || strings.TrimSpace(resp.Body.String()) != want {
		t.Errorf("lines split by tabs and spaces, one disagreeing: %d %q, want 400 %q", resp.Code, resp.Body, want)
	}
	body = body[:strings.LastIndex(body[:len(body)-1], "\n")+1]
	if resp := s.post(t, "/admin/add", body); resp.Code != http.StatusOK || !strings.Contains(resp.Body.String(), `"new":1`) {
		t.Errorf("lines split by tabs and spaces: %d %q, want 200 with 1 new", resp.Code, resp.Body)
	}
	resp := s.post(t, "/admin/add", "example.com/bulk1 v1.0.0+incompatible "+r1.Hash+"\nexample.com/bulk1 v1.0.0+incompatible/go.mod "+r1.GoMod+"\n")
	if resp.Code != http.StatusBadRequest || !strings.Contains(resp.Body.String(), "line 1: example.com/bulk1@v1.0.0+incompatible: invalid version: +incompatible suffix not allowed") {
		t.Errorf("v1.0.0+incompatible: %d %q, want 400 naming line 1", resp.Code, resp.Body)
	}
}

// readSignal is a request body that says when the handler first reads it,
// then reads from r.
type readSignal struct {
	once    sync.Once
	reading chan struct{}
	r       io.Reader
}

func (b *readSignal) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.reading) })
	return b.r.Read(p)
}

// TestAddMemoryBounded: the bodies of adds being read at once hold at most
// maxBodyMemory bytes, counted by their Content-Length (MaxAddBody without
// one): another add that would go past it is a 503 with Retry-After, read
// and recorded nothing, which the client sends again. Every add read its
// body whole into memory, as many as came at once: a script adding large
// go.sum files in parallel could take gigabytes and have the server killed.
func TestAddMemoryBounded(t *testing.T) {
	s := newSetup(t, Options{})
	h := New(s.rec, Options{Authenticated: true, Logger: quiet})
	var writers []*io.PipeWriter
	var done sync.WaitGroup
	for range maxBodyMemory / MaxAddBody {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		body := &readSignal{reading: make(chan struct{}), r: pr}
		req := httptest.NewRequest("POST", "/admin/add", body)
		req.ContentLength = MaxAddBody
		done.Add(1)
		go func() {
			defer done.Done()
			h.ServeHTTP(httptest.NewRecorder(), req)
		}()
		<-body.reading
	}
	rec := fakeRec(1, "")
	req := httptest.NewRequest("POST", "/admin/add", bytes.NewReader(rec.Text()))
	req.ContentLength = -1 // counted as MaxAddBody
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "try again") {
		t.Errorf("an add past the memory of the adds being read: %d %q (Retry-After %q), want 503 with Retry-After", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	if n := s.treeSize(t); n != 0 {
		t.Errorf("tree size %d after the refusal, want 0", n)
	}
	for _, pw := range writers {
		pw.CloseWithError(errors.New("client gone"))
	}
	done.Wait()
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/admin/add", bytes.NewReader(rec.Text())))
	if w.Code != http.StatusOK {
		t.Errorf("an add once the others ended: %d %q, want 200", w.Code, w.Body)
	}
}

// TestAddDroppedLinesHoldNothing: a dropped line (the hash of an empty
// go.mod) makes no entry of its own while a request's lines are read: 64
// MiB of distinct dropped lines took about 100 MB beyond the body. A
// version whose go.mod line was dropped before its zip line came is still
// told apart, its dropped line named.
func TestAddDroppedLinesHoldNothing(t *testing.T) {
	var body strings.Builder
	const n = 1000
	for i := range n {
		fmt.Fprintf(&body, "example.com/dropped%d v1.0.0/go.mod %s\n", i, gosum.EmptyGoModHash)
	}
	var bad problems
	versions, order, ignored, err := scanAdd([]byte(body.String()), new(gosum.Checker), &bad)
	if err != nil || bad.n != 0 || ignored != n || len(versions) != 0 || len(order) != 0 {
		t.Errorf("scanAdd of %d dropped lines: %d versions, %d in order, %d ignored, %d bad, %v; want nothing but %d ignored",
			n, len(versions), len(order), ignored, bad.n, err, n)
	}

	r0 := fakeRec(0, "")
	_, _, _, err = parseAdd([]byte("example.com/bulk0 v1.0.0/go.mod " + gosum.EmptyGoModHash + "\nexample.com/bulk0 v1.0.0 " + r0.Hash + "\n"))
	want := "line 2: example.com/bulk0@v1.0.0 has only its zip line: a record needs both lines (line 1, its go.mod line, has the hash of an empty go.mod file"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a version whose dropped go.mod line comes first: %v, want %q", err, want)
	}
}

// headFails is a Recorder whose signed tree head cannot be read once a
// record was stored (a PostgreSQL head confirmation older than
// -max-head-age, say): the error carries a 503, which clients send again.
type headFails struct {
	Recorder
	stored bool
}

func (h *headFails) AddRecords(ctx context.Context, recs []gosum.Record) ([]int64, []bool, error) {
	ids, added, err := h.Recorder.AddRecords(ctx, recs)
	h.stored = h.stored || err == nil
	return ids, added, err
}

func (h *headFails) Record(ctx context.Context, m module.Version) (int64, gosum.Record, error) {
	id, rec, err := h.Recorder.Record(ctx, m)
	h.stored = h.stored || err == nil
	return id, rec, err
}

func (h *headFails) Signed(ctx context.Context) ([]byte, error) {
	if h.stored {
		return nil, statusError{errors.New("the head is too old"), http.StatusServiceUnavailable}
	}
	return h.Recorder.Signed(ctx)
}

type statusError struct {
	error
	status int
}

func (e statusError) HTTPStatus() int { return e.status }

// TestAddHeadUnreadable: an add, or a fetch, whose records are stored
// but whose signed tree head cannot then be read for the answer succeeds
// (200, the tree size omitted): the records are durable, and an error
// would say they are not, or have the client send them again.
func TestAddHeadUnreadable(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	s := newSetup(t, Options{}, goodModule(m.Path, m.Version))
	h := &headFails{Recorder: s.rec}
	s.srv.Config.Handler = New(h, Options{Authenticated: true, Logger: quiet})
	resp := s.post(t, "/admin/add", string(fakeRec(0, "").Text()))
	if want := `{"records":1,"new":1}`; resp.Code != http.StatusOK || strings.TrimSpace(resp.Body.String()) != want {
		t.Errorf("an add whose head cannot be read after it: %d %q, want 200 %s", resp.Code, resp.Body, want)
	}
	h.stored = false
	res, err := s.client.Fetch(context.Background(), m)
	if err != nil || res.ID != 1 || res.TreeSize != 0 {
		t.Errorf("a fetch whose head cannot be read after it: %+v, %v; want record 1, no tree size", res, err)
	}
	if s.treeSize(t) != 2 {
		t.Errorf("tree size %d, want 2", s.treeSize(t))
	}
}

// TestAddSameAtOnce: two adds of one version at once, both having read
// the tree size before either recorded anything, count it new in one
// answer only: the one whose call appended it.
func TestAddSameAtOnce(t *testing.T) {
	s := newSetup(t, Options{})
	m := &meeting{Recorder: s.rec, arrived: make(chan struct{}), start: make(chan struct{})}
	s.srv.Config.Handler = New(m, Options{Authenticated: true, Logger: quiet})
	body := string(fakeRec(0, "").Text())
	answers := make(chan string, 2)
	for range 2 {
		go func() {
			resp := s.post(t, "/admin/add", body)
			answers <- fmt.Sprint(resp.Code, " ", strings.TrimSpace(resp.Body.String()))
		}()
	}
	<-m.arrived
	<-m.arrived
	close(m.start)
	got := []string{<-answers, <-answers}
	slices.Sort(got)
	want := []string{`200 {"records":1,"new":0,"tree_size":1}`, `200 {"records":1,"new":1,"tree_size":1}`}
	if !slices.Equal(got, want) {
		t.Errorf("two adds of one version at once answered %q, want %q", got, want)
	}
}

// meeting is a Recorder whose adds wait, once they have begun, until the
// test starts them all.
type meeting struct {
	Recorder
	arrived chan struct{} // an add has begun (it has read the tree size)
	start   chan struct{} // closed: the adds go on
}

func (m *meeting) AddRecords(ctx context.Context, recs []gosum.Record) ([]int64, []bool, error) {
	m.arrived <- struct{}{}
	<-m.start
	return m.Recorder.AddRecords(ctx, recs)
}

// TestAddCurlMistakes: the two ways curl sends go.sum lines wrong get an
// answer that says how to send them: a multipart form (curl -F, as for
// uploads) is refused as such, not as bad lines naming its boundary and
// part headers, and a body whose line breaks curl -d dropped says so.
func TestAddCurlMistakes(t *testing.T) {
	s := newSetup(t, Options{})
	r0, r1 := fakeRec(0, ""), fakeRec(1, "")
	lines := string(r0.Text()) + string(r1.Text())
	tests := []struct{ ctype, body, want string }{
		{"multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"gosum\"; filename=\"go.sum\"\r\n\r\n" + lines + "\r\n--X--\r\n", "--data-binary"},
		{"application/x-www-form-urlencoded", strings.ReplaceAll(lines, "\n", ""), "--data-binary"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(http.MethodPost, "/admin/add", strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", tt.ctype)
		w := httptest.NewRecorder()
		s.srv.Config.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("add of %s %q: %d %q, want 400 saying %q", tt.ctype, tt.body, w.Code, w.Body, tt.want)
		}
	}
	if n := s.treeSize(t); n != 0 {
		t.Errorf("tree size %d, want 0", n)
	}
	// One line with a field too many is not taken for joined lines.
	if w := s.post(t, "/admin/add", r0.Path+" "+r0.Version+" "+r0.Hash+" extra"); w.Code != http.StatusBadRequest || strings.Contains(w.Body.String(), "curl -d") {
		t.Errorf("add of one line with a field too many: %d %q, want 400 not about curl -d", w.Code, w.Body)
	}
	// A body of one line that is good stays good.
	if w := s.post(t, "/admin/add", strings.TrimSuffix(lines, "\n")); w.Code != http.StatusOK {
		t.Errorf("add of lines without a final line break: %d %q", w.Code, w.Body)
	}
}

// TestCheckAccess: the client's check of the server and its credentials
// passes when let through, records nothing, and fails as an add would
// when refused (the access layer's 401 of a wrong token) or on a server
// that records nothing.
func TestCheckAccess(t *testing.T) {
	s := newSetup(t, Options{})
	if err := s.client.CheckAccess(context.Background()); err != nil {
		t.Fatalf("CheckAccess with the right token: %v", err)
	}
	if n := s.treeSize(t); n != 0 {
		t.Errorf("tree size %d after CheckAccess, want 0", n)
	}
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sumd"`)
		http.Error(w, "wrong credentials (user name, password or token)", http.StatusUnauthorized)
	}))
	defer refusing.Close()
	wrong := &Client{URL: refusing.URL, Token: "fedcba9876543210fedcba9876543210"}
	wantStatus(t, wrong.CheckAccess(context.Background()), http.StatusUnauthorized, "wrong credentials")
	mirrors := httptest.NewServer(New(nil, Options{Authenticated: true, Logger: quiet}))
	defer mirrors.Close()
	wantStatus(t, (&Client{URL: mirrors.URL}).CheckAccess(context.Background()), http.StatusNotFound, MirrorsOnlyText)
}
