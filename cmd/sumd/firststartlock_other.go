//go:build !unix

package main

import "os"

// lockKeyFile opens the key file at path, without a lock here, so a
// sumd serve -create started while a failed first start removes its key
// may create a database signed with the key removed.
// TODO(portability): lock the file on Windows (LockFileEx).
func lockKeyFile(path string, exclusive bool) (*os.File, error) {
	flag := os.O_RDONLY
	if exclusive {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil && !exists(path) {
		return nil, nil
	}
	return f, err
}
