package mirror

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/sumdbclient"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// A bundle is an uncompressed POSIX tar file (docs/mirrors.md documents it
// for operators) whose entries come in exactly this order:
//
//	sumd-bundle           the header: "sumd mirror bundle 1" and key-value lines
//	head                  the origin's signed head of the tree of size "to", verbatim
//	tile/8/L/N[.p/W]      the skeleton of the extension from "from" to "to"
//	                      (tlog.StagingPlan): every tile of level 1 and above, and
//	                      the first and last tiles of level 0, in that plan's order
//	records/N             for each level-0 tile of the skeleton, in order, the
//	                      records of data tile N the bundle carries (if any)
//	tile/8/0/N            then each other level-0 tile of the extension, in order,
//	records/N             each followed by the records of its data tile (if any)
//
// A records entry holds records in ascending id order, each as a lookup
// writes it (x/mod's tlog.FormatRecord): "<id>\n<two go.sum lines>\n". A
// full mirror's bundle carries every record from "from" on; a partial
// mirror's, those it holds. Everything from the head on is verified
// against the origin's key before any of it is stored; the canonical order
// makes a bundle with entries moved, dropped or added fail by name.
const (
	bundleMagic   = "sumd mirror bundle 1"
	headerName    = "sumd-bundle"
	headName      = "head"
	recordsPrefix = "records/"
)

// Caps on a bundle's parts: it comes from outside the air gap, on a disk
// whoever carried it could have changed.
const (
	maxHeader  = 4 << 10
	maxRecords = sumdbclient.MaxDataTile + 256*24 // a data tile's worth of records, with their ids
	maxPadding = 1 << 20                          // zeros after the tar's end marker (tar pads to a multiple of its record size)
)

// A BundleHeader describes a bundle.
type BundleHeader struct {
	Name     string    // the origin's name
	From, To int64     // the tree sizes the bundle goes from and to
	Created  time.Time // when it was written
	// Checked is when the exporting mirror last knew the head to be its
	// origin's latest: the importing mirror reports its age from it.
	Checked time.Time
	Partial bool // the exporting mirror holds only some records
	// Private is set when the exporting mirror's data is private: read
	// from its origin with credentials, or imported from a private
	// mirror's bundle (Config.private). Written only when true ("private
	// true"), so that a public mirror's bundle stays readable by a sumd
	// from before the key, and a private one is refused by it rather than
	// imported as public.
	Private bool
}

func (h BundleHeader) marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nname %s\nfrom %d\nto %d\ncreated %s\n", bundleMagic, h.Name, h.From, h.To, h.Created.UTC().Format(time.RFC3339Nano))
	if !h.Checked.IsZero() {
		fmt.Fprintf(&b, "checked %s\n", h.Checked.UTC().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(&b, "partial %t\n", h.Partial)
	if h.Private {
		b.WriteString("private true\n")
	}
	return b.Bytes()
}

// parseHeader parses a bundle header strictly: the magic line, then the
// known keys, each once.
func parseHeader(data []byte) (BundleHeader, error) {
	var h BundleHeader
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) == 0 || lines[0] != bundleMagic {
		return h, fmt.Errorf("not a sumd mirror bundle (or a newer format): the header does not start with %q", bundleMagic)
	}
	seen := map[string]bool{}
	for _, line := range lines[1:] {
		k, v, ok := strings.Cut(line, " ")
		if !ok || seen[k] {
			return h, fmt.Errorf("malformed bundle header line %s", quoteCap(line))
		}
		seen[k] = true
		var err error
		switch k {
		case "name":
			h.Name = v
		case "from":
			h.From, err = strconv.ParseInt(v, 10, 64)
		case "to":
			h.To, err = strconv.ParseInt(v, 10, 64)
		case "created":
			h.Created, err = parseTime(v)
		case "checked":
			h.Checked, err = parseTime(v)
		case "partial":
			h.Partial, err = strconv.ParseBool(v)
		case "private":
			h.Private, err = strconv.ParseBool(v)
		default:
			err = errors.New("unknown key")
		}
		if err != nil {
			return h, fmt.Errorf("malformed bundle header line %s: %v", quoteCap(line), err)
		}
	}
	switch {
	case h.Name == "" || !seen["from"] || !seen["to"] || !seen["created"]:
		return h, errors.New("malformed bundle header: it needs name, from, to and created")
	case h.From < 0 || h.To < h.From || h.To > sumdbclient.MaxTreeSize:
		return h, fmt.Errorf("malformed bundle header: from %d to %d", h.From, h.To)
	}
	return h, nil
}

