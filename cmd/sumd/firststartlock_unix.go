//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// lockKeyFile opens the key file at path and takes its lock, exclusive
// (to remove it) or shared (to create a database signed with it), waiting
// for another holder. It returns nil if no file is at path: one removed
// while this waited is not locked, as what is at the path is what a
// caller reads or removes. Closing the file releases the lock.
func lockKeyFile(path string, exclusive bool) (*os.File, error) {
	flag, how := os.O_RDONLY, syscall.LOCK_SH
	if exclusive {
		// NFSv4 grants an exclusive lock only on a file open for writing.
		flag, how = os.O_RDWR, syscall.LOCK_EX
	}
	for {
		f, err := os.OpenFile(path, flag, 0)
		if err != nil {
			if !exists(path) {
				return nil, nil
			}
			return nil, fmt.Errorf("failed to open %s to lock it: %w", path, err)
		}
		err = flock(f, how|syscall.LOCK_NB)
		if err == syscall.EWOULDBLOCK {
			if keyLockWaiting != nil {
				keyLockWaiting()
			}
			err = flock(f, how)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("failed to lock %s: %w", path, err)
		}
		held, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("failed to lock %s: %w", path, err)
		}
		now, err := os.Stat(path)
		if err == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close() // removed or replaced while this waited
		if !exists(path) {
			return nil, nil
		}
	}
}
