//go:build linux || darwin

package serve

import "syscall"

// fileLimit is the process's RLIMIT_NOFILE.
var fileLimit = fileLimiter{
	get: func() (uint64, uint64, error) {
		var l syscall.Rlimit
		err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
		return l.Cur, l.Max, err
	},
	set: func(soft, hard uint64) error {
		return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: soft, Max: hard})
	},
}