// parseTime parses a header time, refusing one outside years 0 to 9999 in
// UTC, the form marshal writes: RFC 3339 has four digits for the year,
// and an offset can carry 9999-12-31 into year 10000 or 0000-01-01 into
// year -1.
func parseTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if y := t.UTC().Year(); err == nil && (y < 0 || y > 9999) {
		err = fmt.Errorf("year %d in UTC", y)
	}
	return t, err
}

// quoteCap quotes s for an error message (%s, not %q), cut to 80 bytes.
func quoteCap(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}

// planTiles is tlog.StagingPlan, and nothing for an empty extension.
func planTiles(from, to int64) (skeleton, leaves []tlog.Tile) {
	if to <= from {
		return nil, nil
	}
	return itlog.StagingPlan(from, to)
}

// A bundleWriter writes a bundle's entries in order.
type bundleWriter struct {
	tw *tar.Writer
	n  int64 // bytes of entry data written
}

func (w *bundleWriter) entry(name string, data []byte) error {
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("failed to write the bundle: %w", err)
	}
	if _, err := w.tw.Write(data); err != nil {
		return fmt.Errorf("failed to write the bundle: %w", err)
	}
	w.n += int64(len(data))
	return nil
}

// formatRecords formats records for a records entry.
func formatRecords(ids []int64, texts [][]byte) ([]byte, error) {
	var b []byte
	for i, id := range ids {
		msg, err := tlog.FormatRecord(id, texts[i])
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", id, err)
		}
		b = append(b, msg...)
	}
	return b, nil
}

// parseRecords parses a records entry of data tile n: records in
// ascending id order within the tile, each at least from.
func parseRecords(data []byte, n, from int64) (map[int64][]byte, []int64, error) {
	out := map[int64][]byte{}
	var ids []int64
	for len(data) > 0 {
		id, text, rest, err := tlog.ParseRecord(data)
		if err != nil {
			return nil, nil, fmt.Errorf("malformed record: %w", err)
		}
		switch {
		case id < n<<8 || id >= (n+1)<<8:
			return nil, nil, fmt.Errorf("record %d is not in data tile %d", id, n)
		case id < from:
			return nil, nil, fmt.Errorf("record %d is older than the tree of size %d the bundle starts from", id, from)
		case len(ids) > 0 && id <= ids[len(ids)-1]:
			return nil, nil, fmt.Errorf("record %d comes after record %d: records must be in ascending order", id, ids[len(ids)-1])
		case len(text) > itlog.MaxMirroredRecord: // what a mirror stores of an origin's records
			return nil, nil, fmt.Errorf("record %d is larger than %d bytes", id, itlog.MaxMirroredRecord)
		}
		out[id] = text
		ids = append(ids, id)
		data = rest
	}
	return out, ids, nil
}

// A bundleReader reads a bundle's entries in their canonical order, each
// within its size cap, and names the first one out of place.
type bundleReader struct {
	r    *bufio.Reader // what tr reads, through pos
	pos  *tarPosition
	tr   *tar.Reader
	peek *tar.Header // read but not consumed
	n    int64       // entries read, for messages
	last int64       // where the last entry's data ends in the bundle
}

func newBundleReader(r io.Reader) *bundleReader {
	br := bufio.NewReaderSize(r, 1<<16)
	pos := &tarPosition{r: br}
	return &bundleReader{r: br, pos: pos, tr: tar.NewReader(pos)}
}

// tarPosition counts the bytes the tar reader consumed, and how many of
// the last of them are zero: archive/tar reports the end (io.EOF) alike at
// its end marker, two zero blocks, and where the file ends after an entry,
// so end tells a bundle cut at an entry's end by what was read.
type tarPosition struct {
	r     io.Reader
	n     int64
	zeros int64 // trailing zero bytes among the n
}

func (p *tarPosition) Read(b []byte) (int, error) {
	k, err := p.r.Read(b)
	p.n += int64(k)
	i := k
	for i > 0 && b[i-1] == 0 {
		i--
	}
	if i == 0 {
		p.zeros += int64(k)
	} else {
		p.zeros = int64(k - i)
	}
	return k, err
}

// next returns the next entry's header, without consuming it.
func (r *bundleReader) next() (*tar.Header, error) {
	if r.peek != nil {
		return r.peek, nil
	}
	for {
		h, err := r.tr.Next()
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, fmt.Errorf("the bundle is damaged or truncated after entry %d: %w", r.n, err)
		}
		if h.Typeflag == tar.TypeReg {
			r.peek = h
			return h, nil
		}
		if h.Typeflag != tar.TypeXGlobalHeader {
			return nil, fmt.Errorf("bundle entry %s is not a regular file", quoteCap(h.Name))
		}
	}
}

