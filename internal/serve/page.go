package serve

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/gosum"
	sumdlog "github.com/sumd-project/sumd/internal/tlog"
)

// The status page is server-rendered HTML without scripts or external
// assets (air-gapped sites): the status, the latest records, and a search
// by module path. It is at "/", "/module?path=P" and "/record?id=N", paths
// the go command never asks a checksum database or a module proxy for, and
// its links are relative, so it works under a path prefix too.

// Bounds of the work one anonymous page request can cause.
const (
	recentShown     = 20   // records on the front page
	versionsShown   = 500  // versions on a module's page
	versionsScanned = 1000 // index entries read to pick the newest versionsShown, and releases sought beyond them
	newestReads     = 8    // backward reads of the newest versions of a module with more than versionsScanned
	modulesShown    = 100  // module paths listed for a prefix
	maxQuery        = 512  // bytes of a search query
)

// An Index lists the log's index in key order ("<path>@<version>",
// bytewise), within the signed tree: the page's search reads it.
// *tlog.Log implements it; another store serves it as an ordered range scan.
type Index interface {
	// ScanIndex returns up to limit entries starting at the first key not
	// less than from. It may cap limit. Fewer entries than asked for mean
	// the end of the index, unless cut: the scan stopped short (past too
	// many entries beyond the signed tree), and keys after the last entry
	// returned are not known.
	ScanIndex(ctx context.Context, from string, limit int) (entries []sumdlog.IndexEntry, cut bool, err error)
	// ScanIndexBack returns up to limit entries in descending key order,
	// starting at the last key less than before. It may cap limit, and
	// cut as ScanIndex does.
	ScanIndexBack(ctx context.Context, before string, limit int) (entries []sumdlog.IndexEntry, cut bool, err error)
	// ScanReleases returns up to limit entries of module path, starting
	// at the first key not less than from, each the first of its release
	// vX.Y.Z (the keys up to path@vX.Y.Z.). It may cap limit, and cut as
	// ScanIndex does.
	ScanReleases(ctx context.Context, path, from string, limit int) (entries []sumdlog.IndexEntry, cut bool, err error)
}

// pageLog is the log as the page reads it. *tlog.Log implements it.
type pageLog interface {
	Index
	Tree(ctx context.Context) (tlog.Tree, error)
	ReadRecords(ctx context.Context, id, n int64) ([][]byte, error)
	ReadRecordsByID(ctx context.Context, ids []int64) ([][]byte, error)
	ReadTileData(ctx context.Context, t tlog.Tile) ([]byte, error)
}

var _ pageLog = (*sumdlog.Log)(nil)

//go:embed page/*.html
var pageFiles embed.FS

var pageTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"when":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"ago":    func(t time.Time) string { return roundDuration(time.Since(t)) + " ago" },
	"until":  func(t time.Time) string { return Until(t, time.Now()) },
	"lookup": lookupPath,
	"chart":  chart,
	"dict":   dict,
	"nonzero": func(cs []Counter) []Counter {
		return slices.DeleteFunc(slices.Clone(cs), func(c Counter) bool { return c.Value == 0 })
	},
}).ParseFS(pageFiles, "page/*.html"))

// A page serves the status page.
type page struct {
	log       pageLog
	status    *board
	logger    *slog.Logger
	publicURL string // Config.PublicURL
}

// A recordView is one record as the page shows it.
type recordView struct {
	ID     int64
	Record gosum.Record
	Text   string // the two go.sum lines
}

// home serves "/": the status, the latest records and the search form.
func (p *page) home(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st := p.status.status(ctx)
	first := max(st.Log.TreeSize-recentShown, 0)
	recent, err := p.records(ctx, first, st.Log.TreeSize-first)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	slices.Reverse(recent)
	p.render(w, r, "home.html", map[string]any{
		"Status": st, "Recent": recent, "GOSUMDB": gosumdb(st, r, p.publicURL),
	})
}

