//go:build unix

package tuf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrLocked means another process holds the repository for longer than
// lockTimeout: writes take milliseconds, so something is stuck.
var ErrLocked = errors.New("TUF repository is locked by another sumd")

const lockTimeout = 10 * time.Second

// lock takes the repository's writer lock (flock on DIR/.lock) and returns
// its release. Every writer — sumd tuf commands and the re-signer of sumd
// serve — holds it while it reads the state and writes the next one, so
// two writers never issue the same version twice.
func lock(dir string) (func(), error) {
	unlock, err := flockFile(filepath.Join(dir, lockFile), lockTimeout, nil)
	if errors.Is(err, errHeld) {
		err = ErrLocked
	}
	if err != nil {
		return nil, fmt.Errorf("failed to lock %s: %w", dir, err)
	}
	return unlock, nil
}

// lockCache takes a client cache's lock (flock on DIR/.lock, creating DIR)
// and returns its release. A run holds it from reading the cache to
// writing it back, so an older run never writes what it verified over
// what a newer one kept. It waits up to cacheLockWait for another run:
// two shells started at once, each setting GOSUMDB from sumd tuf gosumdb
// -cache, must both get it, and a run that failed would leave one empty
// (the go command would then ask sum.golang.org about private modules).
// (sumd verify -state takes its audit state's lock first, which refuses
// a second run at once.)
// It logs, once, that it waits: a shell starting up pauses meanwhile.
func lockCache(dir string, log *slog.Logger) (func(), error) {
	if err := mkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create the TUF cache: %w", err)
	}
	waiting := func() {
		log.Warn("another sumd run holds the TUF cache: waiting for it to end", "cache", dir, "at_most", cacheLockWait)
	}
	unlock, err := flockFile(filepath.Join(dir, lockFile), cacheLockWait, waiting)
	if errors.Is(err, errHeld) {
		err = ErrCacheInUse
	}
	if err != nil {
		return nil, fmt.Errorf("failed to lock the TUF cache %s: %w", dir, err)
	}
	return unlock, nil
}

// cacheLockWait bounds lockCache's wait for another run: a run fetches a
// few small files, each request bounded by 30 s (the default
// HTTPClient's timeout); a run holding the cache longer is stuck.
var cacheLockWait = time.Minute

// errHeld means another open file holds the flock.
var errHeld = errors.New("lock held by another process")

// flockFile takes the exclusive flock of the file path, creating it, and
// returns its release. It waits up to timeout for another holder (none:
// it tries once), then fails with errHeld. It calls waiting, if set, once
// it finds the lock held and is to wait.
func flockFile(path string, timeout time.Duration, waiting func()) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open lock file: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || !time.Now().Before(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				err = errHeld
			}
			return nil, err
		}
		if waiting != nil {
			waiting()
			waiting = nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}
