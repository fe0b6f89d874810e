//go:build !(linux || darwin)

package serve

import "errors"

// fileLimit reads no limit on open files: there is none to check here
// (Windows), or its type differs (the BSDs').
var fileLimit = fileLimiter{
	get: func() (uint64, uint64, error) { return 0, 0, errors.ErrUnsupported },
	set: func(uint64, uint64) error { return errors.ErrUnsupported },
}
