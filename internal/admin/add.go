package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

// MaxAddBody caps a POST /admin/add body: tlog.MaxAddRecords records of
// typical length (two lines of about 120 bytes) fit four times over.
const MaxAddBody = 64 << 20

// maxReported caps the lines an error answer lists one by one.
const maxReported = 100

// An AddResult is the answer to POST /admin/add.
type AddResult struct {
	// Records counts the module versions of the request.
	Records int `json:"records"`
	// New counts those this request appended: with check, those an add
	// would append. Of two adds of a version at once, the one that
	// appended it counts it.
	New int `json:"new"`
	// TreeSize is the size of the signed tree covering the records (with
	// check, of the latest one); omitted, 0, if the head could not be read
	// once they were stored (see storedSize), or with check on an empty
	// log.
	TreeSize int64 `json:"tree_size,omitempty"`
	// ConflictCount counts, with check only, the versions the log holds
	// with other hashes, and Conflicts lists the first 100 of them. An add
	// with any of them is refused (409).
	ConflictCount int        `json:"conflict_count,omitempty"`
	Conflicts     []Conflict `json:"conflicts,omitempty"`
	// Ignored counts the lines dropped as the go command drops them: with
	// the hash of an empty go.mod file (gosum.ErrEmptyGoMod).
	Ignored int `json:"ignored,omitempty"`
}

// A Conflict is a module version of a request that the log holds with
// other hashes.
type Conflict struct {
	Line     int    `json:"line"` // of the version's first line in the request, from 1
	Module   string `json:"module"`
	Version  string `json:"version"`
	ID       int64  `json:"id"`       // of the record the log holds
	Recorded string `json:"recorded"` // that record: two go.sum lines
	Offered  string `json:"offered"`  // the request's two lines
}

func (c Conflict) String() string {
	return fmt.Sprintf("line %d: %s@%s is recorded as record %d with other hashes: recorded %s; offered %s",
		c.Line, c.Module, c.Version, c.ID, oneLineRecord(c.Recorded), oneLineRecord(c.Offered))
}

func oneLineRecord(text string) string {
	var hashes []string
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 3 {
			hashes = append(hashes, f[2])
		}
	}
	return strings.Join(hashes, ", go.mod ")
}

// add serves POST /admin/add: go.sum lines, both lines of each module
// version, recorded all or nothing. With ?check=1 (or true) it records
// nothing and answers what an add would do against the log, conflicts
// listed, without the cross-check (Recorder.CheckRecords says why).
func (h *Handler) add(w http.ResponseWriter, r *http.Request) {
	check, err := checkParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// A form's framing would be answered as bad lines, naming its
	// boundary and part headers.
	if ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); strings.HasPrefix(ctype, "multipart/") {
		h.fail(w, r, &httpError{http.StatusBadRequest, fmt.Sprintf("the body is a %.64q form: /admin/add takes the go.sum lines as the body itself (curl --data-binary @go.sum, not -F)", ctype)})
		return
	}
	held := r.ContentLength
	if held > MaxAddBody {
		h.fail(w, r, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxAddBody)})
		return
	}
	if held < 0 {
		held = MaxAddBody
	}
	if !h.bodyMemory.TryAcquire(held) {
		w.Header().Set("Retry-After", "5")
		h.fail(w, r, &httpError{http.StatusServiceUnavailable, fmt.Sprintf(
			"other requests hold the memory this server gives the go.sum lines of adds and the go.mod files of uploads (%d MiB): try again shortly, or send fewer lines a request", maxBodyMemory>>20)})
		return
	}
	defer h.bodyMemory.Release(held) // the records parsed from the body are held until the answer
	h.uploadDeadlines(w)             // up to MaxAddBody of go.sum lines
	body, err := readBody(http.MaxBytesReader(w, r.Body, MaxAddBody), r.ContentLength)
	if err != nil {
		h.fail(w, r, badInput(err, "failed to read the body: %v", err))
		return
	}
	recs, lines, ignored, err := parseAdd(body)
	if err != nil {
		h.fail(w, r, joinedLines(body, err))
		return
	}
	if check {
		h.answerCheck(w, r, recs, lines, ignored)
		return
	}
	_, added, err := h.rec.AddRecords(r.Context(), recs)
	var conflict *tlog.ConflictError
	if errors.As(err, &conflict) {
		// Add names the first conflict; name them all, with their lines.
		err = h.conflicts(r, recs, lines, err)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	size := h.storedSize(r)
	res := AddResult{Records: len(recs), TreeSize: size, Ignored: ignored}
	for _, a := range added {
		if a {
			res.New++
		}
	}
	h.log.InfoContext(r.Context(), "admin: recorded go.sum lines", "records", res.Records, "new", res.New, "tree_size", size)
	writeJSON(w, res)
}

