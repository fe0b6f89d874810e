package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
)

// TestKeyFileUnreadable: a signing key this user may not read (a root-owned
// key mounted into the container, which runs as 65532) gets a hint naming
// the uid and the chown, not the generic "pass -key FILE" one. Root reads
// any file, so as root the error open gives other users is synthesized and
// classified by the same function.
func TestKeyFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", dir)
	key := filepath.Join(dir, e2eName+".key")
	if err := os.Chmod(key, 0); err != nil {
		t.Fatal(err)
	}
	db := config.Database{Key: key, DB: filepath.Join(dir, "sumd.db")}
	var err error
	if os.Geteuid() == 0 {
		t.Log("running as root, which reads a file of mode 0000: classifying a synthesized EACCES")
		err = keyFileError(db, key, &fs.PathError{Op: "open", Path: key, Err: fs.ErrPermission}, "serve")
	} else {
		_, err = readKeys(db, "serve")
	}
	var ce *cliError
	if !errors.As(err, &ce) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("readKeys of a key of mode 0000 = %v, want a permission error with a hint", err)
	}
	want := fmt.Sprintf("%s exists but this user (uid %d) cannot read it: chown it to the user sumd runs as (65532 in the container image) "+
		"and chmod 600 or 400, or under systemd pass it as a credential (LoadCredential=, as packaging/sumd.service does)", key, os.Geteuid())
	if ce.hint != want || strings.Contains(ce.hint, "sumd keygen") {
		t.Errorf("hint = %q\nwant %q", ce.hint, want)
	}
}

// TestTLSKeyUnreadable: a TLS key this user may not read (root's, 0600,
// under the unit's dynamic user) gets the signing key's hint, naming the
// key, not "must be the PEM certificate chain and its private key". As
// root, the error open gives other users is synthesized, as above.
func TestTLSKeyUnreadable(t *testing.T) {
	dir := t.TempDir()
	cert := writeFile(t, filepath.Join(dir, "tls.crt"), []byte("not read: the key fails first\n"))
	key := writeFile(t, filepath.Join(dir, "tls.key"), nil)
	if err := os.Chmod(key, 0); err != nil {
		t.Fatal(err)
	}
	var err error
	if os.Geteuid() == 0 {
		t.Log("running as root, which reads a file of mode 0000: classifying a synthesized EACCES")
		err = tlsFileError(&fs.PathError{Op: "open", Path: key, Err: fs.ErrPermission})
	} else {
		_, _, err = loadTLS(cert, key, slog.Default())
	}
	var ce *cliError
	if !errors.As(err, &ce) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("loadTLS with a key of mode 0000 = %v, want a permission error with a hint", err)
	}
	if want := unreadableHint(key); ce.hint != want || !strings.Contains(ce.hint, "LoadCredential=") {
		t.Errorf("hint = %q\nwant %q", ce.hint, want)
	}

	// Anything else is still a file that is not PEM.
	_, _, err = loadTLS(cert, writeSecret(t, filepath.Join(dir, "bad.key"), "not PEM\n"), slog.Default())
	if !errors.As(err, &ce) || !strings.Contains(ce.hint, "must be the PEM certificate chain") {
		t.Errorf("loadTLS of a certificate that is not PEM = %v (hint %q)", err, ce.hint)
	}
}

// TestFoundKeysOnlySigners: foundKeys takes a *.key file for a log's key
// only if it holds a note signer key (PRIVATE+KEY+...): a team's cosign key
// (keys/cosign.key, a PEM) beside the log's key is neither suggested as a
// -key nor a reason to refuse the first start, and a large *.key file is
// read only in part.
func TestFoundKeysOnlySigners(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		f := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	write("cosign.key", "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnsibmFtZSI6InNjcnlwdCJ9fQ==\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
	write("big.key", strings.Repeat("x", 1<<20)+"PRIVATE+KEY+not+at+the+start\n")
	if err := os.Mkdir(filepath.Join(dir, "dir.key"), 0o700); err != nil {
		t.Fatal(err)
	}
	if found := foundKeys(dir); len(found) != 0 {
		t.Errorf("foundKeys = %v, want none: no note signer key", found)
	}
	if err := checkFirstStart(config.Database{Name: "sumd.local", Key: filepath.Join(dir, "sumd.local.key")}); err != nil {
		t.Errorf("checkFirstStart beside a cosign key = %v, want nil", err)
	}
	log := write("sum.example.com.key", "PRIVATE+KEY+sum.example.com+0a1b2c3d+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")
	next := write("next/sum.example.com.key", "PRIVATE+KEY+sum.example.com+1a2b3c4d+AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")
	if found := foundKeys(dir); !slices.Equal(found, []string{log, next}) {
		t.Errorf("foundKeys = %v, want [%s %s]", found, log, next)
	}
}

// TestFirstStartFailedLeavesNoKey: a first start that generated the key
// but then failed to create the database (here: below -min-free-disk)
// removes the key it generated, so that the next start is a first start
// again instead of refusing a key without its database ("database
// data/sumd.db: file does not exist ... add -create"), and its hint says
// so, where it said the database, which is gone, was intact.
func TestFirstStartFailedLeavesNoKey(t *testing.T) {
	dir := t.TempDir()
	cmd := sumdCommand(t, "serve", "-listen", "127.0.0.1:0", "-min-free-disk", "900000000")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not enough free disk space") {
		t.Fatalf("first start below the disk floor: %v\n%s", err, out)
	}
	for _, f := range []string{"keys/sumd.local.key", "keys/sumd.local.vkey", "data/sumd.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after the failed first start, %s: %v; want it gone", f, err)
		}
	}
	if !strings.Contains(string(out), "removed the signing key") {
		t.Errorf("the failed first start does not say it removed the key it generated:\n%s", out)
	}
	// No database is left to be intact: the hint says so, and that the
	// next start is a first start again.
	if _, hint, _ := strings.Cut(string(out), "hint:"); strings.Contains(hint, "intact") || !strings.Contains(hint, "first start again") {
		t.Errorf("the failed first start's hint %q, want it to say no database was left and the next start is a first start again", hint)
	}
}

// TestFirstStartDataNotDirectory: where data is a file, data/sumd.db
// cannot exist (stat fails with ENOTDIR, not ENOENT). It was taken for an
// existing database, so the first start told of a signing key "lost or
// misplaced" beside it; now it is a first start whose database cannot be
// created, which says why, with a hint (it gave none).
func TestFirstStartDataNotDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data"), []byte("not a directory\n"))
	cmd := sumdCommand(t, "serve", "-listen", "127.0.0.1:0")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil || strings.Contains(string(out), "lost or misplaced") || !strings.Contains(string(out), "not a directory") {
		t.Fatalf("first start with data a file: %v, want the database's failure, not a lost key:\n%s", err, out)
	}
	if _, hint, _ := strings.Cut(string(out), "hint:"); !strings.Contains(hint, "data is a file") {
		t.Errorf("first start with data a file: want a hint saying data is a file:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "sumd.local.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after the failed first start, keys/sumd.local.key: %v; want it gone", err)
	}
}
