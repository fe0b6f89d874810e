//go:build !unix

package scratch

import "os"

// lock does nothing here.
// TODO(portability): lock the directory on Windows (LockFileEx); until
// then give each sumd its own -tmp-dir there.
func lock(dir string) error { return nil }

// checkOwner checks nothing here: the directory's owner is not in its
// FileInfo.
func checkOwner(dir string, fi os.FileInfo, uid int) error { return nil }
