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
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open lock file: %w", err)
	}
	deadline := time.Now().Add(lockTimeout)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				err = ErrLocked
			}
			return nil, fmt.Errorf("failed to lock %s: %w", dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
