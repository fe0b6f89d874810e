package seed

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/sumd-project/sumd/internal/gosum"
	"github.com/sumd-project/sumd/internal/tlog"
)

// A Sink is where an import records: a log in this process (LogSink), or
// the admin API of a running sumd. Both take chunks of at most Chunk
// records; each Add is atomic.
type Sink interface {
	// Chunk is how many records Check and Add take at most.
	Chunk() int
	// Check reports the records the log holds with other hashes, adding
	// nothing. A Conflict with Index -1 is one the sink counted but did not
	// name; a sink names at least the first 100 of a chunk.
	Check(ctx context.Context, recs []gosum.Record) ([]Conflict, error)
	// Add records recs, all or nothing, durably and covered by a signed
	// tree head, and returns how many were new and the tree size after.
	Add(ctx context.Context, recs []gosum.Record) (added, size int64, err error)
}

// A Conflict is a record of a chunk, by index, that the log holds with
// other hashes, and what the log holds: record ID.
type Conflict struct {
	Index    int
	ID       int64
	Recorded gosum.Record
}

// ConflictMsg describes a version recorded with other hashes than offered.
func ConflictMsg(id int64, recorded, offered gosum.Record) string {
	return fmt.Sprintf("%s is recorded as record %d with %s, go.mod %s; the go.sum files say %s, go.mod %s",
		offered.Key(), id, recorded.Hash, recorded.GoMod, offered.Hash, offered.GoMod)
}

// A LogSink records in a log of this process.
type LogSink struct{ Log *tlog.Log }

var _ Sink = LogSink{}

// logChunk is how many records a LogSink commits at once while its log
// holds fewer than largeLog records, and tlog.MaxAddRecords after. A
// commit's cost is mostly the pages it writes: in a small log, fewer
// records per commit keep bbolt's nodes small while it inserts (it splits
// them only at commit); in a large one, each commit rewrites a page for
// almost every index entry it adds, so more records per commit share
// them. Measured with the CLI on shuffled go.sum files: at 16,384, 100k
// records import in 0.95–1.1 s instead of 1.35–1.5 s at 65,536, and 1M in
// 7.4 s instead of 9.4; but 10M took 100 s instead of 78.
const (
	logChunk = 1 << 14
	largeLog = 1 << 20
)

// Chunk grows, never shrinks, as the log grows.
func (s LogSink) Chunk() int {
	if s.Log.Published().Tree.N < largeLog {
		return logChunk
	}
	return tlog.MaxAddRecords
}

func (s LogSink) Check(ctx context.Context, recs []gosum.Record) ([]Conflict, error) {
	_, conflicts, err := s.Log.Check(ctx, recs)
	var found []Conflict
	for i, c := range conflicts {
		if c != nil {
			found = append(found, Conflict{i, c.ID, c.Recorded})
		}
	}
	return found, err
}

// Add counts the records this call appended (tlog.Log.AddNew). Neither
// the tree's growth nor the ids past the tree size before can tell: on a
// store other processes write, the log adopts their records while it adds,
// and one of recs that another recorded meanwhile has such an id too.
func (s LogSink) Add(ctx context.Context, recs []gosum.Record) (int64, int64, error) {
	_, appended, err := s.Log.AddNew(ctx, recs...)
	if err != nil {
		return 0, 0, err
	}
	var n int64
	for _, a := range appended {
		if a {
			n++
		}
	}
	return n, s.Log.Published().Tree.N, nil
}

// MaxListed caps the incomplete versions and conflicts a Survey keeps in
// full; it counts the others.
const MaxListed = 20

// A Survey is what a first pass over the sorted lines found.
type Survey struct {
	Records     int          // module versions with both lines
	Incompletes int          // module versions with one line, not in the log
	Incomplete  []Incomplete // all of them (Survey's keepAll), or the first MaxListed
	Present     int          // module versions with one line the log holds, with that line's hash
	Conflicts   int          // versions the log holds with other hashes
	Listed      []string     // the first MaxListed of those, "FILE:LINE: …"
}

