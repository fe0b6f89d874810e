package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/scratch"
	"github.com/sumd-project/sumd/internal/tlog"
)

const (
	// maxFetchBody caps a fetch request: a module path and a version.
	maxFetchBody = 64 << 10
	// maxField caps a text field of an upload; module paths are short.
	maxField = 4 << 10
	// uploadSlack is what an upload may carry beyond its files: the
	// multipart framing and the text fields.
	uploadSlack = 1 << 20
)

// Result is the answer to a successful request.
type Result struct {
	ID       int64  `json:"id"`                  // the record's id in the log
	Record   string `json:"record"`              // the record: two go.sum lines
	TreeSize int64  `json:"tree_size,omitempty"` // size of the signed tree covering it; 0 (omitted): the head could not be read after (see storedSize)
	// Present says that the log held the version before the request, so
	// that nothing was appended. Omitted when false: a new version, or an
	// older server's answer, which did not say.
	Present bool `json:"present,omitempty"`
}

// uploadDeadlines gives an authenticated request with a large body
// UploadTimeout to send it and be answered. The server's read deadline is
// seconds (so anonymous clients cannot hold a connection by trickling a
// body) and its write deadline is sized for lookups. A writer that cannot
// set deadlines (a test recorder) is fine.
func (h *Handler) uploadDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(h.opts.UploadTimeout)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)
}

// fetch serves POST /admin/fetch.
func (h *Handler) fetch(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFetchBody)
	m, err := parseFetch(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	// Record fetches a recorded version again (to find upstream content
	// that changed), so only the log says whether it was there: a probe
	// with no content's hashes finds the version whatever its hashes.
	present := h.held(r, gosum.Record{Path: m.Path, Version: m.Version, Hash: noContent, GoMod: noContent})
	id, rec, err := h.rec.Record(r.Context(), m)
	h.answer(w, r, id, rec, present, err)
}

// noContent is the hash of 32 zero bytes, which no content has (content
// with that hash would break SHA-256): the hashes of a probe, a record
// that finds a version in the log (CheckRecords) without being its own.
const noContent = "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

// held reports whether the log holds rec's module version, with any
// hashes, before the request records it: the answer's Present. Record and
// Add do not say whether they appended (AddRecords does, for adds), so a
// version another request records between this look and the request's own
// record is answered as new, as every version was before Present; one the
// log held is never answered as new. A failure to look is logged and
// answered as new (the request may still succeed).
func (h *Handler) held(r *http.Request, rec gosum.Record) bool {
	ids, _, err := h.rec.CheckRecords(r.Context(), []gosum.Record{rec})
	if err != nil {
		h.log.WarnContext(r.Context(), "admin: failed to look the version up before recording it; answered as new", "path", r.URL.Path, "module", rec.Path, "version", rec.Version, "err", err)
		return false
	}
	return len(ids) == 1 && ids[0] >= 0
}

// parseFetch reads module and version from a JSON or form body. Anything
// else in the body is refused rather than ignored: unknown JSON fields or
// form keys, a repeated key, and data after the JSON object (two objects
// in one request would otherwise record only the first).
func parseFetch(r *http.Request) (module.Version, error) {
	ctype, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ctype {
	case "application/json":
		return parseFetchJSON(r.Body)
	case "application/x-www-form-urlencoded":
	default:
		// ParseForm reads no other body, and the answer would be "want
		// both module and version" to a body that holds both (curl -F,
		// as for uploads, sends multipart/form-data).
		what := "a body without a Content-Type"
		if ctype != "" {
			what = fmt.Sprintf("a %.64q body", ctype)
		}
		return module.Version{}, &httpError{http.StatusBadRequest, fmt.Sprintf(
			"/admin/fetch takes a form (application/x-www-form-urlencoded: curl -d module=… -d version=…) or JSON (Content-Type: application/json), not %s", what)}
	}
	if err := r.ParseForm(); err != nil {
		return module.Version{}, badInput(err, "invalid form: %v", err)
	}
	for key, vals := range r.PostForm {
		switch {
		case key != "module" && key != "version" && strings.HasPrefix(key, "{"):
			return module.Version{}, &httpError{http.StatusBadRequest, fmt.Sprintf("unexpected form field %.64q: a JSON body needs Content-Type: application/json", key)}
		case key != "module" && key != "version":
			return module.Version{}, &httpError{http.StatusBadRequest, fmt.Sprintf("unexpected form field %.64q: want module and version", key)}
		case len(vals) > 1:
			return module.Version{}, &httpError{http.StatusBadRequest, fmt.Sprintf("form field %q given %d times", key, len(vals))}
		}
	}
	return checkModule(r.PostForm.Get("module"), r.PostForm.Get("version"))
}