// joinedLines adds to err, the refusal of body, that its line breaks are
// missing when body is one line of at least the five fields two go.sum
// lines make when joined ("p v h1:Xp v/go.mod h1:Y"; one line with a field
// too many has four): curl -d @go.sum drops them, where --data-binary
// keeps them.
func joinedLines(body []byte, err error) error {
	var he *httpError
	if !errors.As(err, &he) || bytes.IndexByte(body, '\n') >= 0 {
		return err
	}
	fields := 0
	for range bytes.FieldsSeq(body) { // counted, not collected: the body may be 64 MiB of them
		if fields++; fields == 5 {
			break
		}
	}
	if fields < 5 {
		return err
	}
	return &httpError{he.status, he.msg + "\nthe body is one line of several go.sum lines: curl -d drops line breaks; send the file with --data-binary @go.sum"}
}

// maxBodyMemory caps the bytes of the bodies of the adds being served at
// once, each counted by its Content-Length (MaxAddBody without one): each is
// read whole, and so are its records, and a script adding large go.sum files
// in parallel would otherwise take as much memory as it sends. An add past
// it is a 503 with Retry-After, which Client.Add sends again. Uploads' large
// go.mod files take from it too (see readMod).
const maxBodyMemory = 4 * MaxAddBody

// readBody reads r whole into a buffer sized for size bytes if size is
// known (>= 0), so that a large body is not copied as its buffer grows.
func readBody(r io.Reader, size int64) ([]byte, error) {
	var buf bytes.Buffer
	if size >= 0 {
		buf.Grow(int(size) + bytes.MinRead) // ReadFrom wants MinRead free to read the end
	}
	_, err := buf.ReadFrom(r)
	return buf.Bytes(), err
}

// checkParam reads ?check=.
func checkParam(r *http.Request) (bool, error) {
	switch v := r.URL.Query().Get("check"); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, &httpError{http.StatusBadRequest, fmt.Sprintf("check=%.20q: want 1, true, 0 or false", v)}
	}
}

