//go:build !unix

package tuf

// readFlags: elsewhere, readers rely on the regular-file checks alone.
const readFlags = 0
