//go:build !unix

package tuf

import "errors"

// ErrLocked means another process holds the repository.
var ErrLocked = errors.New("TUF repository is locked by another sumd")

// lock does nothing here.
// TODO(portability): lock the repository on Windows (LockFileEx); until
// then run one writer at a time there.
func lock(dir string) (func(), error) { return func() {}, nil }
