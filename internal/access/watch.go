package access

import (
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Permission bits other users must not have on a credential file.
const (
	// secretPerm: password hashes and tokens are secrets; a file others
	// may read, or write, is refused, as ssh refuses a private key that is
	// "too open".
	secretPerm fs.FileMode = 0o077
	// mapPerm: the certificate map holds no secret, but whoever may write
	// it grants roles.
	mapPerm fs.FileMode = 0o022
)

// maxCredentialFile caps a credential file: a million bytes are some
// thousands of credentials.
const maxCredentialFile = 1 << 20

// recheck is how long a watched file is trusted unchanged without a stat:
// a stat is a system call, several microseconds here, which the tile hot
// path should not pay at every request. A change takes effect within it.
var recheck = time.Second

// A watched is a file kept parsed in memory and read again when stat shows
// it changed (another inode, size, modification time or mode), so that
// credentials can be added, rotated or revoked without a restart. It is
// safe for concurrent use; the common case, an unchanged file, takes no
// lock, and a stat at most every recheck.
type watched[T any] struct {
	path  string
	perm  fs.FileMode // bits no other user may have
	parse func([]byte) (T, error)
	log   *slog.Logger

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

func newWatched[T any](path string, perm fs.FileMode, parse func([]byte) (T, error), log *slog.Logger) *watched[T] {
	return &watched[T]{path: path, perm: perm, parse: parse, log: log}
}

// load returns the file's content, reading it again if it changed.
func (w *watched[T]) load() (T, error) {
	now := time.Now().UnixNano()
	if s := w.last.Load(); s != nil && now-w.statted.Load() < int64(recheck) {
		return s.val, s.err
	}
	w.statted.Store(now)
	fi, statErr := os.Stat(w.path)
	if s := w.last.Load(); s != nil && statErr == nil && s.fi != nil && !changed(s.fi, fi) {
		return s.val, s.err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Another request may have read it meanwhile. Should the file change
	// between our stat and the read, the next stat differs from fi and
	// reads it again.
	if s := w.last.Load(); s != nil && statErr == nil && s.fi != nil && !changed(s.fi, fi) {
		return s.val, s.err
	}
	s := &snapshot[T]{fi: fi}
	if statErr != nil {
		s.fi, s.err = nil, fmt.Errorf("failed to read %s: %w", w.path, statErr)
	} else {
		s.val, s.err = w.read()
	}
	w.report(w.last.Swap(s), s)
	return s.val, s.err
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

// cached returns what load returned last, without touching the file.
func (w *watched[T]) cached() (T, error) {
	if s := w.last.Load(); s != nil {
		return s.val, s.err
	}
	return w.load()
}

// read reads and parses the file. The mode is checked on the open file,
// so that the bytes parsed are those of the file checked.
func (w *watched[T]) read() (T, error) {
	var zero T
	f, err := os.Open(w.path)
	if err != nil {
		return zero, fmt.Errorf("failed to read %s: %w", w.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return zero, fmt.Errorf("failed to read %s: %w", w.path, err)
	case !fi.Mode().IsRegular():
		return zero, fmt.Errorf("%s is not a regular file", w.path)
	case runtime.GOOS != "windows" && fi.Mode().Perm()&w.perm != 0:
		return zero, &ModeError{Path: w.path, Mode: fi.Mode().Perm(), Want: fs.ModePerm &^ w.perm}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialFile+1))
	switch {
	case err != nil:
		return zero, fmt.Errorf("failed to read %s: %w", w.path, err)
	case len(data) > maxCredentialFile:
		return zero, fmt.Errorf("%s is larger than %d bytes", w.path, maxCredentialFile)
	}
	v, err := w.parse(data)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", w.path, err)
	}
	return v, nil
}

// changed reports whether the file now at the path (b) may hold other
// content than the one read (a). A chmod counts: the mode decides whether
// the file is accepted.
func changed(a, b fs.FileInfo) bool {
	return !os.SameFile(a, b) || !a.ModTime().Equal(b.ModTime()) || a.Size() != b.Size() || a.Mode() != b.Mode()
}

// A ModeError is a credential file that other users may access.
type ModeError struct {
	Path string
	Mode fs.FileMode // its permission bits
	Want fs.FileMode // the bits it may have at most
}

func (e *ModeError) Error() string {
	return fmt.Sprintf("%s is accessible by other users (mode %s, at most %s allowed)", e.Path, e.Mode, e.Want)
}

// Hint says what to do about it.
func (e *ModeError) Hint() string {
	return fmt.Sprintf("run chmod %o %s (and keep it owned by the user sumd runs as)", e.Want&0o644, e.Path)
}
