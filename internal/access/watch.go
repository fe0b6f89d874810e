package access

import (
	"bytes"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sumd-project/sumd/internal/secret"
)

// maxCredentialFile caps a credential file: a million bytes are some
// thousands of credentials.
const maxCredentialFile = 1 << 20

// recheck is how long a watched file is trusted unchanged without a stat:
// a stat is a system call, several microseconds here, which the tile hot
// path should not pay at every request. A change takes effect within it.
var recheck = time.Second

// stat is os.Stat; tests stand in a file system of coarse time stamps.
var stat = os.Stat

// A watched is a credential file kept parsed in memory and read again when
// stat shows it changed (secret.Changed), so that credentials can be added,
// rotated or revoked without a restart. It is read as the other secrets of
// sumd are (secret.ReadFile): a file other users may access is refused. It
// is safe for concurrent use; the common case, an unchanged file, takes no
// lock, and a stat at most every recheck.
type watched[T any] struct {
	path  string
	parse func([]byte) (T, error)
	log   *slog.Logger
	lines bool // a credential file of lines: read again without a final newline, it waits (unterminated)

	last    atomic.Pointer[snapshot[T]] // the file as last read; nil before the first read
	statted atomic.Int64                // when the file was last stat'ed, in Unix nanoseconds
	mu      sync.Mutex                  // serializes reads of the file
	waiting *unterminated               // guarded by mu; nil unless a re-read found no final newline
}

// An unterminated is a credential file read again without a final
// newline, not yet in force.
type unterminated struct {
	fi   fs.FileInfo
	data []byte
	seen int64 // when it was first read so, in Unix nanoseconds
}

// A snapshot is the file as read once.
type snapshot[T any] struct {
	fi  fs.FileInfo // nil if the file could not be stat'ed
	val T
	err error // why the file cannot be used; val is the zero value then
}

func newWatched[T any](path string, parse func([]byte) (T, error), log *slog.Logger) *watched[T] {
	return &watched[T]{path: path, parse: parse, log: log}
}

// newLineFile is newWatched for a credential file of lines (parseLines).
func newLineFile[T any](path string, parse func([]byte) (T, error), log *slog.Logger) *watched[T] {
	return &watched[T]{path: path, parse: parse, log: log, lines: true}
}

// load returns the file's content, reading it again if it changed.
func (w *watched[T]) load() (T, error) {
	now := time.Now().UnixNano()
	if s := w.last.Load(); s != nil && now-w.statted.Load() < int64(recheck) {
		return s.val, s.err
	}
	w.statted.Store(now)
	fi, statErr := stat(w.path)
	if s := w.last.Load(); s != nil && statErr == nil && s.fi != nil && !secret.Changed(s.fi, fi) {
		return s.val, s.err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Another request may have read it meanwhile. Should the file change
	// between our stat and the read, the next stat differs from the read's
	// and reads it again.
	if s := w.last.Load(); s != nil && statErr == nil && s.fi != nil && !secret.Changed(s.fi, fi) {
		return s.val, s.err
	}
	s := &snapshot[T]{fi: fi}
	switch {
	case statErr != nil:
		// The name may be the secret itself: if it does not look like a
		// file's, the error does not repeat it, and check names the option.
		w.waiting = nil
		s.fi, s.err = nil, fmt.Errorf("failed to read credentials: %w", secret.Hide(w.path, statErr))
	default:
		data, read, wait, err := w.read(fi, now)
		if wait {
			s = w.last.Load() // the last read stays in force
			return s.val, s.err
		}
		if read != nil {
			// The stat of the read, which secret.Changed can tell a
			// rewrite its time stamps hide with.
			s.fi = read
		}
		if err == nil {
			s.val, err = w.parse(data)
			if err != nil {
				err = fmt.Errorf("%s: %w", w.path, err)
			}
		}
		s.err = err
	}
	w.report(w.last.Swap(s), s)
	return s.val, s.err
}

// cached returns what load returned last, without touching the file.
func (w *watched[T]) cached() (T, error) {
	if s := w.last.Load(); s != nil {
		return s.val, s.err
	}
	return w.load()
}

// read reads the file, stat'ed as fi at now, and returns its bytes and
// the stat secret.ReadFile took of it, or wait if a file of lines read
// again is not to be applied yet.
//
// A file of lines read again without a final newline may have been caught
// while it is written in place, its last line cut: after "reader", that
// line is a reader of every module. Applied at once, such a file could
// fail open; refused, it locked every client out for as long as the file
// stayed so, and rotations written without a final newline (kubectl
// create secret --from-literal, printf) are common. So it waits: the
// credentials last read stay in force until a read at least a poll
// interval (recheck) later finds the file unchanged, same stat and same
// bytes, and then it applies: its writer is done. (Or stalled mid-line for
// a whole interval: the one case left in which a cut line applies; a file
// written whole, or renamed into place as a Kubernetes Secret volume is,
// is never seen cut.) A rotation or revocation written so takes effect a
// poll later than one ending with a newline, which applies at once; at
// start there is nothing to keep in force, and the file is read as it is.
func (w *watched[T]) read(fi fs.FileInfo, now int64) (data []byte, read fs.FileInfo, wait bool, err error) {
	data, read, err = secret.ReadFile(w.path, maxCredentialFile)
	if err != nil {
		w.waiting = nil
		return nil, nil, false, err // it names the file
	}
	if !w.lines || w.last.Load() == nil || len(data) == 0 || data[len(data)-1] == '\n' {
		w.waiting = nil
		return data, read, false, nil
	}
	u := w.waiting
	switch {
	case u == nil || secret.Changed(u.fi, fi) || !bytes.Equal(u.data, data):
		w.waiting = &unterminated{fi: fi, data: data, seen: now}
		w.log.Warn("credential file re-read with no final newline: it may be half-written, so the credentials read before stay in force until it is unchanged for a poll interval",
			"file", w.path, "interval", recheck)
		return nil, nil, true, nil
	case now-u.seen < int64(recheck):
		return nil, nil, true, nil
	}
	w.waiting = nil
	w.log.Info("credential file unchanged for a poll interval with no final newline: applied", "file", w.path)
	return data, read, false, nil
}

// report logs a file that turns unusable, or usable again.
func (w *watched[T]) report(prev, now *snapshot[T]) {
	switch {
	case now.err != nil && (prev == nil || prev.err == nil):
		w.log.Error("credential file cannot be used: every credential it held is refused", "file", w.path, "err", now.err)
	case now.err == nil && prev != nil && prev.err != nil:
		w.log.Info("credential file usable again", "file", w.path)
	case now.err == nil && prev != nil:
		w.log.Info("credential file re-read", "file", w.path)
	}
}