// parseFetchJSON reads {"module": …, "version": …} and nothing else. It
// reads token by token: encoding/json would take the last of a repeated
// key, match keys in any case, and take null for "".
func parseFetchJSON(body io.Reader) (module.Version, error) {
	dec := json.NewDecoder(body)
	invalid := func(err error) (module.Version, error) {
		return module.Version{}, badInput(err, "invalid JSON body: %v", err)
	}
	if tok, err := dec.Token(); err != nil {
		return invalid(err)
	} else if tok != json.Delim('{') {
		return module.Version{}, &httpError{http.StatusBadRequest, `invalid JSON body: want a JSON object {"module": …, "version": …}`}
	}
	fields := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return invalid(err)
		}
		key, _ := tok.(string) // in an object, Token returns keys as strings
		if key != "module" && key != "version" {
			return module.Version{}, &httpError{http.StatusBadRequest, fmt.Sprintf("invalid JSON body: unknown field %.64q: want module and version", key)}
		}
		if _, dup := fields[key]; dup {
			return module.Version{}, &httpError{http.StatusBadRequest, fmt.Sprintf("invalid JSON body: JSON field %q given twice", key)}
		}
		if tok, err = dec.Token(); err != nil {
			return invalid(err)
		}
		v, ok := tok.(string)
		if !ok {
			return module.Version{}, &httpError{http.StatusBadRequest, fmt.Sprintf("invalid JSON body: JSON field %q must be a string", key)}
		}
		fields[key] = v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return invalid(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("more than one JSON value")
		}
		return module.Version{}, badInput(err, "invalid JSON body: want one object, found data after it: %v", err)
	}
	return checkModule(fields["module"], fields["version"])
}

// checkModule accepts what the log can record as a new record.
func checkModule(path, version string) (module.Version, error) {
	if path == "" || version == "" {
		return module.Version{}, &httpError{http.StatusBadRequest, "want both module and version"}
	}
	if err := gosum.CheckNewModule(path, version); err != nil {
		return module.Version{}, &httpError{http.StatusBadRequest, err.Error()}
	}
	return module.Version{Path: path, Version: version}, nil
}

// upload serves POST /admin/upload.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request) {
	// Only authenticated requests get here: only they get the longer
	// deadlines. A writer that cannot set them (a test recorder) is fine.
	h.uploadDeadlines(w)
	r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxZipSize+h.opts.MaxModSize+uploadSlack)
	up, err := h.readUpload(r)
	if up.zipPath != "" {
		defer os.Remove(up.zipPath)
	}
	if up.release != nil {
		defer up.release()
	}
	if up.modRelease != nil {
		defer up.modRelease()
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	m, err := checkModule(up.path, up.version)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !up.seen["zip"] {
		h.fail(w, r, &httpError{http.StatusBadRequest, "no zip file in the upload"})
		return
	}
	// Hashing a large zip stops when the client leaves (HashZipContext);
	// its error then says nothing of the zip, and nobody is left to
	// answer.
	ctx := r.Context()
	var sums modhash.Sums
	given := up.mod // see checkGoModSent
	if !strings.HasSuffix(m.Version, "+incompatible") {
		given = nil
	}
	if up.zipPath != "" {
		sums, err = modhash.HashZipContext(ctx, m, up.zipPath, given)
	} else {
		sums, err = modhash.HashZipDataContext(ctx, m, up.zipData, given)
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		h.log.InfoContext(ctx, "admin: upload abandoned by its client while hashed", "module", m.String())
		return
	}
	if err != nil && modhash.IsFileError(err) {
		// The stored zip could not be read again (removed, a disk error):
		// sumd's failure, which says nothing of the module.
		h.fail(w, r, h.localError("failed to read back the uploaded zip", err))
		return
	}
	if err != nil {
		// The reasons are about the zip's entries, but may quote the
		// temporary file's name, which is no business of the client's,
		// and list every bad entry: megabytes for a crafted zip, capped
		// for the answer and the log line alike.
		// The client's input is at fault: 422, not the 410 of a version
		// the go command's first lookup found invalid upstream (proxies
		// fall through on 410, and nothing here is to fall through to).
		msg := modhash.Reason(err, up.zipPath, "uploaded zip", modhash.MaxReasonText)
		h.fail(w, r, &httpError{http.StatusUnprocessableEntity, "invalid module: " + msg})
		return
	}
	if err := checkGoModSent(m, up.mod, sums); err != nil {
		h.fail(w, r, err)
		return
	}
	rec := gosum.Record{Path: m.Path, Version: m.Version, Hash: sums.Hash, GoMod: sums.GoMod}
	present := h.held(r, rec)
	id, err := h.rec.Add(r.Context(), rec)
	h.answer(w, r, id, rec, present, err)
}

