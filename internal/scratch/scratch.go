// Package scratch owns sumd's directory of temporary files: the module zips
// that are downloaded from an upstream proxy, uploaded to the admin API or
// read from an OCI registry are streamed to disk, so that memory stays
// bounded whatever their size, and hashed there; and the sorted runs of
// go.sum lines that sumd add -gosum sorts through disk.
//
// The directory belongs to one sumd process (see [Dir]: the default,
// <database>.tmp, is beside the database whose lock sumd holds), and [Open]
// makes sure of it with a lock of its own: one -tmp-dir given to two
// processes that share a PostgreSQL database, or to two servers of two
// databases, would let the second remove the first one's zips in flight. A
// crash leaves files behind that no one will remove: Open removes them at
// the next start, and only them — regular files named as [Create] names
// them — so a directory configured by mistake loses nothing else.
package scratch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
)

// Dir decides the scratch directory of a sumd: dir, the -tmp-dir option,
// if set; else the database file's name plus ".tmp", a directory beside
// the database whose lock makes it this sumd's alone; else — a database
// several processes share (PostgreSQL: dbFile is ""), or none — a new
// directory under $TMPDIR of this process's own, since a shared directory
// cleaned of a crash's files at start would be cleaned under another
// process. done removes the directory Dir made (a crash leaves it to the
// system's cleaning of $TMPDIR) and does nothing for the others, which
// [Open] prepares.
func Dir(dir, dbFile string) (path string, done func(), err error) {
	switch {
	case dir != "":
		return dir, func() {}, nil
	case dbFile != "":
		return dbFile + ".tmp", func() {}, nil
	}
	if dir, err = os.MkdirTemp("", "sumd-*.tmp"); err != nil {
		return "", nil, fmt.Errorf("failed to create a temporary directory: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// A Kind names what a temporary file holds; it is part of the file name.
type Kind string

const (
	Upstream Kind = "upstream" // a zip fetched from an upstream proxy
	Upload   Kind = "upload"   // a zip uploaded to the admin API
	OCI      Kind = "oci"      // a zip layer read from an OCI registry
	Sort     Kind = "sort"     // a sorted run of go.sum lines (sumd add -gosum)
	Backup   Kind = "backup"   // a database snapshot being sent (GET /admin/backup)
)

// orphan matches the names Create gives: "sumd-<kind>-<random
// digits>.zip", ".run" for sorted runs, ".db" for backups.
var orphan = regexp.MustCompile(`^sumd-((upstream|upload|oci)-[0-9]+\.zip|sort-[0-9]+\.run|backup-[0-9]+\.db)$`)

// Create creates a new temporary file of the given kind in dir, mode 0600.
// The caller removes it. dir "" means os.TempDir(), for callers that run
// once and have no scratch directory of their own.
func Create(dir string, kind Kind) (*os.File, error) {
	ext := ".zip"
	switch kind {
	case Sort:
		ext = ".run"
	case Backup:
		ext = ".db"
	}
	if !orphan.MatchString("sumd-" + string(kind) + "-0" + ext) {
		return nil, fmt.Errorf("scratch: unknown kind %q", kind)
	}
	return os.CreateTemp(dir, "sumd-"+string(kind)+"-*"+ext)
}

// ErrInUse is Open's error for a directory another process holds.
var ErrInUse = errors.New("in use by another sumd process")

// Open makes dir ready for Create: it creates it (mode 0700) if needed,
// refuses a directory that other users may write to (such as /tmp: a file
// there is not sumd's alone) or that another user owns (who could swap a
// zip between its hashing and its use, or plant links: root's sumd add in
// the service user's <database>.tmp), takes the directory for this process, and
// removes the files a sumd that crashed left there. It returns the names it
// removed.
//
// The directory is taken by an exclusive lock on the file "sumd.lock" in
// it (flock), held until the process exits: a second process that opens
// the directory gets ErrInUse before it removes anything, since the files
// there may be the first one's zips in flight. The same process may open
// it again. A "sumd.lock" that is a symbolic or hard link is refused, never
// written through. On systems without flock (Windows) nothing is locked.
func Open(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create the temporary directory: %w", err)
	}
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return nil, fmt.Errorf("failed to check the temporary directory: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("temporary directory %s is not a directory", dir)
	case runtime.GOOS != "windows" && fi.Mode().Perm()&0o022 != 0:
		return nil, fmt.Errorf("temporary directory %s is writable by other users (mode %s): sumd needs a directory of its own", dir, fi.Mode().Perm())
	}
	if err := checkOwner(dir, fi, os.Geteuid()); err != nil {
		return nil, err
	}
	if err := lock(dir); err != nil {
		return nil, err
	}
	return removeOrphans(dir)
}

// removeOrphans removes the regular files of dir that Create named.
func removeOrphans(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to list the temporary directory: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !orphan.MatchString(e.Name()) {
			continue
		}
		name := filepath.Join(dir, e.Name())
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("failed to remove a temporary file left by a crash: %w", err))
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}
