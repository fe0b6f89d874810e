//go:build unix

package tuf

import "syscall"

// readFlags open a repository file for reading without following a
// symbolic link in the last element, and without blocking on a FIFO.
const readFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK
