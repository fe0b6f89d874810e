package audit

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// Problem kinds. They are part of the JSON contract of `sumd verify -json`:
// add kinds, never rename them.
const (
	KindSignature       = "signature"        // /latest does not verify with the key
	KindFork            = "fork"             // two signed heads that cannot both be true
	KindRollback        = "rollback"         // a signed tree smaller than one signed before, whose hash tiles the server no longer serves
	KindTileMismatch    = "tile-mismatch"    // hash tiles that do not hash to the signed head
	KindDataMismatch    = "data-mismatch"    // a data tile whose records do not hash to the signed tree
	KindMalformedTile   = "malformed-tile"   // a data tile that is not W records, each followed by a blank line
	KindMalformedRecord = "malformed-record" // a record that is not the two go.sum lines of one module version
	KindDuplicate       = "duplicate"        // one module@version recorded twice
	KindLookup          = "lookup"           // a lookup answer that fails verification
	KindGosumMismatch   = "gosum-mismatch"   // a go.sum line with another hash than the database's
	KindGosumMissing    = "gosum-missing"    // a go.sum line whose module version the database lacks
	KindGosumMalformed  = "gosum-malformed"  // a go.sum line that is not "<path> <version>[/go.mod] h1:<hash>"
	KindDamaged         = "damaged"          // the server answers that the data (a data tile, a lookup, or a hash tile, which stops the audit) is damaged in its database (sumdbclient.DamagedText)
	KindTUF             = "tuf"              // the TUF metadata the verifier keys were to be learned from does not verify, or was rolled back: nothing was audited

	// KindGosumUnrecorded is not a problem but a note (Report.GosumUnrecorded):
	// the only line of its version in its go.sum file (a go.mod-only line,
	// or a zip-only one) whose version the database lacks. The go command
	// writes a go.mod line alone for the many versions it needed only for
	// version selection; a record needs both hashes, so importing the file
	// (sumd add -gosum) could not record it. Recording it is still useful: a
	// go command whose go.sum lacks the line looks the version up and gets a
	// 404 until then.
	KindGosumUnrecorded = "gosum-unrecorded"

	// KindStale is not a problem but a warning (Report.Warnings): /latest
	// served a tree smaller than one the database signed before, and the
	// older head's tiles prove it a prefix of that tree. It is the older
	// head a cache in front of the database may serve, which the go
	// command accepts too, keeping the newer; the auditor keeps the newer
	// saved as well, and checks the tree served. A database that keeps
	// serving it hides its newer records from whoever reads that /latest.
	KindStale = "stale"
)

// Checks, as listed in Report.Checks.
const (
	CheckSignature   = "signature"   // /latest is signed by the key
	CheckConsistency = "consistency" // the tree extends the heads saved in the state directory (the last run's, the checkpoint's)
	CheckTiles       = "tiles"       // the hash tiles at the tree's right edge hash to the signed root
	CheckRecords     = "records"     // -full: every record, its format and uniqueness
	CheckGosum       = "gosum"       // -gosum: go.sum lines against the database
)

// maxProblems caps the problems a report lists; a hostile log could
// otherwise produce one per record. The rest are only counted.
const maxProblems = 1000