// gosumdb is the GOSUMDB value for the server at public, or if that is
// empty as this request reached it: behind a reverse proxy that terminates
// TLS, that is http:// and the proxy's upstream host, so operators set
// public (-public-url). It names the oldest key, as sumd serve and sumd tuf gosumdb do: during a
// rotation every key signs, but a machine checks the head it kept from
// before the rotation, signed by the old key alone, with its GOSUMDB key,
// so the newest would lock it out (docs/keys.md).
func gosumdb(st *Status, r *http.Request, public string) string {
	if len(st.VerifierKeys) == 0 {
		return ""
	}
	if public != "" {
		return st.VerifierKeys[0] + " " + public
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return st.VerifierKeys[0] + " " + scheme + "://" + r.Host
}

// module serves "/module?path=P": the versions of module P, or, if it has
// none, the module paths starting with P. "P@V" goes to that record.
func (p *page) module(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("path"))
	if len(q) > maxQuery {
		p.error(w, r, http.StatusBadRequest, "The search is longer than 512 bytes.")
		return
	}
	if path, version, ok := strings.Cut(q, "@"); ok {
		// The first key not less than path@version is that version's if it
		// is recorded within the signed tree, cut short or not.
		es, _, err := p.log.ScanIndex(ctx, path+"@"+version, 1)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		if len(es) == 1 && es[0].Path == path && es[0].Version == version {
			// Relative, unlike http.Redirect's, so that it works under a prefix.
			w.Header().Set("Location", "record?id="+strconv.FormatInt(es[0].ID, 10))
			w.WriteHeader(http.StatusFound)
			return
		}
		q = path
	}
	data := map[string]any{"Query": q}
	if q != "" {
		versions, more, partial, err := p.versions(ctx, q)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		data["Versions"], data["MoreVersions"], data["Partial"] = versions, more, partial
		if len(versions) == 0 {
			data["Modules"], data["MoreModules"], err = p.modules(ctx, q)
			if err != nil {
				p.fail(w, r, err)
				return
			}
		}
	}
	p.render(w, r, "module.html", data)
}

