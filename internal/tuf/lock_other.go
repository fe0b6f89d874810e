//go:build !unix

package tuf

import (
	"errors"
	"log/slog"
)

// ErrLocked means another process holds the repository.
var ErrLocked = errors.New("TUF repository is locked by another sumd")

// lock does nothing here, so writers are not serialised: two at once may
// issue the same version twice, and of two concurrent Inits one may remove
// the other's DIR/.init-* build as an interrupted Init's leftovers (doc.go
// says so).
// TODO(portability): lock the repository on Windows (LockFileEx); until
// then run one writer at a time there.
func lock(dir string) (func(), error) { return func() {}, nil }

// lockCache does nothing here either: two runs on one client cache at once
// may leave the older run's metadata in it.
// TODO(portability): as lock.
func lockCache(dir string, log *slog.Logger) (func(), error) { return func() {}, nil }