// checkGoModSent refuses, unless m is +incompatible, a go.mod sent with a
// zip that is not the go.mod of the zip's sums, the go.mod the go command
// uses for it: the zip's own, or, for a zip that has none, the one the go
// command makes up ("module PATH", modhash.SynthesizedGoMod): the go
// command fetching the version from its origin hashes that one, and a
// record of another would fail its check for ever. HashZip refuses another
// one too, but this answer says which go.mod to send: the zip is hashed
// without the go.mod sent, and that one compared with it here, which reads
// the zip once. A +incompatible version is hashed with the go.mod sent,
// which HashZip takes only as this would: the zip's own, or for a zip
// without one, the made-up one.
func checkGoModSent(m module.Version, mod []byte, sums modhash.Sums) error {
	if mod == nil || strings.HasSuffix(m.Version, "+incompatible") {
		return nil
	}
	sent, err := modhash.GoModHash(mod)
	if err != nil {
		return &httpError{http.StatusUnprocessableEntity, "invalid module: the go.mod sent: " + err.Error()}
	}
	if sent == sums.GoMod {
		return nil
	}
	made := modhash.SynthesizedGoMod(m.Path)
	if madeHash, _ := modhash.GoModHash(made); madeHash == sums.GoMod {
		return &httpError{http.StatusUnprocessableEntity, fmt.Sprintf(
			"invalid module: the go.mod sent is not the one the go command uses for %s: the zip has no go.mod (or that one), so it uses %q; send that go.mod, or none",
			m, made)}
	}
	return &httpError{http.StatusUnprocessableEntity, "invalid module: the go.mod sent differs from the go.mod in the zip; send that one, or none"}
}

// An uploaded module version.
type upload struct {
	path, version string
	zipPath       string // temporary file, removed by the caller
	zipData       []byte // or the zip itself, if no larger than memoryZip
	release       func() // gives zipData's memory back (nil if no zip was read)
	mod           []byte // nil if none was sent
	modRelease    func() // gives mod's memory back (nil if it took none)
	// seen holds the fields read: a field given twice is refused, so
	// that no one part decides what another one said ("module" twice).
	seen map[string]bool
}

// readUpload streams the multipart body: a zip larger than memoryZip goes
// to a temporary file, so memory stays bounded whatever its size.
func (h *Handler) readUpload(r *http.Request) (upload, error) {
	var up upload
	mr, err := r.MultipartReader()
	if err != nil {
		return up, badInput(err, "want a multipart/form-data body: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return up, nil
		}
		if err != nil {
			return up, badInput(err, "invalid multipart body: %v", err)
		}
		if err := h.readPart(&up, part); err != nil {
			return up, err
		}
	}
}

// readPart stores one part of an upload.
func (h *Handler) readPart(up *upload, part *multipart.Part) error {
	var err error
	name := part.FormName()
	repeated := up.seen[name]
	if up.seen == nil {
		up.seen = map[string]bool{}
	}
	up.seen[name] = true
	switch {
	case repeated:
		return &httpError{http.StatusBadRequest, fmt.Sprintf("repeated field %q: give each of module, version, zip and mod once", name)}
	case name == "module":
		up.path, err = readField(part, "module")
	case name == "version":
		up.version, err = readField(part, "version")
	case name == "zip":
		up.zipData, up.zipPath, up.release, err = h.readZip(part)
	case name == "mod":
		up.mod, err = h.readMod(up, part)
	default:
		return &httpError{http.StatusBadRequest, fmt.Sprintf("unexpected field %q: want module, version, zip and optionally mod", name)}
	}
	return err
}

