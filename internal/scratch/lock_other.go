//go:build !unix

package scratch

// lock does nothing here.
// TODO(portability): lock the directory on Windows (LockFileEx); until
// then give each sumd its own -tmp-dir there.
func lock(dir string) error { return nil }
