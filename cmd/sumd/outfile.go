package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sumd-project/sumd/internal/durable"
)

// The output files of sumd backup and sumd mirror export (-o) are new
// files only: -o naming anything that exists is refused, as it could be a
// database — a live one, whose server stops when its file is replaced and
// whose acknowledged records would be lost, or the one being copied. The
// file is written beside its name and published with a hard link, which
// fails if the name has appeared meanwhile, so that nothing is replaced
// even then.

// checkOut refuses an -o that names anything: a file, a directory, a
// symbolic link, a named pipe. from is the file the command reads (flag
// "-db" or "-mirror" names it; "" if none), called out if -o is that file.
func checkOut(out, flag, from string) error {
	fi, err := os.Lstat(out)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return withHint(fmt.Errorf("failed to check -o %s: %w", out, err), "-o names a new file in an existing directory you can write to")
	case fi.IsDir():
		return usageError(fmt.Errorf("-o %s is a directory", out), "-o names a new file: in that directory, for example -o "+filepath.Join(out, "NAME"))
	case fi.Mode()&fs.ModeSymlink != 0:
		return usageError(fmt.Errorf("-o %s is a symbolic link", out), "-o names a new file: sumd neither writes through a link nor replaces one")
	case !fi.Mode().IsRegular():
		return usageError(fmt.Errorf("-o %s exists and is not a regular file (%s)", out, fi.Mode().Type()), "-o names a new file")
	}
	if from != "" {
		if ri, err := os.Stat(from); err == nil && os.SameFile(fi, ri) {
			return usageError(fmt.Errorf("-o %s is the database %s names", out, flag), "-o names a new file, the one to write")
		}
	}
	return usageError(fmt.Errorf("-o %s already exists", out),
		"-o names a new file (put the date in its name), or move the old one away first: sumd never replaces a file, which could be a database")
}

// writeOut writes the new file out: through write into a temporary file
// beside it (mode 0600: a backup or a bundle holds the log's records, whose
// module paths may be private), synced, then checked by check (if not nil)
// by its name, then published as out. The temporary file is removed
// whatever happens (a SIGKILL leaves it, named out.tmp-NNN); out is never
// replaced.
func writeOut(out string, write func(io.Writer) error, check func(tmp string) error) error {
	f, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".tmp-*")
	if err != nil {
		return withHint(fmt.Errorf("failed to create the output file: %w", err), "-o names a new file in an existing directory you can write to")
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.ENOSPC) {
		return withHint(fmt.Errorf("failed to write %s: %w", out, err), "nothing was written to "+out+"; "+diskFull(err, filepath.Dir(out)))
	}
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(tmp); err != nil {
			return err
		}
	}
	if err := publishOut(tmp, out); err != nil {
		return err
	}
	return syncDir(filepath.Dir(out))
}

// publishOut gives the complete file tmp the name out, which must not exist.
// A hard link fails if it does; on a file system without hard links (FAT,
// some network ones), out is renamed over only if it does not exist a
// moment before.
func publishOut(tmp, out string) error {
	err := os.Link(tmp, out)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		switch _, lerr := os.Lstat(out); {
		case lerr == nil:
			err = fs.ErrExist
		case errors.Is(lerr, fs.ErrNotExist):
			err = os.Rename(tmp, out)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		return usageError(fmt.Errorf("-o %s appeared while it was being written, and was left as it is", out), "-o names a new file: run again with another")
	}
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", out, err)
	}
	return nil
}

// syncDir is durable.SyncDir: the file's name survives a crash.
var syncDir = durable.SyncDir
