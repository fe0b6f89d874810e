package audit

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// checkGosum checks every line of the go.sum files against the database,
// through x/mod's sumdb.Client: the go command's own lookup code, which
// verifies each record's inclusion in a signed tree and that tree's
// consistency with the head this run verified.
func (r *run) checkGosum(ctx context.Context) (bool, error) {
	if len(r.opts.GoSum) == 0 {
		return true, nil
	}
	lines, probs := r.sumLines, r.sumProbs
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Parallel)
	ops := newClientOps(gctx, r)
	client := sumdb.NewClient(ops) // no SetGONOSUMDB: every line is checked
	found := make([]*Problem, len(lines))
	for i, l := range lines {
		g.Go(func() error {
			var err error
			found[i], err = ops.check(client, l)
			return err
		})
	}
	// The first failed request stops the lookups not yet made, but what
	// the others found is reported all the same: a server answering 500
	// to one lookup must not hide the fork another lookup proved.
	err := g.Wait()
	r.reportGosum(ops, found, probs)
	if err != nil {
		return false, err
	}
	r.rep.GosumLines = len(lines) + len(probs)
	r.passed(CheckGosum)
	return true, nil
}

// readGoSums reads the lines of every file.
func readGoSums(files []string) ([]sumLine, []Problem, error) {
	var lines []sumLine
	var probs []Problem
	for _, file := range files {
		ls, ps, err := readGoSum(file)
		if err != nil {
			return nil, nil, err
		}
		lines, probs = append(lines, ls...), append(probs, ps...)
	}
	return lines, probs, nil
}

