package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/secret"
	"github.com/sumd-project/sumd/internal/tlog"
)

const keyUsage = `Usage: sumd key STEP [flags]

Rotate the log's signing key without breaking any client (docs/keys.md). Steps:

	rotate   add a new key: every tree head is signed by both from then on
	retire   stop signing with the old key, once every client knows the new one

Run "sumd key STEP -h" for the flags of a step.
`

// runKey runs `sumd key rotate` and `sumd key retire`: a key rotation with
// overlap, never a replacement (PROTOCOL.md §3: a reset key locks out every
// client that saw the old one).
func runKey(args []string, stdout, stderr io.Writer) error {
	const hint = "use: sumd key rotate -new-key FILE, then later sumd key retire -retire OLD_VKEY"
	if askHelp(args) {
		fmt.Fprint(stderr, keyUsage)
		return flag.ErrHelp
	}
	load := map[string]func(args, env []string, w io.Writer) (*config.Key, []string, error){
		"rotate": config.LoadKeyRotate,
		"retire": config.LoadKeyRetire,
	}
	if len(args) == 0 || load[args[0]] == nil {
		return usageError(stepError("key", args, "rotate or retire"), hint)
	}
	step := args[0]
	cfg, err := loadFlags(load[step], args[1:], stderr, hint)
	if err != nil {
		return err
	}
	o := openOptions{cmd: "key " + step, logger: config.NewLogger(cfg.Log, stderr), minFree: cfg.DiskFloor.Bytes()}
	if step == "rotate" {
		l, err := openLog(cfg.Database, o, stderr)
		if err != nil {
			return err
		}
		defer l.Close()
		return rotate(l, cfg, stdout, stderr)
	}
	if cfg.Retire == "" {
		return usageError(errors.New("retire needs -retire VKEY|FILE"), "give the verifier key (or .vkey file) of the key to stop signing with")
	}
	vkey, err := readVKey("-retire", cfg.Retire)
	if err != nil {
		return err
	}
	// Retiring a key never needs its private half: a key whose file was
	// lost is retired with the remaining keys (docs/keys.md, Losing a key).
	o.lostKey = vkey
	l, err := openLog(cfg.Database, o, stderr)
	if err != nil {
		return err
	}
	defer l.Close()
	return retire(l, cfg, vkey, stdout, stderr)
}

// rotate adds the new key, generating it first if its file does not exist.
func rotate(l *tlog.Log, cfg *config.Key, stdout, stderr io.Writer) error {
	if cfg.NewKey == "" {
		return usageError(errors.New("rotate needs -new-key FILE"), "name the new key's file; sumd generates the key there if it does not exist")
	}
	newKeyHint := "name a .key file that does not exist, e.g. -new-key keys/next/" + filepath.Base(config.DefaultKeyFile(l.Name())) + ": sumd generates the key there"
	if strings.HasSuffix(cfg.NewKey, ".vkey") {
		return usageError(fmt.Errorf("-new-key %s is a verifier key file (public); -new-key takes the new private key file", cfg.NewKey), newKeyHint)
	}
	if !strings.HasSuffix(cfg.NewKey, ".key") {
		named := "-new-key " + cfg.NewKey
		if !secret.PathLike(cfg.NewKey) { // perhaps the key itself, pasted
			named = "-new-key (its value not repeated, in case it is the key itself)"
		}
		return usageError(fmt.Errorf("%s: want a file name ending in .key", named), newKeyHint)
	}
	if err := checkPlanted(cfg.NewKey, os.Geteuid()); err != nil {
		return err
	}
	if !exists(cfg.NewKey) {
		if _, err := writeKey(l.Name(), cfg.NewKey, strings.TrimSuffix(cfg.NewKey, ".key")+".vkey"); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "sumd: generated the new signing key %s\n", cfg.NewKey)
	}
	k, err := readKeyFile(cfg.NewKey)
	if err != nil {
		if data, rerr := readSmallFile(cfg.NewKey, 64<<10); rerr == nil && config.CheckVerifierKeys(strings.Fields(string(data))) == nil {
			return usageError(fmt.Errorf("%s holds a verifier key (public); -new-key takes the new private key file", cfg.NewKey), newKeyHint)
		}
		return err
	}
	if err := l.AddKey(context.Background(), k); err != nil {
		return withHint(err, "the new key must be a fresh key for the same name: sumd keygen -name "+l.Name()+" -key-dir keys/next")
	}
	fmt.Fprintln(stdout, k.VerifierKey())
	fmt.Fprintf(stderr, "sumd: every tree head is now signed by %s\n", strings.Join(l.VerifierKeys(), " and "))
	fmt.Fprintf(stderr, "sumd: serve with -key %s,%s; publish the new verifier key; once every client uses it, run sumd key retire -retire %s\n",
		cfg.Key, cfg.NewKey, l.VerifierKeys()[0])
	fmt.Fprintf(stderr, "sumd: to publish both keys through TUF: sumd tuf publish -db %s -key %s,%s\n", redact(cfg.DB), cfg.Key, cfg.NewKey)
	fmt.Fprintf(stderr, "sumd: back up %s now, before serving: the log signs with it from now on, and if it is lost the log signs again only once it is retired (docs/keys.md, Losing a key)\n", cfg.NewKey)
	if dir := worldWritable(cfg.NewKey); dir != "" {
		fmt.Fprintf(stderr, "sumd: warning: %s is under %s, which every user may write to (as /tmp, often emptied at boot): move the key to a directory of its own, backed up, and serve it from there\n", cfg.NewKey, dir)
	}
	return nil
}

