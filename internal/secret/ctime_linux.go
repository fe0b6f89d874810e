package secret

import (
	"io/fs"
	"syscall"
	"time"
)

// ctime is fi's change time (the inode's), the zero time if fi has none.
func ctime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return time.Time{}
}
