package config

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

var (
	mirrorCommand = command{
		name:  "mirror",
		usage: "sumd mirror -mirror FILE [-origin URL] [-origin-key VKEYS|FILE] [-modules LIST] [-auth AUTH] [flags]",
		summary: "Follow a checksum database once: fetch its signed head, hash tiles and records,\n" +
			"verify them with its verifier key and store them in the mirror database,\n" +
			"which sumd serve -mirror FILE then serves. A new mirror of sum.golang.org needs\n" +
			"no -origin or -origin-key; the database remembers them. Exit status 0: the\n" +
			"mirror holds the origin's latest head; 1: the origin's data was refused\n" +
			"(SECURITY) or the mirror could not be updated; 2: bad flags, or the origin\n" +
			"could not be reached.",
		example: "sumd mirror -mirror data/sum.golang.org.db -modules go.sum,golang.org/x/*",
	}
	mirrorExportCommand = command{
		name:    "mirror export",
		usage:   "sumd mirror export -mirror FILE -o BUNDLE [-since N|BUNDLE|HEADFILE]",
		summary: "Write what the mirror holds into one file (a bundle) for an air-gapped site:\nits signed head and every tile and record needed to reach it from an earlier\ntree (-since: a tree size, the previous bundle, or a file holding a signed\nhead) or from empty. See docs/mirrors.md.",
		example: "sumd mirror export -mirror data/sum.golang.org.db -since last.bundle -o next.bundle",
	}
	mirrorImportCommand = command{
		name:    "mirror import",
		usage:   "sumd mirror import -mirror FILE [-origin-key VKEYS|FILE] BUNDLE...",
		summary: "Verify a bundle in full against the origin's key and what the mirror holds,\nthen store it (creating the mirror database if needed). A tampered,\ntruncated, reordered or forked bundle changes nothing. A BUNDLE of - is\nstandard input.",
		example: "sumd mirror import -mirror /srv/sumd/sum.golang.org.db next.bundle",
	}
)

// MirrorDB names a mirror's database and the origin's keys. Its Sources
// say where origin-key was set: the key (or its file) is read when the
// mirror is opened.
type MirrorDB struct {
	Mirror    string `flag:"mirror" arg:"FILE" help:"the mirror's database file (bbolt), created on first use; it remembers its origin's URL, keys and -modules"`
	OriginKey string `flag:"origin-key" arg:"VKEYS|FILE" help:"the origin's verifier keys (\"name+hash+base64\", comma-separated) or a file holding them; default: the keys the mirror database remembers, or sum.golang.org's for a new mirror of it (required for a new mirror of any other -origin)"`
	Sources
}

// Validate reports every problem of m, one per line.
func (m *MirrorDB) Validate() error {
	switch {
	case m.Mirror == "":
		return errors.New("mirror is empty: set -mirror to the mirror's database file")
	case strings.Contains(m.Mirror, ","):
		// sumd serve's mirror is a comma-separated list; here a list would
		// create a new mirror database named after it.
		return fmt.Errorf("mirror %q holds a comma: this command takes one mirror database; the comma-separated list is sumd serve's -mirror (run this command once per mirror, with -mirror FILE)", m.Mirror)
	}
	return nil
}

// Mirror configures `sumd mirror`.
type Mirror struct {
	MirrorDB
	DiskFloor
	Log
	Origin  string `flag:"origin" arg:"URL" help:"base URL of the checksum database to follow: a sumd, https://sum.golang.org, another mirror, or a proxy path such as https://proxy.example/sumdb/sum.golang.org; default: the URL the mirror database remembers, or https://sum.golang.org for a new mirror"`
	Modules string `flag:"modules" arg:"LIST" help:"make the mirror partial: comma-separated go.sum files (ending in .sum) and module path patterns (GOPRIVATE syntax), and '!pattern' entries excluding modules (list a company's private modules so, or their paths are asked of the origin every round); every hash tile is kept, but only the records of those versions; default: the list the mirror database remembers, or every record (a full mirror)"`
	ClientAuth
	ClientCert
	Step     int           `flag:"step" arg:"RECORDS" help:"records added per commit: bounds memory (about 200 bytes per record, three steps in flight: one committing, two fetched and verified ahead) and the work a crash loses; measured fastest near the default"`
	Parallel int           `flag:"parallel" help:"most requests to the origin in flight at once"`
	Timeout  time.Duration `flag:"timeout" help:"time limit of one request to the origin"`
}