// worldWritable returns the nearest directory above file that every user
// may write to, or "". Such a directory (/tmp, /var/tmp) is no place for a
// key: it is emptied at boot or by age, and any user may make names in it.
func worldWritable(file string) string {
	if runtime.GOOS == "windows" {
		return "" // no Unix permission bits
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return ""
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o002 != 0 {
			return dir
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}

// checkPlanted refuses the key file about to become a new key (of the
// log, or of the TUF repository's root or targets), existing or to be
// generated, if it lies under a directory every user may write to
// (worldWritable) and it, or a directory between, belongs to another
// user than uid: anyone could have put the file there, or may swap or
// delete it, keeping the private half of the key sumd would trust or
// losing the only copy of a key. (A file of the operator's own there is
// only warned about.)
func checkPlanted(file string, uid int) error {
	shared := worldWritable(file)
	if shared == "" {
		return nil
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil // reading the key reports the path's problem
	}
	check := func(path string, fi fs.FileInfo) error {
		if owner, ok := fileOwner(fi); ok && owner != uid {
			return withHint(fmt.Errorf("%s belongs to uid %d, not to this user (uid %d), and lies under %s, which every user may write to: whoever put it there may hold a copy of the key", path, owner, uid, shared),
				"keep keys in a directory of your own: name one that does not exist yet (sumd makes it) or one you made, never one another user made")
		}
		return nil
	}
	if fi, err := os.Stat(abs); err == nil {
		if err := check(file, fi); err != nil {
			return err
		}
	}
	// The file and the directories to make may not exist yet: sumd
	// generates a key there, and makes them its own.
	for p := abs; p != shared && p != filepath.Dir(p); p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil
		}
		if err := check(p, fi); err != nil {
			return err
		}
	}
	return nil
}

// retire removes the key vkey from the signing set, in one commit that
// re-signs the head with the remaining keys.
func retire(l *tlog.Log, cfg *config.Key, vkey string, stdout, stderr io.Writer) error {
	if slices.Equal(l.VerifierKeys(), []string{vkey}) {
		return withHint(fmt.Errorf("cannot retire %s: it is the log's only key", vkey),
			"rotate first: sumd key rotate -new-key keys/next/"+filepath.Base(config.DefaultKeyFile(l.Name()))+", publish the new verifier key, and retire this one once clients have it")
	}
	if err := l.RemoveKey(context.Background(), vkey); err != nil {
		return withHint(err, "give one of the verifier keys the log signs with")
	}
	fmt.Fprintf(stderr, "sumd: tree heads are now signed by %s only; serve with the remaining key file(s)\n", strings.Join(l.VerifierKeys(), " and "))
	fmt.Fprintf(stderr, "sumd: to publish that through TUF: sumd tuf publish -db %s -key <the remaining key file(s)>\n", redact(cfg.DB))
	fmt.Fprintln(stdout, strings.Join(l.VerifierKeys(), "\n"))
	return nil
}