// reportGosum adds the problems in file and line order, so that the output
// does not depend on how the lookups were scheduled, and the misbehaviour
// the client detected, once.
func (r *run) reportGosum(ops *clientOps, found []*Problem, probs []Problem) {
	for _, p := range found {
		if p != nil {
			probs = append(probs, *p)
		}
	}
	slices.SortFunc(probs, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	for _, msg := range ops.security {
		r.found.add(Problem{Kind: KindFork, Message: "SECURITY ERROR: a lookup answer is inconsistent with the tree seen before:\n" + msg})
	}
	for _, p := range probs {
		if p.Kind == KindGosumUnrecorded {
			if r.rep.GosumUnrecordedCount++; len(r.rep.GosumUnrecorded) < maxProblems {
				r.rep.GosumUnrecorded = append(r.rep.GosumUnrecorded, p)
			}
			continue
		}
		r.found.add(p)
	}
}

// clientOps is sumdb.ClientOps over this run: HTTP through the run's
// fetcher, the key, and the head this run verified as the client's
// "latest" (saved to the state directory when a lookup moves it forward).
// No cache: lookups are checked fresh.
type clientOps struct {
	ctx context.Context
	r   *run

	mu        sync.Mutex
	latest    []byte
	fromNewer bool              // latest started as r.newer, not the stale head served
	missing   map[string]string // lookup path -> the server's answer, for 404 and 410
	damaged   map[string]bool   // lookup paths the server answers damaged in its database (sumdbclient.ErrDamaged)
	failed    error             // the first fetch failure but a lookup's 404 or 410, or a partial tile's
	security  []string          // messages of sumdb.Client's SecurityError
}

var _ sumdb.ClientOps = (*clientOps)(nil)

func newClientOps(ctx context.Context, r *run) *clientOps {
	o := &clientOps{ctx: ctx, r: r, latest: r.head, missing: map[string]string{}, damaged: map[string]bool{}}
	// With a stale head served, lookups are checked against the newer
	// head signed before: checked against the stale one alone, a lookup
	// from a fork that the stale head is a prefix of, but the newer not,
	// would pass. sumdb.Client verifies its latest with its one key: a
	// newer head that key did not sign (a key since retired) cannot be it.
	if v, err := note.NewVerifier(r.vkey); err == nil && r.newer != nil {
		if _, err := note.Open(r.newer, note.VerifierList(v)); err == nil {
			o.latest, o.fromNewer = r.newer, true
		}
	}
	return o
}

// check looks up the module version of line l and compares the hashes.
func (o *clientOps) check(client *sumdb.Client, l sumLine) (*Problem, error) {
	got, err := client.Lookup(l.path, l.lookupVersion())
	if err != nil {
		return o.lookupProblem(l, err)
	}
	switch {
	case len(got) == 1 && got[0] == l.text():
		return nil, nil
	case len(got) != 1:
		// A record holds one line of each version it is of: this one
		// is not the version's record, as the database answered, or is
		// malformed. The database misanswered; the line is not judged.
		holds := "no line of that version: the lookup names another version's record"
		if len(got) > 1 {
			holds = fmt.Sprintf("%d lines of that version, where a record has one", len(got))
		}
		return &Problem{Kind: KindLookup, File: l.file, Line: l.num, Module: l.path + "@" + l.version,
			Message: fmt.Sprintf("%s: the database's answer for %s@%s does not verify: the record it names, proven in its tree, holds %s",
				l.where(), l.path, l.lookupVersion(), holds)}, nil
	}
	has := quote(strings.TrimPrefix(got[0], l.path+" "+l.lookupVersion()+" "))
	return &Problem{Kind: KindGosumMismatch, File: l.file, Line: l.num, Module: l.path + "@" + l.version,
		Message: fmt.Sprintf("%s: %s does not match the checksum database, which has %s", l.where(), l.text(), has)}, nil
}

// lookupProblem sorts a failed lookup. sumdb.Client flattens the errors
// of its ops into text, so the ops remember what happened instead.
func (o *clientOps) lookupProblem(l sumLine, err error) (*Problem, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	reason, missing := o.missing[lookupPath(l)]
	switch {
	case missing && l.oneLine:
		which := "zip-only"
		if l.goMod {
			which = "go.mod-only"
		}
		return &Problem{Kind: KindGosumUnrecorded, File: l.file, Line: l.num, Module: l.path + "@" + l.version,
			Message: fmt.Sprintf("%s: %s@%s is not recorded yet (%s line)", l.where(), l.path, l.version, which)}, nil
	case o.damaged[lookupPath(l)]:
		return &Problem{Kind: KindDamaged, File: l.file, Line: l.num, Module: l.path + "@" + l.version,
			Message: fmt.Sprintf("%s: the server reports the record of %s@%s damaged in its database, and does not serve it", l.where(), l.path, l.version)}, nil
	case missing:
		return &Problem{Kind: KindGosumMissing, File: l.file, Line: l.num, Module: l.path + "@" + l.version,
			Message: fmt.Sprintf("%s: %s@%s is not in the checksum database (%s)", l.where(), l.path, l.version, quote(reason))}, nil
	case len(o.security) > 0 && strings.Contains(err.Error(), sumdb.ErrSecurity.Error()):
		return nil, nil // reported once, with the client's evidence
	case o.failed != nil:
		// sumdb.Client's error does not say whether this lookup failed
		// for want of an answer: once a request failed, a lookup error
		// leaves the line unchecked, rather than blaming the database.
		return nil, o.failed
	}
	return &Problem{Kind: KindLookup, File: l.file, Line: l.num, Module: l.path + "@" + l.version,
		Message: fmt.Sprintf("%s: the database's answer for %s@%s does not verify: %s", l.where(), l.path, l.version, quote(err.Error()))}, nil
}

func lookupPath(l sumLine) string {
	p, _ := module.EscapePath(l.path)
	v, _ := module.EscapeVersion(l.version)
	return "/lookup/" + p + "@" + v
}

// ReadRemote fetches a lookup or a hash tile.
func (o *clientOps) ReadRemote(path string) ([]byte, error) {
	lookup := strings.HasPrefix(path, "/lookup/")
	limit := int64(sumdbclient.MaxHashTile)
	if lookup {
		limit = sumdbclient.MaxLookup
	}
	data, err := o.r.f.Get(o.ctx, path, limit)
	if err == nil {
		err = checkRemote(path, lookup, data)
	}
	if err != nil {
		o.mu.Lock()
		switch {
		case lookup && sumdbclient.NotFound(err):
			var fe *FetchError
			errors.As(err, &fe)
			o.missing[path] = fe.Err.Error()
		case lookup && errors.Is(err, sumdbclient.ErrDamaged):
			o.damaged[path] = true // a finding about this line, not an outage
		case sumdbclient.NotFound(err) && partialTile(path):
			// Gone once its tile is full: the client tries the full one
			// next, whose failure counts.
		case o.failed == nil:
			o.failed = err
		}
		o.mu.Unlock()
	}
	return data, err
}

// partialTile reports whether path is a partial hash tile's (.p/W).
func partialTile(path string) bool {
	t, err := tlog.ParseTilePath(strings.TrimPrefix(path, "/"))
	return err == nil && t.W < tileWidth
}

// checkRemote refuses, as a failure to fetch, an answer that is not the
// protocol's at all (a proxy's page): a lookup answer that is not a record
// followed by a signed note, a hash tile not of its tile's length. The
// client would report either as an answer that does not verify, a
// finding, though nothing in it claims to be the database's. It refuses
// a lookup claiming a tree over sumdbclient.MaxTreeSize too: x/mod's
// client would spin on it.
func checkRemote(path string, lookup bool, data []byte) error {
	if !lookup {
		if t, err := tlog.ParseTilePath(strings.TrimPrefix(path, "/")); err == nil && t.L >= 0 {
			return sumdbclient.CheckHashTile(t, data, false)
		}
		return nil
	}
	// Not quoted: a redirect may have led to a host only the auditor
	// reaches.
	if _, _, head, err := tlog.ParseRecord(data); err != nil || !sumdbclient.IsNote(head) {
		return sumdbclient.NotProtocol(path, "a lookup answer (a record and a signed note)", data, false)
	}
	return sumdbclient.CheckTreeSize(data)
}

// ReadConfig serves the key and the latest head.
func (o *clientOps) ReadConfig(file string) ([]byte, error) {
	switch file {
	case "key":
		return []byte(o.r.vkey), nil
	case o.r.keys.Name() + "/latest":
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.latest, nil
	}
	return nil, fmt.Errorf("unknown config file %q", file)
}

// WriteConfig moves the latest head forward. The client has proved the new
// head consistent with the old before it calls this.
func (o *clientOps) WriteConfig(file string, old, new []byte) error {
	if file != o.r.keys.Name()+"/latest" {
		return fmt.Errorf("unknown config file %q", file)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !bytes.Equal(o.latest, old) {
		return sumdb.ErrWriteConflict
	}
	o.latest = new
	if o.r.state == nil || o.r.stale && !o.fromNewer {
		// A head the client proved consistent with a stale one is not
		// proven consistent with the newer head saved.
		return nil
	}
	if err := o.r.state.rememberKeys([]string{o.r.vkey}); err != nil {
		return err
	}
	return o.r.state.saveLatest(new)
}

func (o *clientOps) ReadCache(string) ([]byte, error) { return nil, fs.ErrNotExist }
func (o *clientOps) WriteCache(string, []byte)        {}
func (o *clientOps) Log(string)                       {}

func (o *clientOps) SecurityError(msg string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.security = append(o.security, msg)
}