// versions returns the records of module path, newest version first,
// whether it has more than versionsShown, and whether the module has more
// index entries than were read (partial). The index is in byte order
// (v1.10.0 before v1.9.0, every v0.0.0-... pseudo-version before v1.0.0),
// so it reads up to versionsScanned entries, which are cheap, sorts them by
// semver and reads the records of the newest, all in one read. A module
// with more entries may have its releases past those read, after thousands
// of pseudo-versions: releases adds the first entry of each release, and
// newest the newest versions of the newest releases.
func (p *page) versions(ctx context.Context, path string) (views []recordView, more, partial bool, err error) {
	es, cut, err := p.log.ScanIndex(ctx, path+"@", versionsScanned)
	if err != nil {
		return nil, false, false, err
	}
	// The read stopped within path's keys if it filled up, or was cut
	// short, before reaching another module's.
	partial = (len(es) == versionsScanned || cut) && (len(es) == 0 || es[len(es)-1].Path == path)
	es = slices.DeleteFunc(es, func(e sumdlog.IndexEntry) bool { return e.Path != path })
	if partial {
		// The releases up to the last entry read are among es.
		read, from := keyRange{path + "@", path + "@"}, path+"@"
		if len(es) > 0 {
			last := es[len(es)-1]
			read.hi, from = indexKey(last)+"\x00", path+"@"+release(last.Version)+"."
		}
		rs, all, err := p.releases(ctx, path, from)
		if err != nil {
			return nil, false, false, err
		}
		es = append(es, rs...)
		var complete bool
		if es, complete, err = p.newest(ctx, path, es, read); err != nil {
			return nil, false, false, err
		}
		partial = !complete || !all
	}
	slices.SortFunc(es, func(a, b sumdlog.IndexEntry) int { return semver.Compare(b.Version, a.Version) })
	es = slices.CompactFunc(es, func(a, b sumdlog.IndexEntry) bool { return a.Version == b.Version })
	more = partial || len(es) > versionsShown
	es = es[:min(len(es), versionsShown)]
	ids := make([]int64, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	texts, err := p.log.ReadRecordsByID(ctx, ids)
	if err != nil {
		return nil, false, false, err
	}
	views = make([]recordView, len(texts))
	for i, text := range texts {
		if views[i], err = parseView(ids[i], text); err != nil {
			return nil, false, false, err
		}
	}
	return views, more, partial, nil
}

// A keyRange is the index keys from lo, up to hi but not hi.
type keyRange struct{ lo, hi string }

func indexKey(e sumdlog.IndexEntry) string { return e.Path + "@" + e.Version }

// newest adds to es (the first entry of each release of path, and the
// entries of the key range read) the newest versions of path's newest
// releases, and reports whether they are all there: the newest
// versionsShown are then among es. The keys of a release vX.Y.Z are one
// range, path@vX.Y.Z up to path@vX.Y.Z. ("." sorts after the "-" and "+"
// of its other versions, and before the digits of a longer patch number),
// and in it the newest pseudo-versions (and most pre-releases) sort last:
// so it visits the releases newest first, and reads backwards from the end
// of each release's keys not read yet, versionsShown entries at a time.
// The releases of the keys before it in byte order (most often the next
// releases) come with the same read. It makes at most newestReads reads.
// A read cut short leaves the keys before those it returned unknown, so
// the newest versions may then not all be there.
func (p *page) newest(ctx context.Context, path string, es []sumdlog.IndexEntry, read keyRange) ([]sumdlog.IndexEntry, bool, error) {
	var rels []string
	for _, e := range es {
		rels = append(rels, release(e.Version))
	}
	slices.SortFunc(rels, func(a, b string) int { return semver.Compare(b, a) })
	rels = slices.Compact(rels)
	byRelease := map[string]int{} // entries of es by release
	seen := map[string]bool{}
	add := func(e sumdlog.IndexEntry) {
		if !seen[e.Version] {
			seen[e.Version] = true
			byRelease[release(e.Version)]++
			es = append(es, e)
		}
	}
	found := es
	es = nil
	for _, e := range found {
		add(e)
	}
	ranges := []keyRange{read}
	reads, taken, complete := 0, 0, true
	for _, r := range rels {
		end := path + "@" + r + "."
		if !slices.ContainsFunc(ranges, func(k keyRange) bool { return k.lo < end && end <= k.hi }) {
			if reads == newestReads {
				return es, false, nil
			}
			got, cut, err := p.log.ScanIndexBack(ctx, end, versionsShown)
			if err != nil {
				return nil, false, err
			}
			reads++
			lo, first := end, false
			for _, e := range got {
				if first = e.Path != path; first {
					break
				}
				add(e)
				lo = indexKey(e)
			}
			switch {
			case first || len(got) < versionsShown && !cut:
				lo = path + "@" // the read reached the module's first key
			case cut:
				complete = false
			}
			ranges = append(ranges, keyRange{lo, end})
		}
		if taken += byRelease[r]; taken >= versionsShown {
			break
		}
	}
	return es, complete, nil
}

// releases returns the first index entry of each release vX.Y.Z of path
// from key from on, in byte order, at most versionsScanned, and whether
// they are all there: the release itself if recorded (its key comes
// before its pre-releases' and pseudo-versions'), else the first of those.
// It is one read of the store, however many versions each release has:
// the store seeks from release to release (ScanReleases), where reads of
// the index in order cost one per release of more than a few versions.
func (p *page) releases(ctx context.Context, path, from string) ([]sumdlog.IndexEntry, bool, error) {
	rs, cut, err := p.log.ScanReleases(ctx, path, from, versionsScanned)
	return rs, !cut && len(rs) < versionsScanned, err
}

// release returns the release vX.Y.Z of a version: without its
// pre-release and build suffixes.
func release(version string) string {
	r, _, _ := strings.Cut(version, "-")
	r, _, _ = strings.Cut(r, "+")
	return r
}

// modules returns up to modulesShown module paths starting with prefix,
// and whether there are more. Each is one seek past the previous path's
// versions, so the work does not grow with their number.
func (p *page) modules(ctx context.Context, prefix string) ([]string, bool, error) {
	var out []string
	for from := prefix; ; {
		es, cut, err := p.log.ScanIndex(ctx, from, 1)
		if err != nil || len(es) == 0 || !strings.HasPrefix(es[0].Path, prefix) {
			return out, cut, err // cut short: there may be more
		}
		if len(out) == modulesShown {
			return out, true, nil
		}
		out = append(out, es[0].Path)
		from = es[0].Path + "@\xff" // after every version of that path
	}
}

// A proofView is the inclusion proof of a record in the signed tree.
type proofView struct {
	Tree     tlog.Tree
	Root     string
	Hashes   []string    // the proof, base64, from the leaf up
	Tiles    []tlog.Tile // the hash tiles a client reads to check it
	Verified bool
	Err      string
}

// record serves "/record?id=N": the record and its inclusion proof.
func (p *page) record(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, err := strconv.ParseInt(r.URL.Query().Get("id"), 10, 64)
	if err != nil || id < 0 {
		p.error(w, r, http.StatusBadRequest, "A record id is a number: record?id=123.")
		return
	}
	tree, err := p.log.Tree(ctx)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if id >= tree.N {
		p.error(w, r, http.StatusNotFound, fmt.Sprintf("There is no record %d: the log holds %d.", id, tree.N))
		return
	}
	rs, err := p.records(ctx, id, 1)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, "record.html", map[string]any{"Record": rs[0], "Proof": p.prove(ctx, tree, rs[0])})
}