// A Report is the outcome of an audit. Its JSON form is the output of
// `sumd verify -json`; fields are added, never renamed or removed.
type Report struct {
	// OK is true when every check ran to the end and found no problem.
	OK bool `json:"ok"`
	// Database is the checksum database name, from the verifier key.
	Database string `json:"database"`
	// URL is the base URL audited, without any password.
	URL string `json:"url"`
	// Tree is the signed tree head fetched from /latest, if it verified.
	Tree *Tree `json:"tree"`
	// Previous is the head saved in the state directory by an earlier run.
	Previous *Tree `json:"previous,omitempty"`
	// Checks lists the checks that ran to completion (Check* constants).
	Checks []string `json:"checks"`
	// RecordsFrom is the id of the first record audited by -full; the
	// records audited are RecordsFrom … RecordsFrom+RecordsAudited-1.
	RecordsFrom int64 `json:"records_from"`
	// RecordsAudited counts the records a full audit read and checked.
	RecordsAudited int64 `json:"records_audited"`
	// RecordsRechecked counts the records -recheck re-hashed from their
	// source: not those that are not go.sum records or that the source
	// no longer has.
	RecordsRechecked int64 `json:"records_rechecked,omitempty"`
	// GosumLines counts the go.sum lines checked.
	GosumLines int `json:"gosum_lines"`
	// GosumUnrecorded lists the go.mod-only (and zip-only) lines whose
	// versions the database has not recorded yet (KindGosumUnrecorded), at most 1000;
	// GosumUnrecordedCount counts them all. They are not problems: they
	// leave OK true.
	GosumUnrecorded      []Problem `json:"gosum_unrecorded,omitempty"`
	GosumUnrecordedCount int       `json:"gosum_unrecorded_count,omitempty"`
	// Warnings are findings that are not problems (KindStale): they leave
	// OK true.
	Warnings []Problem `json:"warnings,omitempty"`
	// Problems are the findings, at most 1000; ProblemsOmitted counts the rest.
	Problems        []Problem `json:"problems"`
	ProblemsOmitted int       `json:"problems_omitted,omitempty"`
	// Seconds is the audit's wall time; RecordsPerSecond is
	// RecordsAudited over it.
	Seconds          float64 `json:"seconds"`
	RecordsPerSecond float64 `json:"records_per_second"`
	// Error says why the audit could not run to the end; the report is
	// then partial and OK is false. Run returns the same error.
	Error string `json:"error,omitempty"`
}

// A Tree is a tree head: its size (the number of records) and root hash.
type Tree struct {
	Size int64  `json:"size"`
	Hash string `json:"hash"` // base64, as in the signed note
}

func treeOf(t tlog.Tree) *Tree { return &Tree{Size: t.N, Hash: t.Hash.String()} }

// A Problem is one finding about the database. Fields that do not apply
// are omitted from the JSON form.
type Problem struct {
	Kind    string  `json:"kind"`              // a Kind* constant
	Message string  `json:"message"`           // one paragraph for humans
	Record  *int64  `json:"record,omitempty"`  // record id
	Tile    string  `json:"tile,omitempty"`    // tile path, e.g. tile/8/data/012
	Module  string  `json:"module,omitempty"`  // module@version (cut as quote cuts it)
	File    string  `json:"file,omitempty"`    // go.sum file
	Line    int     `json:"line,omitempty"`    // line in File, from 1
	Heads   []Head  `json:"heads,omitempty"`   // signed heads in full: the evidence of a fork or rollback
	Records []int64 `json:"records,omitempty"` // the ids of a duplicate
}

// A Head is a signed tree head quoted as evidence.
type Head struct {
	Role string `json:"role"` // e.g. "saved", "served now"
	Note string `json:"note"` // the signed note, verbatim
}

func recordID(id int64) *int64 { return &id }

// findings collects problems from concurrent checks.
type findings struct {
	mu       sync.Mutex
	problems []Problem
	omitted  int
}

func (f *findings) add(p Problem) {
	p.Message, p.Module = bound(p.Message), quote(p.Module)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.problems) >= maxProblems {
		f.omitted++
		return
	}
	f.problems = append(f.problems, p)
}

func (f *findings) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.problems) + f.omitted
}

// quote is text the database chose (a module path from its records, a
// hash, the reason of an error), fit for a problem message: a hostile
// database could otherwise put a megabyte in each problem of the report,
// or escape sequences for the terminal showing it. Every message quotes
// such text through it.
func quote(s string) string { return sumdbclient.Quote(s) }

// maxMessage caps a whole problem message. The server's text in a message
// is quoted, a few hundred bytes; but the evidence of sumdb.Client's
// security error (the two heads and a proof, about 4 KiB) comes as one
// text of several lines, heads the database signed, and each lookup may
// add one.
const maxMessage = 8 << 10

// bound cuts a message to maxMessage bytes and replaces its control
// characters but its newlines and tabs, those of sumdb.Client's evidence.
func bound(msg string) string {
	if len(msg) > maxMessage {
		n := maxMessage
		for n > 0 && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n] + "…"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return '?'
		}
		return r
	}, msg)
}
