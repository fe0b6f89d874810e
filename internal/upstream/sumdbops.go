package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sumd-project/sumd/internal/durable"
	"github.com/sumd-project/sumd/internal/redirect"
	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// checkOps are the sumdb.ClientOps of one Check: remote reads carry the
// check's context, and what went wrong is noted for Checker.failed, since
// sumdb.Client flattens its errors to text.
type checkOps struct {
	ctx context.Context
	c   *Checker

	mu          sync.Mutex // guards the fields below
	notFound    error      // a lookup answered 404 or 410
	misbehaved  error      // an answer no honest database gives (misbehaving)
	unavailable error      // some other read failed: unreachable, 5xx, a timeout
	timeout     bool       // ... by timing out
	security    string     // the client proved the database misbehaved
	unsaved     error      // a verified tree head could not be saved: sumd's failure
}

var _ sumdb.ClientOps = (*checkOps)(nil)

// ReadRemote reads path ("/lookup/…" or "/tile/…") from the database.
func (o *checkOps) ReadRemote(path string) ([]byte, error) {
	data, err := o.c.remote.read(o.ctx, path)
	if err == nil {
		if err = sumdbclient.CheckTreeSize(data); err != nil {
			err = fmt.Errorf("%w: %w", errMisbehaving, err)
		}
	}
	if err != nil {
		o.note(path, err)
	}
	return data, err
}

func (o *checkOps) note(path string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case isOffline(err):
		// A sumd mirror lacking the version, its origin out of reach:
		// an outage (fail-open applies), not a version it lacks.
		o.unavailable = err
	case isNotFound(err) && strings.HasPrefix(path, "/lookup/"):
		o.notFound = err
	case partialTileGone(path, err):
		// x/mod's client reads the full tile next: a partial tile is
		// gone once its tile is complete. That read decides.
	case misbehaving(err):
		o.misbehaved = err
	default:
		o.unavailable = err
		o.timeout = o.timeout || errors.Is(err, errRemoteTimeout)
	}
}

// errMisbehaving marks an answer that a database reached gave and no
// honest one gives: one over the size cap, a tree head claiming more
// records than any log holds.
var errMisbehaving = errors.New("the checksum database's answer is not one an honest database gives")

// misbehaving reports whether err is not an outage: an answer of a
// database that was reached but misbehaves (or of something between that
// answers for it), or a way to it that cannot work (no proxy supports it,
// a redirect sumd refuses). Such a failure fails closed even under
// FailOpen, which is for outages only: it would otherwise record every
// version unchecked for as long as it lasts. Besides errMisbehaving and
// those, that is any status but a server error's (5xx) or a request to
// slow down (408, 429): a full tile missing below the signed head (404), a
// refusal of sumd's credentials (401, 403).
func misbehaving(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.status < 500 && se.status != http.StatusRequestTimeout && se.status != http.StatusTooManyRequests
	}
	return errors.Is(err, errMisbehaving) || errors.Is(err, errNotSupported) ||
		errors.Is(err, redirect.ErrInsecure) || errors.Is(err, redirect.ErrTooMany)
}

// partialTileGone reports a partial tile answered 404 or 410, which the
// protocol allows once the tile is complete.
func partialTileGone(path string, err error) bool {
	return strings.HasPrefix(path, "/tile/") && strings.Contains(path, ".p/") && isNotFound(err)
}

// ReadConfig serves "key" and "<name>/latest", the only files the client
// reads. An empty latest starts from the empty tree.
func (o *checkOps) ReadConfig(file string) ([]byte, error) {
	switch file {
	case "key":
		return []byte(o.c.state.key), nil
	case o.c.name + "/latest":
		return o.c.state.readLatest(), nil
	}
	return nil, fmt.Errorf("unknown config file %q", file)
}

// WriteConfig replaces latest if it is still old (sumdb.ErrWriteConflict
// otherwise: the client then merges and retries).
func (o *checkOps) WriteConfig(file string, old, new []byte) error {
	if file != o.c.name+"/latest" {
		return fmt.Errorf("unknown config file %q", file)
	}
	err := o.c.state.writeLatest(old, new)
	if err != nil && err != sumdb.ErrWriteConflict {
		o.mu.Lock()
		o.unsaved = err
		o.mu.Unlock()
	}
	return err
}

func (o *checkOps) ReadCache(file string) ([]byte, error) {
	if data, ok := o.c.state.cache.get(file); ok {
		return data, nil
	}
	return nil, fs.ErrNotExist
}

func (o *checkOps) WriteCache(file string, data []byte) { o.c.state.cache.put(file, data) }

func (o *checkOps) Log(msg string) {
	o.c.log.DebugContext(o.ctx, "sumdb client", "sumdb", o.c.name, "msg", msg)
}

// SecurityError is the client's proof that the database showed two
// inconsistent trees. The check fails; sumd goes on (the go command would
// exit), since the next check may be of another database state entirely.
func (o *checkOps) SecurityError(msg string) {
	o.c.log.ErrorContext(o.ctx, "upstream checksum database misbehaved", "sumdb", o.c.name, "msg", msg)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.security = msg
}

// clientState is what outlives one check: the key, the newest verified tree
// head (in memory, and in a file if configured) and the cache.
type clientState struct {
	key   string
	file  string // "" keeps latest in memory only
	cache *lruCache

	mu     sync.Mutex // guards latest and the file
	latest []byte
}

// loadClientState reads the state file, if any, and checks that it holds a
// tree head signed by the key: a state for another database or a corrupt
// file must stop sumd, not reset trust silently.
func loadClientState(key string, v note.Verifier, file string, cacheBytes int64) (*clientState, error) {
	s := &clientState{key: key, file: file, cache: newLRUCache(cacheBytes)}
	if file == "" {
		return s, nil
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		// The first save must not fail every lookup's check for want of
		// a directory (the default with PostgreSQL is data/... in the
		// working directory): make it now, or say so at start.
		if err := mkdirAllDurable(filepath.Dir(file)); err != nil {
			return nil, fmt.Errorf("failed to create the directory of the cross-check state file: %w", err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read cross-check state: %w", err)
	}
	n, err := note.Open(data, note.VerifierList(v))
	if err == nil {
		_, err = tlog.ParseTree([]byte(n.Text))
	}
	if err != nil {
		return nil, fmt.Errorf("cross-check state %s does not hold a tree head of %s: %w", file, v.Name(), err)
	}
	s.latest = data
	return s, nil
}

func (s *clientState) readLatest() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.latest)
}

func (s *clientState) writeLatest(old, new []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !bytes.Equal(s.latest, old) {
		return sumdb.ErrWriteConflict
	}
	if s.file != "" {
		if err := writeFileAtomic(s.file, new); err != nil {
			return fmt.Errorf("failed to save cross-check state: %w", err)
		}
	}
	s.latest = bytes.Clone(new)
	return nil
}

// writeFileAtomic replaces name with data so that a crash leaves the old or
// the new content, never a torn file, and once it returns, the new: the
// directory is synced after the rename, or a crash could bring back the
// previous tree head, and with it trust in a history the database may
// since have rewritten.
func writeFileAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return syncDir(filepath.Dir(name))
}

// mkdirAllDurable makes dir and any missing parents, and syncs the parent
// of each directory it made: a crash right after the first save into a new
// directory could otherwise lose the directory, and the save with it.
func mkdirAllDurable(dir string) error {
	var made []string // the missing directories, deepest first
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range made {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir is durable.SyncDir; a test sees it called.
var syncDir = durable.SyncDir
