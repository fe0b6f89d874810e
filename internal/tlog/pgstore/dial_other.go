//go:build !linux

package pgstore

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not known: there
// only the statement timeout bounds a write into a partition.
func setUserTimeout(string, syscall.RawConn) error { return nil }
