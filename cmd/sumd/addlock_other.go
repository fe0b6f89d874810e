//go:build !unix

package main

// lockProxyDir does nothing here, so two sumd add -proxy-dir runs at once
// may lose a version from the tree's list.
// TODO(portability): lock the tree on Windows (LockFileEx); until then
// publish one version at a time there.
func lockProxyDir(dir string) (func(), error) { return func() {}, nil }