// prove computes the inclusion proof of rv in tree the way the go command
// does: from hash tiles authenticated against the tree's root, recording
// which it read. The page shows the hashes, the tiles and the check.
func (p *page) prove(ctx context.Context, tree tlog.Tree, rv recordView) *proofView {
	pv := &proofView{Tree: tree, Root: base64.StdEncoding.EncodeToString(tree.Hash[:])}
	tr := &tileRecorder{ctx: ctx, log: p.log}
	proof, err := tlog.ProveRecord(tree.N, rv.ID, tlog.TileHashReader(tree, tr))
	if err == nil {
		err = tlog.CheckRecord(proof, tree.N, tree.Hash, rv.ID, tlog.RecordHash([]byte(rv.Text)))
	}
	if err != nil {
		p.logger.Error("status page: failed to prove a record", "id", rv.ID, "err", err)
		pv.Err = "The proof could not be computed (see the server log)."
		return pv
	}
	for _, h := range proof {
		pv.Hashes = append(pv.Hashes, base64.StdEncoding.EncodeToString(h[:]))
	}
	pv.Tiles, pv.Verified = tr.tiles, true
	slices.SortFunc(pv.Tiles, func(a, b tlog.Tile) int { return cmpTile(a, b) })
	pv.Tiles = slices.Compact(pv.Tiles)
	return pv
}

func cmpTile(a, b tlog.Tile) int {
	if a.L != b.L {
		return a.L - b.L
	}
	return int(a.N - b.N)
}

// tileRecorder reads hash tiles from the log for tlog.TileHashReader and
// remembers which.
type tileRecorder struct {
	ctx   context.Context
	log   pageLog
	tiles []tlog.Tile
}

var _ tlog.TileReader = (*tileRecorder)(nil)

func (r *tileRecorder) Height() int { return 8 }

func (r *tileRecorder) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := r.log.ReadTileData(r.ctx, t)
		if err != nil {
			return nil, err
		}
		out[i] = data
		r.tiles = append(r.tiles, t)
	}
	return out, nil
}

func (r *tileRecorder) SaveTiles([]tlog.Tile, [][]byte) {}

// records reads n records from id for the page.
func (p *page) records(ctx context.Context, id, n int64) ([]recordView, error) {
	if n == 0 {
		return nil, nil
	}
	texts, err := p.log.ReadRecords(ctx, id, n)
	if err != nil {
		return nil, err
	}
	out := make([]recordView, len(texts))
	for i, text := range texts {
		if out[i], err = parseView(id+int64(i), text); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseView returns the view of record id, of the given text.
func parseView(id int64, text []byte) (recordView, error) {
	rec, err := gosum.Parse(text)
	if err != nil {
		return recordView{}, fmt.Errorf("failed to parse record %d: %w", id, err)
	}
	return recordView{ID: id, Record: rec, Text: string(text)}, nil
}

// render executes template name into a buffer first, so that a failure
// is a clean 500 rather than half a page.
func (p *page) render(w http.ResponseWriter, r *http.Request, name string, data map[string]any) {
	p.renderStatus(w, r, http.StatusOK, name, data)
}

func (p *page) renderStatus(w http.ResponseWriter, r *http.Request, code int, name string, data map[string]any) {
	data["Name"] = p.status.log.Name()
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, data); err != nil {
		p.logger.Error("status page: failed to render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// No scripts, no external anything: say so to the browser too.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// error serves a page saying what is wrong with the request.
func (p *page) error(w http.ResponseWriter, r *http.Request, code int, msg string) {
	p.renderStatus(w, r, code, "error.html", map[string]any{"Message": msg, "Code": code})
}

// fail serves a 500 for an internal failure, which only the log details.
func (p *page) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		p.error(w, r, http.StatusNotFound, "Not found.")
		return
	}
	p.logger.Error("status page failed", "path", r.URL.Path, "err", err)
	p.error(w, r, http.StatusInternalServerError, "Internal error (see the server log).")
}

// dict makes a map of its key, value arguments, for template calls.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// lookupPath is the protocol's lookup path of a record, relative.
func lookupPath(rec gosum.Record) string {
	path, err1 := module.EscapePath(rec.Path)
	version, err2 := module.EscapeVersion(rec.Version)
	if err1 != nil || err2 != nil {
		return ""
	}
	return "lookup/" + path + "@" + version
}
