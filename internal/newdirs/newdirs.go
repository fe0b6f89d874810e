// Package newdirs keeps track of the directories a command makes for a new
// file (a database, a key, a scratch directory), so that a command refused
// after making them removes them again and leaves nothing it made, at
// whichever depth the refusal comes: tlog's Open, or sumd add around it.
package newdirs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Missing returns dir and those of its parents that do not exist, deepest
// first: the directories os.MkdirAll(dir, …) makes, when called before it.
// A directory that cannot be checked (no permission to) counts as
// existing: it is never removed.
func Missing(dir string) []string {
	var out []string
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			return out
		}
		out = append(out, dir)
		if filepath.Dir(dir) == dir {
			return out
		}
	}
}

// Remove removes dirs, the directories Missing returned (of one path or
// several), deepest first whatever their order, each only while it is
// an empty directory: one that holds anything (a file kept on purpose, or
// one another process made meanwhile) stays, and so do its parents, and
// so does a name that is now a file (another process's). What cannot be
// removed stays as it was made: the caller is already failing.
func Remove(dirs []string) {
	dirs = slices.Clone(dirs)
	// A directory's path is longer than its parent's.
	slices.SortStableFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	for _, d := range dirs {
		// Rmdir, not os.Remove, which unlinks a file: a name that is a
		// file now was made by someone else, not by MkdirAll here.
		syscall.Rmdir(d)
	}
}
