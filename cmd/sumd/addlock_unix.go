//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// proxyLockName is the lock file sumd add -proxy-dir keeps at the root of
// a GOPROXY tree. No module path starts with a dot, so no go command asks
// a proxy for it.
const proxyLockName = ".sumd-add.lock"

// lockProxyDir takes an exclusive lock on the lock file at the root of the
// GOPROXY tree dir (creating both), and returns its release. sumd add
// -proxy-dir holds it while it publishes: the version list is read, added
// to and written back, and two runs at once would each write a list
// without the other's version (and both find a version missing, then
// write different builds of it). It waits for another run: publishing
// takes milliseconds. The lock is on a file opened for writing, not on the
// directory: Linux's NFS client turns flock into a POSIX lock on the
// server, which NFSv4 grants exclusively only on a file open for writing
// (a directory gives EBADF), so runs on several machines sharing the tree
// take turns too.
func lockProxyDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create GOPROXY tree directory: %w", err)
	}
	name := filepath.Join(dir, proxyLockName)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open the lock file %s: %w", name, err)
	}
	err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if err == syscall.EWOULDBLOCK {
		if proxyLockWaiting != nil {
			proxyLockWaiting()
		}
		err = flock(f, syscall.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// proxyLockWaiting, if set by a test, runs when lockProxyDir finds the
// lock held by another run and is about to wait for it.
var proxyLockWaiting func()

// flock is syscall.Flock on f, retried when interrupted.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			return err
		}
	}
}