// answerCheck answers a check: what an add of recs would do.
func (h *Handler) answerCheck(w http.ResponseWriter, r *http.Request, recs []gosum.Record, lines []int, ignored int) {
	size, err := h.treeSize(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ids, conflicts, err := h.rec.CheckRecords(r.Context(), recs)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res := AddResult{Records: len(recs), TreeSize: size, Ignored: ignored}
	for i, id := range ids {
		switch {
		case conflicts != nil && conflicts[i] != nil:
			if res.ConflictCount++; len(res.Conflicts) < maxReported {
				res.Conflicts = append(res.Conflicts, toConflict(lines[i], conflicts[i]))
			}
		case id < 0:
			res.New++
		}
	}
	writeJSON(w, res)
}

// conflicts turns the conflict Add found into an answer naming every
// version of recs that conflicts with the log, by line: a 409.
func (h *Handler) conflicts(r *http.Request, recs []gosum.Record, lines []int, addErr error) error {
	_, conflicts, err := h.rec.CheckRecords(r.Context(), recs)
	if err != nil {
		return addErr
	}
	var list problems
	for i, c := range conflicts {
		if c != nil {
			list.add("%s", toConflict(lines[i], c))
		}
	}
	if list.n == 0 { // Add's conflict was with a record this log has not published yet
		return addErr
	}
	return &httpError{http.StatusConflict, list.text("%d module version(s) are recorded with other hashes; nothing was added")}
}

func toConflict(line int, c *tlog.ConflictError) Conflict {
	return Conflict{Line: line, Module: c.Proposed.Path, Version: c.Proposed.Version, ID: c.ID,
		Recorded: string(c.Recorded.Text()), Offered: string(c.Proposed.Text())}
}

// maxReportedBytes caps the text of the problems an answer lists, and
// maxProblemBytes one of them: the answer is also logged, and a body of
// long bad lines made answers of hundreds of megabytes.
const (
	maxReportedBytes = 32 << 10
	maxProblemBytes  = 2 << 10
)

// A problems list keeps the first problems, at most maxReported of them
// and about maxReportedBytes in all, and counts all.
type problems struct {
	n     int
	size  int // of items
	items []string
}

func (p *problems) add(format string, args ...any) {
	if p.n++; len(p.items) < maxReported && p.size < maxReportedBytes {
		it := cut(fmt.Sprintf(format, args...), maxProblemBytes)
		p.items, p.size = append(p.items, it), p.size+len(it)
	}
}

// cut is s cut to at most n bytes, at a rune's start, marked "..." if cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// text is a summary line, then one line per problem kept.
func (p *problems) text(summary string) string {
	var b strings.Builder
	fmt.Fprintf(&b, summary, p.n)
	for _, it := range p.items {
		b.WriteString("\n" + it)
	}
	if p.n > len(p.items) {
		fmt.Fprintf(&b, "\n... and %d more", p.n-len(p.items))
	}
	return b.String()
}

// treeSize reads the size of the latest signed tree.
func (h *Handler) treeSize(r *http.Request) (int64, error) {
	signed, err := h.rec.Signed(r.Context())
	if err != nil {
		return 0, fmt.Errorf("failed to read the signed tree head: %w", err)
	}
	return treeSize(signed)
}

// storedSize is the tree size of the signed head covering records just
// stored, for the answer, or 0 if it cannot be read (a PostgreSQL head
// confirmation older than -max-head-age): the records are durable by then,
// so the request succeeded, and its answer says so, without the size (no
// tree holding them is empty). Failing it would say otherwise, and have
// clients send a 503's request again, which changes nothing (records
// already present keep their ids) but asks the same of a server that
// cannot answer it.
func (h *Handler) storedSize(r *http.Request) int64 {
	size, err := h.treeSize(r)
	if err != nil {
		h.log.WarnContext(r.Context(), "admin: recorded, but failed to read the signed tree head for the answer", "path", r.URL.Path, "err", err)
		return 0
	}
	return size
}

func writeJSON(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(body, '\n'))
}

// A half is what a request says about one module version: its zip line
// and go.mod line, and where each first is.
type half struct {
	hash  [2]string // zip, go.mod
	line  [2]int    // 0: absent
	empty int       // a go.mod line with gosum.EmptyGoModHash, dropped (droppedGoMod); 0: none
}

// parseAdd parses a POST /admin/add body: go.sum lines ("\n" or "\r\n"
// ended; lines of white space only are skipped, and the others split on
// white space, as the go command reads go.sum: gosum.ParseLine), both lines of each module version, in
// any order. It returns the records in the order of their first lines,
// with those lines, and counts the lines it dropped as the go command
// does (gosum.ErrEmptyGoMod). Every problem is a 400 listing each bad line: a
// malformed line, two hashes for one line, a version with one line only,
// a record over gosum.MaxRecordSize; so is a body of dropped lines only,
// saying so. More than tlog.MaxAddRecords versions with a line not dropped
// are a 413.
func parseAdd(body []byte) (recs []gosum.Record, lines []int, ignored int, err error) {
	var bad problems
	var c gosum.Checker
	versions, order, ignored, err := scanAdd(body, &c, &bad)
	if err != nil {
		return nil, nil, 0, err
	}
	if ignored > 0 {
		droppedGoMod(body, &c, versions)
	}
	recs = make([]gosum.Record, 0, len(order))
	lines = make([]int, 0, len(order))
	for _, m := range order {
		v := versions[m]
		switch {
		case v.line[0] == 0:
			bad.add("line %d: %s has only its go.mod line: a record needs both lines", v.line[1], m)
		case v.line[1] == 0 && v.empty != 0:
			bad.add("line %d: %s has only its zip line: a record needs both lines (line %d, its go.mod line, has %v)", v.line[0], m, v.empty, gosum.ErrEmptyGoMod)
		case v.line[1] == 0:
			bad.add("line %d: %s has only its zip line: a record needs both lines", v.line[0], m)
		default:
			// Each line was checked; the record may still be too long.
			// Checked here, it is a bad line like the others: the
			// recorder and the log take only checked records.
			rec, line := gosum.Record{Path: m.Path, Version: m.Version, Hash: v.hash[0], GoMod: v.hash[1]}, min(v.line[0], v.line[1])
			if err := c.Record(rec); err != nil {
				bad.add("line %d: %v", line, err)
				continue
			}
			recs, lines = append(recs, rec), append(lines, line)
		}
	}
	switch {
	case bad.n > 0:
		return nil, nil, 0, &httpError{http.StatusBadRequest, bad.text("%d bad line(s); nothing was added")}
	case len(recs) == 0 && ignored > 0:
		return nil, nil, 0, &httpError{http.StatusBadRequest, fmt.Sprintf("nothing to record: the body's %d go.sum line(s) were all dropped (%v)", ignored, gosum.ErrEmptyGoMod)}
	case len(recs) == 0:
		return nil, nil, 0, &httpError{http.StatusBadRequest, "no go.sum lines in the body"}
	}
	return recs, lines, ignored, nil
}

