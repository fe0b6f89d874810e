//go:build !linux

package tlog

import (
	"os"
	"time"
)

// writableOpenFile is bbolt's own os.OpenFile outside Linux (nil). The
// residual risk there: if a sync failed and the kernel kept the pages it
// could not write as clean in its cache (Linux does, see
// boltopen_linux.go; others vary), a process that reopens the file after
// the failed one stopped reads them, and may publish a head that a power
// loss then rolls back, and sign a fork over it. A failed sync in this
// process is fatal as everywhere; restart the machine, not only sumd,
// after one to be sure the file is read from the disk.
func writableOpenFile(time.Duration, bool) func(string, int, os.FileMode) (*os.File, error) {
	return nil
}
