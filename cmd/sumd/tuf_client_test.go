package main

import "testing"

// TestTUFCacheDirTrailingSlash: -tuf-url with or without a trailing slash
// names one repository, whose pin directory (tuf.pinDir) is one already;
// the directory above it must be one too, or a run spelling the URL the
// other way starts from the pinned root with no cached timestamp, losing
// the newest root verified and the rollback check against the last run.
func TestTUFCacheDirTrailingSlash(t *testing.T) {
	a := tufCacheDir("state", "https://sum.example.com/tuf")
	b := tufCacheDir("state", "https://sum.example.com/tuf/")
	if a != b {
		t.Errorf("tufCacheDir: %s without the slash, %s with it", a, b)
	}
}
