package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/secret"
)

// The first start of sumd serve creates the embedded default log,
// sumd.local, with a new key: the quick start needs nothing more. A log
// must never be created by accident, though (clients that trusted another
// log under its name would be locked out, and a second log beside the real
// one splits the records), so the first start happens only when the name,
// key file and database file are all the defaults, none exists, and keys/
// holds no other log's key: a directory that does is one where a log was
// set up (sumd keygen) or rotated (keys/next/), and sumd says how to serve
// it instead.

// checkFirstStart refuses the first start of db when its key directory
// (or the next/ directory key rotation writes to) holds signing keys.
func checkFirstStart(db config.Database) error {
	found := foundKeys(filepath.Dir(db.Key))
	if len(found) == 0 {
		return nil
	}
	return withHint(fmt.Errorf("not creating a new log %s: %s holds the signing key(s) of another log: %s",
		db.Name, dirName(db.Key), strings.Join(found, ", ")), keysHint(found, "serve"))
}

// foundKeys returns the signing key files (*.key) in dir and dir/next:
// those that hold a note signer key (isSignerKey), so that another tool's
// key kept there (a team's keys/cosign.key) is neither suggested as -key
// nor a reason to refuse the first start.
func foundKeys(dir string) []string {
	var found []string
	for _, pattern := range []string{filepath.Join(dir, "*.key"), filepath.Join(dir, "next", "*.key")} {
		m, _ := filepath.Glob(pattern)
		for _, f := range m {
			if isSignerKey(f) {
				found = append(found, f)
			}
		}
	}
	return found
}

// signerKeyPeek is how much of a *.key file isSignerKey reads: the prefix
// and then some leading white space, not a file that may be anything.
const signerKeyPeek = 256

// isSignerKey reports whether file is a regular file starting, after white
// space, with a note signer key's "PRIVATE+KEY+" (as sumd keygen and
// golang.org/x/mod/sumdb/note write it). A file this user may not read is
// taken as one: it may be another log's key, owned by the user sumd runs as
// elsewhere, and a log must never be created by accident beside it.
func isSignerKey(file string) bool {
	if fi, err := os.Stat(file); err != nil || !fi.Mode().IsRegular() {
		return false // a directory, a FIFO (opening it would block), gone
	}
	f, err := os.Open(file)
	if err != nil {
		return errors.Is(err, fs.ErrPermission)
	}
	defer f.Close()
	buf := make([]byte, signerKeyPeek)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return errors.Is(err, fs.ErrPermission)
	}
	return bytes.HasPrefix(bytes.TrimLeft(buf[:n], " \t\r\n"), []byte("PRIVATE+KEY+"))
}

// keysHint says how to run cmd ("serve", "key rotate") on the logs whose
// keys are found: one -key per log, the old and the next key together while
// a rotation is under way.
func keysHint(found []string, cmd string) string {
	byName := map[string][]string{} // key file name → its files
	var names []string
	for _, f := range found {
		base := filepath.Base(f)
		if byName[base] == nil {
			names = append(names, base)
		}
		byName[base] = append(byName[base], f)
	}
	slices.Sort(names)
	var cmds []string
	for _, n := range names {
		key := "sumd " + cmd + " -key " + strings.Join(byName[n], ",")
		c := key + " -db <its database>"
		if creates(cmd) && len(byName[n]) == 1 {
			// Most often a key sumd keygen has just made, whose log
			// has no database yet.
			c += " (a log not created yet: " + key + " -db " + filepath.Join("data", strings.TrimSuffix(n, ".key")+".db") + " -create)"
		}
		cmds = append(cmds, c)
	}
	if cmd != "serve" {
		return "pass that log's key: " + strings.Join(cmds, "; or ")
	}
	return "serve that log: " + cmp.Or(strings.Join(cmds, "; or "), "sumd serve -key FILE -db FILE") +
		"; to start another log on purpose: sumd keygen -name NAME, then sumd serve -name NAME -db data/NAME.db -create"
}

// creates reports whether cmd may create a new log (-create).
func creates(cmd string) bool {
	return cmd == "serve" || cmd == "add" || cmd == "sync"
}

// keyFileError explains why the signing key file cmd ("serve", "key
// rotate") was given could not be read: a verifier key given instead, a
// key other users may read, one this user may not, or a missing file
// (naming the keys that are there, or the existing database whose key is
// missing, and for serve why no log was created).
func keyFileError(db config.Database, file string, err error, cmd string) error {
	if data, rerr := readSmallFile(file, 64<<10); rerr == nil && config.CheckVerifierKeys(strings.Fields(string(data))) == nil {
		return usageError(fmt.Errorf("%s holds a verifier key (public), not the private signing key", file),
			"pass -key with the signing key file written beside it by sumd keygen, e.g. "+strings.TrimSuffix(file, ".vkey")+".key")
	}
	var mode *secret.ModeError
	switch {
	case errors.As(err, &mode):
		return withHint(err, mode.Hint())
	case errors.Is(err, fs.ErrPermission):
		return withHint(err, unreadableHint(file))
	}
	if !exists(file) {
		if found := foundKeys(filepath.Dir(file)); len(found) > 0 {
			return withHint(err, fmt.Sprintf("%s holds %s; %s", dirName(file), strings.Join(found, ", "), keysHint(found, cmd)))
		}
		if db.DB != "" && exists(db.DB) {
			// Not a new log: sumd keygen would make a key that is not one
			// of its keys. Most often sumd runs from another directory.
			wd, _ := os.Getwd()
			return withHint(err, fmt.Sprintf("the database %s exists, but its log's signing key %s does not (lost or misplaced): "+
				"give -key the log's key file; default paths are relative to the working directory, %s", db.DB, file, wd))
		}
		if cmd == "serve" && !db.IsEmbeddedDefault() && db.Name != "" {
			return withHint(err, "only the default log ("+config.DefaultName+", "+config.DefaultDB+") is created on a first start; "+
				"for this one run sumd keygen -name "+db.Name+", then sumd serve -name "+db.Name+" -db "+db.DB+" -create")
		}
	}
	return withHint(err, "pass -key FILE (or -name NAME) of your log; to start a new log, first run sumd keygen -name "+cmp.Or(db.Name, "NAME"))
}

// unreadableHint is the hint for a private key file (the signing key, the
// TLS key) that exists but this user may not read: typically one owned by
// root (or the host's user) mounted into a container, or read by a unit,
// that runs sumd as another user. The packaged unit's user is dynamic, so
// no chown can name it: a credential is the way there.
func unreadableHint(file string) string {
	return fmt.Sprintf("%s exists but this user (uid %d) cannot read it: chown it to the user sumd runs as "+
		"(65532 in the container image) and chmod 600 or 400, or under systemd pass it as a credential "+
		"(LoadCredential=, as packaging/sumd.service does)", file, os.Geteuid())
}

// dirName is the directory of file, as "keys/".
func dirName(file string) string {
	return filepath.Dir(file) + string(filepath.Separator)
}
