package access

import (
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
	lines bool // a credential file of lines: read again, it must end with a newline

	last    atomic.Pointer[snapshot[T]] // the file as last read; nil before the first read
	statted atomic.Int64                // when the file was last stat'ed, in Unix nanoseconds
	mu      sync.Mutex                  // serializes reads of the file
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
	fi, statErr := os.Stat(w.path)
	if s := w.last.Load(); s != nil && statErr == nil && s.fi != nil && !secret.Changed(s.fi, fi) {
		return s.val, s.err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Another request may have read it meanwhile. Should the file change
	// between our stat and the read, the next stat differs from fi and
	// reads it again.
	if s := w.last.Load(); s != nil && statErr == nil && s.fi != nil && !secret.Changed(s.fi, fi) {
		return s.val, s.err
	}
	s := &snapshot[T]{fi: fi}
	if statErr != nil {
		s.fi, s.err = nil, fmt.Errorf("failed to read %s: %w", w.path, statErr)
	} else {
		s.val, s.err = w.read(w.lines && w.last.Load() != nil)
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

// read reads and parses the file. A credential file read again (reread)
// must end with a newline: one caught while it is written in place may end in a line cut
// after its secret, a reader of every module, so it is refused (every
// credential with it) until the writer is done and the next stat sees it.
func (w *watched[T]) read(reread bool) (T, error) {
	var zero T
	data, _, err := secret.ReadFile(w.path, maxCredentialFile)
	if err != nil {
		return zero, err // it names the file
	}
	if reread && len(data) > 0 && data[len(data)-1] != '\n' {
		return zero, fmt.Errorf("%s does not end with a newline: it may be half-written (write it whole, or to another file renamed into place)", w.path)
	}
	v, err := w.parse(data)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", w.path, err)
	}
	return v, nil
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
