//go:build unix

package tuf

import (
	"errors"
	"fmt"
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
	unlock, err := flockFile(filepath.Join(dir, lockFile), lockTimeout)
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
// what a newer one kept. It does not wait: a run takes seconds to
// minutes (the network), and the audit state beside the cache (sumd
// verify -state) refuses a second run at once too.
func lockCache(dir string) (func(), error) {
	if err := mkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create the TUF cache: %w", err)
	}
	unlock, err := flockFile(filepath.Join(dir, lockFile), 0)
	if errors.Is(err, errHeld) {
		err = ErrCacheInUse
	}
	if err != nil {
		return nil, fmt.Errorf("failed to lock the TUF cache %s: %w", dir, err)
	}
	return unlock, nil
}

// errHeld means another open file holds the flock.
var errHeld = errors.New("lock held by another process")

// flockFile takes the exclusive flock of the file path, creating it, and
// returns its release. It waits up to timeout for another holder (none:
// it tries once), then fails with errHeld.
func flockFile(path string, timeout time.Duration) (func(), error) {
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
		time.Sleep(20 * time.Millisecond)
	}
}
