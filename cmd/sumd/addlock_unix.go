//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// lockProxyDir takes an exclusive flock on the GOPROXY tree dir itself
// (creating it), so that no lock file shows in the tree a web server
// serves, and returns its release. sumd add -proxy-dir holds it while it
// publishes: the version list is read, added to and written back, and two
// runs at once would each write a list without the other's version (and
// both find a version missing, then write different builds of it). It
// waits for another run: publishing takes milliseconds. The lock holds
// off runs on this machine only: Linux's NFS (and FUSE) clients lock a
// directory locally, never on the server.
func lockProxyDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create GOPROXY tree directory: %w", err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s to lock it: %w", dir, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}