// Survey pairs the lines and checks every version against the sink, in
// chunks: before anything is committed, the import knows whether any
// version conflicts with the log. A version with one line is checked by
// the hash of that line: the log may hold it already, and a go.sum line
// that contradicts a record must stop the import as a record would. Of
// those the log does not hold, Survey keeps all (if keepAll: to complete
// them) or the first MaxListed. Two hashes for one line in the files are a
// *ConflictError.
func (s *Sorted) Survey(ctx context.Context, sink Sink, keepAll bool) (*Survey, error) {
	sv := &Survey{}
	chunk := make([]gosum.Record, 0, sink.Chunk())
	at := make([]Pos, 0, sink.Chunk())
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		found, err := sink.Check(ctx, chunk)
		if err != nil {
			return err
		}
		for _, c := range found {
			if c.Index < 0 {
				sv.Conflicts++ // counted, not named
				continue
			}
			sv.conflict(at[c.Index].String() + ": " + ConflictMsg(c.ID, c.Recorded, chunk[c.Index]))
		}
		chunk, at = chunk[:0], at[:0]
		return ctx.Err()
	}
	incs := make([]Incomplete, 0, probeChunk)
	flushIncs := func() error {
		if len(incs) == 0 {
			return nil
		}
		err := sv.probe(ctx, sink, incs, keepAll)
		incs = incs[:0]
		if err != nil {
			return err
		}
		return ctx.Err()
	}
	err := s.Scan(func(r gosum.Record, pos Pos) error {
		sv.Records++
		chunk, at = append(chunk, r), append(at, pos)
		if len(chunk) >= sink.Chunk() {
			return flush()
		}
		return nil
	}, func(inc Incomplete) error {
		if incs = append(incs, inc); len(incs) >= min(probeChunk, sink.Chunk()) {
			return flushIncs()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = flushIncs()
	}
	return sv, err
}

// probeChunk is how many one-line versions Survey checks at once: the
// admin API names the first 100 conflicts of a check, and every version
// the log holds is a conflict of its probe.
const probeChunk = 100

// noContent stands in, in a probe, for the hash of the missing line: the
// hash of 32 zero bytes, which no content has (content with that hash
// would break SHA-256). A log holding the version therefore never holds
// the probe's hashes, and names what it holds as a conflict; a log that
// does not hold it names nothing.
var noContent = "h1:" + base64.StdEncoding.EncodeToString(make([]byte, sha256.Size))

// probe is the record that checks inc against a log.
func (inc Incomplete) probe() gosum.Record {
	r := gosum.Record{Path: inc.Path, Version: inc.Version.Version, Hash: inc.Hash, GoMod: noContent}
	if inc.GoMod {
		r.Hash, r.GoMod = noContent, inc.Hash
	}
	return r
}

// probe checks one-line versions against the sink: each the log holds is
// present if its line's hash is the log's, and a conflict if not; the
// others are incomplete.
func (sv *Survey) probe(ctx context.Context, sink Sink, incs []Incomplete, keepAll bool) error {
	probes := make([]gosum.Record, len(incs))
	for i, inc := range incs {
		probes[i] = inc.probe()
	}
	found, err := sink.Check(ctx, probes)
	if err != nil {
		return err
	}
	held := make([]*Conflict, len(incs))
	for i, c := range found {
		if c.Index < 0 {
			return fmt.Errorf("failed to check %d module versions with one go.sum line: the log did not name every version it holds", len(incs))
		}
		held[c.Index] = &found[i]
	}
	for i, inc := range incs {
		c := held[i]
		recorded, what := "", ""
		if c != nil {
			recorded = c.Recorded.Hash
			if inc.GoMod {
				recorded, what = c.Recorded.GoMod, "go.mod "
			}
		}
		switch {
		case c == nil:
			if sv.Incompletes++; keepAll || len(sv.Incomplete) < MaxListed {
				sv.Incomplete = append(sv.Incomplete, inc)
			}
		case recorded == inc.Hash:
			sv.Present++
		default:
			sv.conflict(fmt.Sprintf("%s: %s is recorded as record %d with %s%s; the go.sum files say %s%s",
				inc.At, inc.Version, c.ID, what, recorded, what, inc.Hash))
		}
	}
	return nil
}

func (sv *Survey) conflict(line string) {
	if sv.Conflicts++; len(sv.Listed) < MaxListed {
		sv.Listed = append(sv.Listed, line)
	}
}

// AddCompleted checks recs, versions completed from a module proxy,
// against the sink, counts their conflicts in the survey and, if there are
// none anywhere, adds them to what Commit reads (Sorted.Add).
func (s *Sorted) AddCompleted(ctx context.Context, sink Sink, sv *Survey, recs []gosum.Record) error {
	for i := 0; i < len(recs); i += sink.Chunk() {
		chunk := recs[i:min(i+sink.Chunk(), len(recs))]
		found, err := sink.Check(ctx, chunk)
		if err != nil {
			return err
		}
		for _, c := range found {
			if c.Index < 0 {
				sv.Conflicts++
				continue
			}
			sv.conflict("completed from upstream: " + ConflictMsg(c.ID, c.Recorded, chunk[c.Index]))
		}
	}
	if sv.Conflicts > 0 {
		return nil
	}
	if err := s.Add("upstream", recs); err != nil {
		return err
	}
	sv.Records += len(recs)
	return nil
}

// Commit records the sorted records in key order, in chunks of
// sink.Chunk(), and returns how many were new and the tree size after.
// While the sink commits one chunk the next is read, so reading and
// committing overlap. Each chunk is atomic: if Commit fails, the chunks
// before are recorded and the others not, and a second import of the same
// files records the rest (the others are present).
func (s *Sorted) Commit(ctx context.Context, sink Sink) (added, size int64, err error) {
	chunks := make(chan []gosum.Record, 1)
	done := make(chan error, 1)
	var failed atomic.Bool
	go func() {
		var err error
		for chunk := range chunks {
			if err != nil {
				continue // drain
			}
			var n int64
			if n, size, err = sink.Add(ctx, chunk); err == nil {
				added += n
			} else {
				failed.Store(true)
			}
		}
		done <- err
	}()
	chunk := make([]gosum.Record, 0, sink.Chunk())
	scanErr := s.Scan(func(r gosum.Record, _ Pos) error {
		chunk = append(chunk, r)
		if len(chunk) >= sink.Chunk() {
			if failed.Load() {
				return errStopped
			}
			chunks <- chunk
			chunk = make([]gosum.Record, 0, sink.Chunk())
		}
		return ctx.Err()
	}, func(Incomplete) error { return nil })
	if scanErr == nil && len(chunk) > 0 {
		chunks <- chunk
	}
	close(chunks)
	err = <-done
	if err == nil {
		err = scanErr
	}
	return added, size, err
}

// errStopped stops a Scan whose records can no longer be committed; the
// sink's error is reported instead.
var errStopped = errors.New("stopped")
