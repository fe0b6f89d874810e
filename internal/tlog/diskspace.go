package tlog

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// DefaultMinFree is the space a BoltStore keeps free on the file system of
// its file unless told otherwise (BoltOptions.MinFree): 64 MiB, four of
// bbolt's growth steps, and room for what a commit writes beyond
// batchBytes's estimate (index pages rewritten elsewhere in the file).
const DefaultMinFree = 64 << 20

// ErrLowDisk marks a write refused because the file system holding the
// database had less free space than the store keeps free. It wraps
// nothing the store wrote: every such error is also ErrNotPersisted.
var ErrLowDisk = errors.New("not enough free disk space")

// A LowDiskError is a write a BoltStore refused before starting it, because
// the file system of its file had Free bytes available to sumd, less than
// Floor plus the write's own size.
//
// Why refuse instead of trying: bbolt writes a commit's pages, then its
// meta page, and a failed write or sync anywhere in that is ambiguous to
// sumd (it may be visible, PROTOCOL.md §6), so the log must stop and the
// server exit. Run under a supervisor, a full disk then becomes a restart
// on every first lookup. Checked first, a full disk is a failed write like
// any other that stored nothing: the writers get an error (503 over HTTP),
// the log carries on serving, and writes resume once there is room. A disk
// filled by someone else between the check and the write is still the
// ambiguous case: the floor makes it unlikely, not impossible.
type LowDiskError struct {
	Path  string // the database file
	Free  int64  // bytes available when the write was refused
	Floor int64  // bytes the store keeps free
	Need  int64  // the write's own estimated size
}

func (e *LowDiskError) Error() string {
	write := ""
	if e.Need >= 1<<20 {
		write = " plus this write's " + mib(e.Need)
	}
	return fmt.Sprintf("%v: %s free on the file system of %s, under the %s it keeps free (min-free-disk)%s; nothing was stored",
		ErrLowDisk, mib(e.Free), filepath.Dir(e.Path), mib(e.Floor), write)
}

// Is makes it an ErrLowDisk and an ErrNotPersisted.
func (e *LowDiskError) Is(target error) bool {
	return target == ErrLowDisk || target == ErrNotPersisted
}

// Hint says what to do. It speaks of the refused write only: a command
// that commits in steps (sumd add -gosum, a mirror round) has kept those
// before it.
func (e *LowDiskError) Hint() string {
	return "free space on that file system (the log grows by about 400 bytes per record), or lower min-free-disk; " +
		"this write was refused before it began and stored nothing, what was recorded before it is kept, the database is intact, " +
		"and writes succeed again once there is room"
}

// mib formats n bytes in MiB, with a decimal under 10.
func mib(n int64) string {
	if n < 10<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// roomFor refuses a write of about need bytes if the file system of the
// store's file has less than the floor plus need available. A file system
// whose free space cannot be read (an unsupported system) passes: the
// check is a guard in front of bbolt, not a condition of correctness.
func (s *BoltStore) roomFor(need int64) error {
	if s.minFree < 0 || s.free == nil {
		return nil
	}
	free, ok := s.free(s.db.Path())
	if !ok || free >= s.minFree+need {
		return nil
	}
	return &LowDiskError{Path: s.db.Path(), Free: free, Floor: s.minFree, Need: need}
}

// batchBytes estimates the bytes a commit of b adds to the file: its
// records, index entries and tiles, twice over for the pages bbolt
// rewrites around them. A measured bound, not a worst case: a million
// records imported in steps of 16,384 wrote about 700 bytes a record into
// a file that grew by about 400 (most rewritten pages reuse freed ones);
// what an unlucky commit writes beyond this is what the floor is for.
func batchBytes(b *Batch) int64 {
	n := int64(len(b.Head))
	for _, r := range b.Records {
		n += 2 * int64(len(r.Text)+len(r.Key)+indexEntryOverhead)
	}
	for _, t := range b.Tiles {
		n += int64(len(t.Data))
	}
	return n
}

// indexEntryOverhead is what an index entry costs beside its key: the
// 8-byte id and bbolt's 16-byte element header.
const indexEntryOverhead = 24

// FreeSpace is the space available to sumd on the file system holding
// path, in bytes, and whether the system could tell.
func FreeSpace(path string) (int64, bool) { return freeSpace(path) }

// Room reports whether the log's store has room for a write now: the
// *LowDiskError every write would meet, for a write of no size of its own;
// nil for a store with no floor (PostgreSQL, memory). A caller about to do
// costly work for a write that would be refused (a first lookup's
// download of a zip of up to 500 MiB onto the same disk) asks first.
func (l *Log) Room() error {
	if s, ok := l.store.(interface{ roomFor(int64) error }); ok {
		return s.roomFor(0)
	}
	return nil
}

// A SpaceGuard keeps Floor bytes free on the file system of a file being
// written outside the log (a zip spilled to -tmp-dir, by default on the
// database's disk), so that it never takes the room the log's commits
// need: a commit failing on a full disk stops the log. It reads the free
// space again every spaceStep bytes: at every write it would cost a
// statfs per 32 KiB.
type SpaceGuard struct {
	Floor int64                           // bytes kept free; negative: none
	Free  func(path string) (int64, bool) // FreeSpace, or a test's; nil: no check
	due   int64                           // bytes it may let through before it asks Free again
}

// spaceStep is how many bytes a SpaceGuard lets through between two looks
// at the free space.
const spaceStep = 1 << 20

// Room refuses a write of n bytes to path, with a *LowDiskError, unless
// its file system has room for the floor, n and the next spaceStep bytes.
// A file system that cannot tell its free space passes, as the log's own
// check does.
func (g *SpaceGuard) Room(path string, n int64) error {
	if g.Floor < 0 || g.Free == nil {
		return nil
	}
	if g.due < n {
		need := n + spaceStep
		if free, ok := g.Free(path); ok && free < g.Floor+need {
			return &LowDiskError{Path: path, Free: free, Floor: g.Floor, Need: need}
		}
		g.due = need
	}
	g.due -= n
	return nil
}

// A FloorWriter writes to W, which writes the file at Path, while Guard
// lets it: a write that would take the file system under Guard's floor
// writes nothing and fails with a *LowDiskError. It is what a copy of
// outside data onto the log's disk (an upload, a backup, a piped bundle)
// writes through.
type FloorWriter struct {
	W     io.Writer
	Path  string
	Guard SpaceGuard
}

func (w *FloorWriter) Write(p []byte) (int, error) {
	if err := w.Guard.Room(w.Path, int64(len(p))); err != nil {
		return 0, err
	}
	return w.W.Write(p)
}
