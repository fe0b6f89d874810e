//go:build !unix

package tlog

// freeSpace cannot tell on this system: no write is refused for space.
func freeSpace(string) (int64, bool) { return 0, false }
