//go:build unix

package tlog

import (
	"math"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// freeSpace reads the blocks available to unprivileged users on the file
// system of path's directory (statfs(2)): the space sumd may count on,
// without the blocks reserved for root.
func freeSpace(path string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &st); err != nil {
		return 0, false
	}
	avail, size := uint64(st.Bavail), uint64(st.Bsize)
	if size != 0 && avail > math.MaxInt64/size {
		return math.MaxInt64, true
	}
	return int64(avail * size), true
}