// smallMod is the size up to which an uploaded go.mod is read without
// taking memory from Handler.bodyMemory: most are a few KiB.
const smallMod = 64 << 10

// readMod reads the go.mod part of up, up to MaxModSize bytes. One larger
// than smallMod takes MaxModSize of Handler.bodyMemory until up is answered
// (up.modRelease): each upload holds its go.mod in memory, and many at once
// would otherwise hold 16 MiB each. With none left, a 503.
func (h *Handler) readMod(up *upload, part io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	err := copyLimited(&buf, part, min(smallMod, h.opts.MaxModSize), "go.mod file")
	if he, ok := err.(*httpError); ok && he.status == http.StatusRequestEntityTooLarge && h.opts.MaxModSize > smallMod {
		if !h.bodyMemory.TryAcquire(h.opts.MaxModSize) {
			return nil, &httpError{http.StatusServiceUnavailable, fmt.Sprintf(
				"other requests hold the memory this server gives the go.sum lines of adds and the go.mod files of uploads (%d MiB): try again shortly", maxBodyMemory>>20)}
		}
		up.modRelease = sync.OnceFunc(func() { h.bodyMemory.Release(h.opts.MaxModSize) })
		var all bytes.Buffer
		err = copyLimited(&all, io.MultiReader(&buf, part), h.opts.MaxModSize, "go.mod file")
		return all.Bytes(), err
	}
	return append([]byte{}, buf.Bytes()...), err // an empty .mod is still a .mod
}

func readField(part *multipart.Part, name string) (string, error) {
	var buf bytes.Buffer
	if err := copyLimited(&buf, part, maxField, name); err != nil {
		return "", err
	}
	return strings.TrimSpace(buf.String()), nil
}

// memoryZip is the size up to which an uploaded zip is kept in memory and
// hashed there: most module zips are small, and for them the temporary
// file's system calls (create, write, close, open again, read, remove)
// cost more than the hashing. Uploads are authenticated and bounded in
// number by the server's connections, so this bounds their memory too.
const memoryZip = 1 << 20

// readZip reads the zip part: a zip of up to h.memoryZip bytes (and up to
// MaxZipSize) is returned in memory, a larger one goes to a temporary
// file whose name is returned (see saveZip).
//
// The memory comes from modhash.MemoryBudget, twice memoryZip per zip (a
// buffer grows to about twice what it holds); release gives it back, and
// is a no-op when the zip went to a file. With the budget spent, the zip
// goes to a file whatever its size.
func (h *Handler) readZip(part io.Reader) (data []byte, path string, release func(), err error) {
	release, ok := modhash.HoldMemory(2 * h.memoryZip)
	if !ok {
		path, err = h.saveZip(part)
		return nil, path, func() {}, err
	}
	var buf bytes.Buffer
	limit := min(h.memoryZip, h.opts.MaxZipSize)
	if err := copyLimited(&buf, part, limit, "module zip"); err == nil {
		return buf.Bytes(), "", release, nil
	} else if he, ok := err.(*httpError); !ok || he.status != http.StatusRequestEntityTooLarge || limit == h.opts.MaxZipSize {
		release()
		return nil, "", func() {}, err
	}
	path, err = h.saveZip(io.MultiReader(&buf, part))
	release()
	return nil, path, func() {}, err
}

// saveZip streams the zip part to a temporary file and returns its name.
// A failure to create or write the file (a full -tmp-dir) is sumd's own:
// a 503 that names no path, not the client's bad input.
func (h *Handler) saveZip(part io.Reader) (string, error) {
	f, err := scratch.Create(h.opts.TempDir, scratch.Upload)
	if err != nil {
		return "", h.localError("failed to create a temporary file for the uploaded zip", err)
	}
	sw := &storeWriter{FloorWriter: tlog.FloorWriter{W: f, Path: f.Name(), Guard: tlog.SpaceGuard{Floor: h.floor(), Free: freeSpace}}}
	err = copyLimited(sw, part, h.opts.MaxZipSize, "module zip")
	var low *tlog.LowDiskError
	switch {
	case errors.As(sw.err, &low):
		h.log.Error("admin: upload refused: not enough free disk space in the temporary directory", "tmp_dir", h.opts.TempDir,
			"free", low.Free, "floor", low.Floor)
		err = &httpError{http.StatusInsufficientStorage, fmt.Sprintf(
			"not enough free disk space for the uploaded zip: the temporary directory's (-tmp-dir) file system has %d MiB free and %d MiB is kept free (-min-free-disk); free space there or point -tmp-dir at a larger disk",
			low.Free>>20, low.Floor>>20)}
	case sw.err != nil:
		err = h.localError("failed to store the uploaded zip", sw.err)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = h.localError("failed to store the uploaded zip", cerr)
	}
	return f.Name(), err
}