func defaultMirror() Mirror {
	return Mirror{DiskFloor: defaultDiskFloor(), Log: defaultLog(), Step: 1 << 14, Parallel: 8, Timeout: 30 * time.Second}
}

// LoadMirror is LoadServe for `sumd mirror`.
func LoadMirror(args, env []string, w io.Writer) (*Mirror, []string, error) {
	c := defaultMirror()
	rest, err := loadValidated(mirrorCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of c, one per line.
func (c *Mirror) Validate() error {
	errs := []error{c.MirrorDB.Validate(), c.DiskFloor.Validate(), c.Log.Validate(), c.ClientCert.Validate()}
	if c.Origin != "" {
		errs = append(errs, checkURL(c.Origin))
	}
	if c.Step < 256 {
		errs = append(errs, fmt.Errorf("invalid step %d: want at least 256 records (one tile)", c.Step))
	}
	if c.Parallel < 1 || c.Parallel > maxParallel {
		errs = append(errs, fmt.Errorf("invalid parallel %d: want 1 to %d", c.Parallel, maxParallel))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("invalid timeout %v: want a positive duration such as 30s", c.Timeout))
	}
	return errors.Join(errs...)
}

// ModuleList returns -modules as a list.
func (c *Mirror) ModuleList() []string { return splitList(c.Modules) }

// MirrorExport configures `sumd mirror export`.
type MirrorExport struct {
	MirrorDB
	Log
	Out   string `flag:"o" arg:"BUNDLE" help:"the bundle file to write (required): a new file, never one that exists; written beside it as BUNDLE.tmp-NNN, then given its name; - writes the bundle to standard output (and the summary to standard error)"`
	Since string `flag:"since" arg:"N|FILE" help:"export only what the importing side lacks: the tree size it holds, the bundle it last imported, or a file holding its signed head; default: everything, from the empty tree"`
}

// LoadMirrorExport is LoadServe for `sumd mirror export`.
func LoadMirrorExport(args, env []string, w io.Writer) (*MirrorExport, []string, error) {
	c := MirrorExport{Log: defaultLog()}
	rest, err := loadValidated(mirrorExportCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of c, one per line.
func (c *MirrorExport) Validate() error {
	errs := []error{c.MirrorDB.Validate(), c.Log.Validate()}
	if c.Out == "" {
		errs = append(errs, errors.New("o is empty: set -o to the bundle file to write"))
	}
	return errors.Join(errs...)
}

// MirrorImport configures `sumd mirror import`.
type MirrorImport struct {
	MirrorDB
	DiskFloor
	Log
}

// LoadMirrorImport is LoadServe for `sumd mirror import`.
func LoadMirrorImport(args, env []string, w io.Writer) (*MirrorImport, []string, error) {
	c := MirrorImport{DiskFloor: defaultDiskFloor(), Log: defaultLog()}
	rest, err := loadValidated(mirrorImportCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of c, one per line.
func (c *MirrorImport) Validate() error {
	return errors.Join(c.MirrorDB.Validate(), c.DiskFloor.Validate(), c.Log.Validate())
}

// ServeMirrors configures the mirrors `sumd serve` serves.
type ServeMirrors struct {
	Mirrors        string        `flag:"mirror" arg:"FILES" help:"mirror databases to serve, comma-separated (made by sumd mirror or sumd mirror import): each at /sumdb/<origin name>/, and followed in the background if it has an origin URL"`
	MirrorInterval time.Duration `flag:"mirror-interval" help:"how long each mirror waits, after a round ends, before it asks its origin for a newer head"`
	MirrorOnly     bool          `flag:"mirror-only" help:"serve no log of this server's own (no signing key or -db needed), only -mirror: the first mirror also at the root paths"`
}

// MirrorList returns -mirror as a list.
func (c *ServeMirrors) MirrorList() []string { return splitList(c.Mirrors) }

// Validate reports every problem of c, one per line.
func (c *ServeMirrors) Validate() error {
	var errs []error
	if c.MirrorInterval < time.Second {
		errs = append(errs, fmt.Errorf("invalid mirror-interval %v: want at least 1s, such as 1m", c.MirrorInterval))
	}
	if c.MirrorOnly && len(c.MirrorList()) == 0 {
		errs = append(errs, errors.New("mirror-only needs -mirror: name the mirror databases to serve"))
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
