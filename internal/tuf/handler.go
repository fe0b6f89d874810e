package tuf

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Prefix is the URL path the handler serves the repository under:
// Prefix+"metadata/" and Prefix+"targets/", the layout go-tuf's updater
// expects below a repository URL such as https://sum.example.com/tuf.
const Prefix = "/tuf/"

// maxPath caps a request path: the longest real one is a hashed target,
// about 100 bytes plus the database name.
const maxPath = 512

// A File is a repository file a request path names.
type File struct {
	Path      string // slash-separated, relative to the repository directory
	Metadata  bool   // metadata (JSON); otherwise a target
	Immutable bool   // versioned or content-addressed: never rewritten
}

// ParsePath maps a request path below Prefix to the repository file that
// serves it. Only the files of the layout (see the package doc) parse:
// metadata/timestamp.json, metadata/<V>.{root,snapshot,targets}.json and
// targets/sumdb/<sha256>.<name>; nothing else in the directory (keys,
// the lock, temporary files) can be named.
func ParsePath(p string) (File, bool) {
	if len(p) > maxPath {
		return File{}, false
	}
	if name, ok := strings.CutPrefix(p, metadataDir+"/"); ok {
		return parseMetadataName(name)
	}
	if name, ok := strings.CutPrefix(p, targetsDir+"/sumdb/"); ok {
		hash, base, ok := strings.Cut(name, ".")
		if ok && isHexSHA256(hash) && validFileName(base) {
			return File{Path: p, Immutable: true}, true
		}
	}
	return File{}, false
}

func parseMetadataName(name string) (File, bool) {
	f := File{Path: metadataDir + "/" + name, Metadata: true}
	if name == timestampFile {
		return f, true
	}
	num, role, ok := strings.Cut(strings.TrimSuffix(name, ".json"), ".")
	if _, vok := parseVersion(num); !ok || !vok || !strings.HasSuffix(name, ".json") {
		return File{}, false
	}
	switch role {
	case metadata.ROOT, metadata.SNAPSHOT, metadata.TARGETS:
		f.Immutable = true
		return f, true
	}
	return File{}, false
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validFileName accepts the file names of published targets: a database
// name with "/" turned into "_" and an extension. Letters, digits and
// ".-_:~" only, not starting with ".", so never ".." or a hidden file.
func validFileName(s string) bool {
	if s == "" || len(s) > 255 || s[0] == '.' {
		return false
	}
	for _, c := range s {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune(".-_:~", c)
		if !ok {
			return false
		}
	}
	return true
}

// A Handler serves a repository directory read-only. It reads each file
// on each request, so whatever a writer renamed into place is served at
// once; files appear whole (files.go), so no lock is needed.
//
// It serves regular files only, opened below metadata/ and targets/ each
// confined to itself: the default online key directory DIR/keys lies in
// the repository directory, and a symbolic link planted in metadata/ by
// someone who may write there must not serve a private key.
type Handler struct {
	metadata, targets *os.Root
	log               *slog.Logger
	// Private, set before serving, marks answers Cache-Control private:
	// for a server whose clients all send credentials, so that no shared
	// cache gives its metadata (which names the database and its URL) to
	// others.
	Private bool
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a handler of the repository in dir.
func NewHandler(dir string, logger *slog.Logger) (*Handler, error) {
	md, err := os.OpenRoot(filepath.Join(dir, metadataDir))
	if err != nil {
		return nil, fmt.Errorf("failed to open TUF repository: %w", err)
	}
	tg, err := os.OpenRoot(filepath.Join(dir, targetsDir))
	if err != nil {
		md.Close()
		return nil, fmt.Errorf("failed to open TUF repository: %w", err)
	}
	return &Handler{metadata: md, targets: tg, log: logger}, nil
}

// Close releases the repository directory.
func (h *Handler) Close() error { return errors.Join(h.metadata.Close(), h.targets.Close()) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "only GET and HEAD")
		return
	}
	rel, _ := strings.CutPrefix(r.URL.Path, Prefix)
	f, ok := ParsePath(rel)
	if !ok {
		httpError(w, http.StatusNotFound, "not a file of this TUF repository")
		return
	}
	data, err := h.read(f.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Normal: clients probe root version N+1 until it is missing.
		httpError(w, http.StatusNotFound, "no such file: "+rel)
		return
	case err != nil:
		h.log.Error("failed to read TUF file", "path", f.Path, "err", err)
		httpError(w, http.StatusInternalServerError, "failed to read the file")
		return
	}
	w.Header().Set("Content-Type", contentType(f))
	cc := cacheControl(f)
	if h.Private {
		cc = "private" + strings.TrimPrefix(cc, "public")
	}
	w.Header().Set("Cache-Control", cc)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(data)
}

// read reads the file at path (a File's Path). The open never blocks (a
// FIFO), and the file opened must be the regular file Lstat found there:
// os.Root follows a link that stays inside the root, so a link swapped in
// between is refused too. So is a file renamed into place between the two
// (timestamp.json is replaced every few hours): read then tries again.
func (h *Handler) read(path string) ([]byte, error) {
	root, name := h.metadata, strings.TrimPrefix(path, metadataDir+"/")
	if rest, ok := strings.CutPrefix(path, targetsDir+"/"); ok {
		root, name = h.targets, rest
	}
	name = filepath.FromSlash(name)
	for try := 1; ; try++ {
		data, err := readIn(root, name)
		if !errors.Is(err, errReplaced) || try == 3 {
			return data, err
		}
	}
}

// errReplaced means a file was not the one Lstat found there.
var errReplaced = errors.New("not the regular file found there: a link, or replaced meanwhile")

func readIn(root *os.Root, name string) ([]byte, error) {
	fi, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", name, fi.Mode().Type())
	}
	file, err := root.OpenFile(name, os.O_RDONLY|readFlags, 0)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return readRegular(file, fi, maxMetadata)
}

func contentType(f File) string {
	if f.Metadata || strings.HasSuffix(f.Path, ".json") {
		return "application/json"
	}
	return "text/plain; charset=utf-8"
}

// cacheControl keeps metadata caching short: a cache must not hold a
// timestamp anywhere near its expiry, nor a versioned file past the minutes
// a rewritten repository (a mistake being fixed) needs. Hashed targets are
// named by their content and can be kept for ever.
func cacheControl(f File) string {
	switch {
	case !f.Metadata:
		return "public, max-age=31536000, immutable"
	case f.Immutable:
		return "public, max-age=300"
	}
	return "public, max-age=60"
}

// httpError answers a text/plain error that no cache keeps: a missing
// N+1.root.json appears the moment the root is rotated.
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}