// A storeWriter remembers the error of its own writes, so that a full disk
// is told apart from a failure to read the request body. Its FloorWriter
// keeps the floor free on the file system written to, as first lookups'
// downloads do (internal/upstream).
type storeWriter struct {
	tlog.FloorWriter
	err error
}

func (s *storeWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.FloorWriter.Write(p)
	s.err = err
	return n, err
}

// localError logs a failure of sumd's own temporary directory, with the
// cause and its path, and returns the 503 that clients get instead.
func (h *Handler) localError(what string, err error) error {
	h.log.Error("admin: "+what, "tmp_dir", h.opts.TempDir, "err", err)
	return &httpError{http.StatusServiceUnavailable, "sumd cannot store the uploaded zip now; try again later (the server log says why)"}
}

// copyLimited copies src to dst, failing with a 413 past limit bytes.
func copyLimited(dst io.Writer, src io.Reader, limit int64, what string) error {
	n, err := io.Copy(dst, io.LimitReader(src, limit+1))
	switch {
	case err != nil:
		return badInput(err, "failed to read %s: %v", what, err)
	case n > limit:
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("%s is larger than the limit of %d bytes", what, limit)}
	}
	return nil
}

// answer sends the result of Record or Add; present is held's.
func (h *Handler) answer(w http.ResponseWriter, r *http.Request, id int64, rec gosum.Record, present bool, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	size := h.storedSize(r)
	h.log.InfoContext(r.Context(), "admin: recorded", "path", r.URL.Path, "module", rec.Path, "version", rec.Version, "id", id, "present", present)
	body, _ := json.Marshal(Result{ID: id, Record: string(rec.Text()), TreeSize: size, Present: present})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(body, '\n'))
}

// treeSize reads the tree size of our own signed tree head. The log signed
// it and the caller only reports the number, so it is not verified here.
func treeSize(signed []byte) (int64, error) {
	if !bytes.Contains(signed, []byte("\n\n")) {
		return 0, errors.New("signed tree head has no signature block")
	}
	tree, err := tlog.ParseHeadTree(signed)
	return tree.N, err
}

// httpError is an error answer whose message is safe to show.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// badInput is a 400, or a 413 if the body hit its size cap.
func badInput(err error, format string, args ...any) error {
	var tooBig *http.MaxBytesError
	var netErr *net.OpError
	switch {
	case errors.As(err, &tooBig):
		return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", tooBig.Limit)}
	case !errors.Is(err, os.ErrDeadlineExceeded) && (errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.As(err, &netErr)):
		// The connection failed (the server shutting down, a reset), not
		// the client's input: nothing was recorded, and trying again
		// may succeed. A client too slow for the read deadline stays
		// the client's failure.
		return &httpError{http.StatusServiceUnavailable, fmt.Sprintf("the connection failed while reading the request body, nothing was recorded: %v", err)}
	}
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// fail answers err as text/plain with its status.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := classify(err)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	h.log.Log(r.Context(), level, "admin request failed", "path", r.URL.Path, "status", status, "err", err)
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

// classify maps err to a status and a message safe to show: a conflict is
// 409 with both hashes; errors that carry a status keep it; anything else
// is a 500 whose detail only the log sees.
func classify(err error) (int, string) {
	var he *httpError
	var conflict *tlog.ConflictError
	var hs interface{ HTTPStatus() int }
	switch {
	case errors.As(err, &he):
		return he.status, he.msg
	case errors.As(err, &conflict):
		return http.StatusConflict, conflict.Error()
	case errors.As(err, &hs) && hs.HTTPStatus() >= 400 && hs.HTTPStatus() <= 599:
		return hs.HTTPStatus(), err.Error()
	}
	return http.StatusInternalServerError, "internal error"
}