// scanAdd reads the lines of body into what they say about each version,
// in the order of their first lines, counting the lines dropped; bad lines
// go to bad. More than tlog.MaxAddRecords versions with a line not dropped
// are a 413.
func scanAdd(body []byte, c *gosum.Checker, bad *problems) (versions map[module.Version]*half, order []module.Version, ignored int, err error) {
	versions = map[module.Version]*half{}
	n, kept := 0, 0 // lines; versions with a line not dropped
	for len(body) > 0 {
		var raw []byte
		raw, body, _ = bytes.Cut(body, []byte("\n"))
		n++
		text := strings.TrimSuffix(string(raw), "\r")
		if strings.TrimSpace(text) == "" { // blank to the go command too
			continue
		}
		l, err := c.ParseLine(text)
		empty := errors.Is(err, gosum.ErrEmptyGoMod)
		if err != nil && !empty {
			bad.add("line %d: %v", n, err)
			continue
		}
		if empty {
			// Dropped, it makes nothing: a body of distinct dropped
			// lines would otherwise hold an entry for each. Where one
			// explains a bad version, droppedGoMod finds it again.
			ignored++
			continue
		}
		v := versions[l.Version]
		if v == nil {
			v = &half{}
			versions[l.Version] = v
			order = append(order, l.Version)
		}
		kind := 0
		if l.GoMod {
			kind = 1
		}
		switch {
		case v.line[kind] == 0:
			// A version of dropped lines only, never a record, is not
			// here to count toward the limit.
			if v.line[1-kind] == 0 {
				if kept++; kept > tlog.MaxAddRecords {
					return nil, nil, 0, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("more than %d module versions in one request: split it", tlog.MaxAddRecords)}
				}
			}
			v.hash[kind], v.line[kind] = l.Hash, n
		case v.hash[kind] != l.Hash:
			bad.add("line %d: %s has hash %s, but line %d says %s", n, l.Name(), l.Hash, v.line[kind], v.hash[kind])
		}
	}
	return versions, order, ignored, nil
}

// droppedGoMod notes in each version of versions with a zip line only the
// first of its go.mod lines that was dropped (gosum.ErrEmptyGoMod), which
// the 400 for it names. It reads body again, only for a body with dropped
// lines, and makes nothing for the others.
func droppedGoMod(body []byte, c *gosum.Checker, versions map[module.Version]*half) {
	zipOnly := false
	for _, v := range versions {
		zipOnly = zipOnly || v.line[1] == 0
	}
	if !zipOnly {
		return
	}
	for n := 1; len(body) > 0; n++ {
		var raw []byte
		raw, body, _ = bytes.Cut(body, []byte("\n"))
		l, err := c.ParseLine(strings.TrimSuffix(string(raw), "\r"))
		if !l.GoMod || !errors.Is(err, gosum.ErrEmptyGoMod) {
			continue
		}
		if v := versions[l.Version]; v != nil && v.line[1] == 0 && v.empty == 0 {
			v.empty = n
		}
	}
}