// read consumes the next entry, which must be called name, and returns its
// data, at most limit bytes (exactly size, if size >= 0).
func (r *bundleReader) read(name string, limit, size int64) ([]byte, error) {
	h, err := r.next()
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("the bundle is truncated: it ends where %s should come", name)
	}
	if err != nil {
		return nil, err
	}
	if h.Name != name {
		return nil, fmt.Errorf("the bundle's entry %d is %s where %s should come: entries are missing, added or out of order", r.n+1, quoteCap(h.Name), name)
	}
	if h.Size > limit || size >= 0 && h.Size != size {
		return nil, fmt.Errorf("bundle entry %s is %d bytes, want %s", name, h.Size, sizeWant(limit, size))
	}
	r.peek = nil
	r.n++
	data := make([]byte, h.Size)
	if _, err := io.ReadFull(r.tr, data); err != nil {
		return nil, fmt.Errorf("the bundle is truncated in entry %s: %w", name, err)
	}
	r.last = r.pos.n
	return data, nil
}

func sizeWant(limit, size int64) string {
	if size >= 0 {
		return strconv.FormatInt(size, 10)
	}
	return "at most " + strconv.FormatInt(limit, 10)
}

// optional reads the next entry if it is called name, and returns nil
// otherwise.
func (r *bundleReader) optional(name string, limit int64) ([]byte, error) {
	h, err := r.next()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	if h == nil || h.Name != name {
		return nil, nil
	}
	return r.read(name, limit, -1)
}

// tarBlock is the tar format's block: its end marker is two zero ones.
const tarBlock = 512

// end checks that nothing follows the last entry: no other entry, and
// after the tar's end marker nothing but zero padding (tar pads to its
// record size, 10 KiB for GNU tar), at most maxPadding bytes of it. The
// tar reader stops at the end marker, so a second bundle appended to the
// first (cat a b) would otherwise be ignored without a word.
func (r *bundleReader) end() error {
	h, err := r.next()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	if h != nil {
		return fmt.Errorf("the bundle holds an entry %s after its last one", quoteCap(h.Name))
	}
	// The end marker: two zero blocks after the last entry's data (and its
	// padding). Without them the bundle was cut where an entry ends, and
	// what is missing may be optional entries (a partial bundle's records).
	if r.pos.zeros < 2*tarBlock || r.pos.n-2*tarBlock < r.last {
		return fmt.Errorf("the bundle is truncated: it ends after its entry %d without the tar's end marker", r.n)
	}
	var n int64
	for {
		b, err := r.r.ReadByte()
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return fmt.Errorf("failed to read the bundle after its end: %w", err)
		case b != 0:
			return errors.New("the bundle has data after its end (another bundle appended to it?): a bundle with anything added is refused; import each bundle file as it was exported")
		case n >= maxPadding:
			return fmt.Errorf("the bundle has more than %d bytes of padding after its end", maxPadding)
		}
		n++
	}
}

// entryFraming bounds the tar framing of one entry: its header block, a
// PAX extended header (a block and its records), and the padding of its
// data to a block; and, once per bundle, a global header a tar tool that
// repacked it may add (the reader skips those).
const entryFraming = 4 * tarBlock

// MaxBundleSize is the most bytes a bundle whose header says h can hold
// that Import may accept: each entry at its cap, with its framing, and
// the padding after the end marker. A stream larger than that is no
// bundle of those trees (cmd/sumd stops copying a piped bundle there); a
// header beyond the largest tree a mirror takes (MaxTreeSize) has none.
func MaxBundleSize(h BundleHeader) (int64, error) {
	if h.From < 0 || h.To < h.From || h.To > MaxTreeSize {
		return 0, fmt.Errorf("the bundle's header says it goes from tree %d to %d, beyond the %d records a mirror takes", h.From, h.To, int64(MaxTreeSize))
	}
	n := int64(3*entryFraming + maxHeader + sumdbclient.MaxLatest + 2*tarBlock + maxPadding)
	// The tiles of each level the extension changes (a level-L tile
	// covers 256^(L+1) records), up to the first level whose one tile
	// covers more than the tree (a tree of 256^k records has a tile of
	// one hash at level k).
	for span := int64(256); ; span <<= 8 {
		n += ((h.To+span-1)/span - h.From/span + 1) * (entryFraming + sumdbclient.MaxHashTile)
		if span > h.To {
			break
		}
	}
	// A records entry for each data tile.
	return n + ((h.To+255)/256-h.From/256+1)*(entryFraming+maxRecords), nil
}

// ReadBundleHeader reads the header of the bundle r, unverified: what it
// says it holds.
func ReadBundleHeader(r io.Reader) (BundleHeader, error) {
	data, err := newBundleReader(r).read(headerName, maxHeader, -1)
	if err != nil {
		return BundleHeader{}, err
	}
	return parseHeader(data)
}

func recordsEntry(n int64) string { return recordsPrefix + strconv.FormatInt(n, 10) }

// A bundleVisitor is called for the parts of a bundle as walkBundle reads
// them, in order; an error stops the walk.
type bundleVisitor interface {
	// header: the header and the signed head, which open has verified.
	header(h BundleHeader, head []byte, tree tlog.Tree) error
	// skeleton: every tile of the skeleton.
	skeleton(tiles map[tlog.Tile][]byte) error
	// leaf: a level-0 tile not in the skeleton.
	leaf(t tlog.Tile, data []byte) error
	// records: the records of data tile n, after its level-0 tile.
	records(n int64, recs map[int64][]byte, ids []int64) error
}

// walkBundle reads a bundle, checking its order and caps, and calls v for
// its parts. open verifies the signed head with the origin's keys, before
// anything that depends on the tree's size is planned (a forged header
// could otherwise ask for billions of tiles).
func walkBundle(r io.Reader, open func([]byte) (tlog.Tree, error), v bundleVisitor) (BundleHeader, error) {
	br := newBundleReader(r)
	data, err := br.read(headerName, maxHeader, -1)
	if err != nil {
		return BundleHeader{}, err
	}
	h, err := parseHeader(data)
	if err != nil {
		return h, err
	}
	head, err := br.read(headName, sumdbclient.MaxLatest, -1)
	if err != nil {
		return h, err
	}
	tree, err := open(head)
	if err != nil {
		return h, err
	}
	if tree.N != h.To {
		return h, fmt.Errorf("the bundle's header says it goes to tree %d, but its signed head is of tree %d", h.To, tree.N)
	}
	if err := v.header(h, head, tree); err != nil {
		return h, err
	}
	skeleton, leaves := planTiles(h.From, h.To)
	tiles := make(map[tlog.Tile][]byte, len(skeleton))
	for _, t := range skeleton {
		if tiles[t], err = br.read(t.Path(), sumdbclient.MaxHashTile, int64(t.W*tlog.HashSize)); err != nil {
			return h, err
		}
	}
	if err := v.skeleton(tiles); err != nil {
		return h, err
	}
	recordsOf := func(n int64) error {
		data, err := br.optional(recordsEntry(n), maxRecords)
		if err != nil || data == nil {
			return err
		}
		recs, ids, err := parseRecords(data, n, h.From)
		if err != nil {
			return fmt.Errorf("bundle entry %s: %w", recordsEntry(n), err)
		}
		return v.records(n, recs, ids)
	}
	for _, t := range skeleton {
		if t.L == 0 {
			if err := recordsOf(t.N); err != nil {
				return h, err
			}
		}
	}
	// The level-0 tiles are read and their records parsed in one goroutine
	// and visited in this one, in order: parsing is about as long as
	// verifying. The first error in the bundle's order is the answer.
	items := make(chan leafEntry, 4)
	stop := make(chan struct{})
	defer func() {
		close(stop)
		for range items { // r is read no more once walkBundle returns
		}
	}()
	go readLeaves(br, leaves, h.From, items, stop)
	for it := range items {
		if it.data != nil { // the tile comes before its records in the bundle
			if err := v.leaf(it.t, it.data); err != nil {
				return h, err
			}
		}
		if it.err != nil {
			return h, it.err
		}
		if it.recs != nil {
			if err := v.records(it.t.N, it.recs, it.ids); err != nil {
				return h, err
			}
		}
	}
	return h, nil
}

// A leafEntry is a level-0 tile of a bundle with its records, parsed; or
// the error that ends the bundle's reading.
type leafEntry struct {
	t    tlog.Tile
	data []byte
	recs map[int64][]byte // nil if the bundle holds none of the tile's
	ids  []int64
	err  error
}

// readLeaves reads the bundle's level-0 tiles and their records, after
// the skeleton, and sends them in order to items, then the end of the
// bundle's check; it stops at the first error, which it sends, or when
// stop is closed. It closes items.
func readLeaves(br *bundleReader, leaves []tlog.Tile, from int64, items chan<- leafEntry, stop <-chan struct{}) {
	defer close(items)
	send := func(it leafEntry) bool {
		select {
		case items <- it:
			return it.err == nil
		case <-stop:
			return false
		}
	}
	for _, t := range leaves {
		it := leafEntry{t: t}
		if it.data, it.err = br.read(t.Path(), sumdbclient.MaxHashTile, int64(t.W*tlog.HashSize)); it.err == nil {
			var data []byte
			data, it.err = br.optional(recordsEntry(t.N), maxRecords)
			if it.err == nil && data != nil {
				it.recs, it.ids, it.err = parseRecords(data, t.N, from)
				if it.err != nil {
					it.err = fmt.Errorf("bundle entry %s: %w", recordsEntry(t.N), it.err)
				}
			}
		}
		if !send(it) {
			return
		}
	}
	if err := br.end(); err != nil {
		send(leafEntry{err: err})
	}
}
