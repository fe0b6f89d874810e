package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/newdirs"
	"github.com/sumd-project/sumd/internal/tlog"
)

func runKeygen(args []string, stdout, stderr io.Writer) error {
	cfg, rest, err := loadArgs(config.LoadKeygen, args, stderr)
	if len(rest) > 0 || err != nil && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		// "sumd keygen NAME" is the likely mistake; say so before any
		// complaint about the missing -name.
		return usageError(fmt.Errorf("unexpected argument %q", append(rest, args...)[0]), "sumd keygen takes only flags: sumd keygen -name NAME")
	}
	if err != nil {
		return err
	}
	skeyFile := filepath.Join(cfg.KeyDir, filepath.Base(config.DefaultKeyFile(cfg.Name)))
	vkeyFile := strings.TrimSuffix(skeyFile, ".key") + ".vkey"
	vkey, err := writeKey(cfg.Name, skeyFile, vkeyFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "sumd: wrote signing key %s (secret) and verifier key %s\n", skeyFile, vkeyFile)
	fmt.Fprintf(stderr, "sumd: clients set GOSUMDB=\"%s <URL of sumd>\"\n", vkey)
	fmt.Fprintln(stdout, vkey)
	return nil
}

// writeKey generates a key for name and writes its files, refusing to
// overwrite an existing key: losing a log's key ends the log. An existing
// verifier key file is refused too: it may be all that is left to verify
// an old log's backups and mirrors with. So is a directory of another
// user under one every user may write to (checkPlanted): that user could
// swap the key before a log is made with it.
func writeKey(name, skeyFile, vkeyFile string) (string, error) {
	if err := checkPlanted(skeyFile, os.Geteuid()); err != nil {
		return "", err
	}
	skey, vkey, err := tlog.GenerateKey(name)
	if err != nil {
		return "", fmt.Errorf("failed to generate key: %w", err)
	}
	created := newdirs.Missing(filepath.Dir(skeyFile))
	if err := os.MkdirAll(filepath.Dir(skeyFile), 0o700); err != nil {
		return "", fmt.Errorf("failed to create key directory: %w", err)
	}
	f, err := os.OpenFile(skeyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", withHint(fmt.Errorf("%s already exists", skeyFile),
			"a log keeps its key for life: serve that log with -key "+skeyFile+"; for a new log choose another -name or -key-dir")
	}
	if err != nil {
		return "", fmt.Errorf("failed to create signing key file: %w", err)
	}
	if _, err := os.Lstat(vkeyFile); err == nil {
		f.Close()
		os.Remove(skeyFile) // created just now, empty
		return "", withHint(fmt.Errorf("%s already exists", vkeyFile),
			"it is the verifier key of another key of this name: move it away first, or choose another -name or -key-dir")
	}
	vkeyMade, err := writeKeyFiles(f, skey, vkeyFile, vkey, created)
	if err != nil {
		// The files are this run's (O_EXCL), and no log names the key
		// yet: left behind, a key of no log would turn the next try
		// (keygen, a first start of sumd serve) into a refusal.
		f.Close()
		os.Remove(skeyFile)
		if vkeyMade {
			os.Remove(vkeyFile)
		}
		newdirs.Remove(created)
		return "", err
	}
	return vkey, nil
}

// writeKeyFiles writes the signing key to f, the new file of skeyFile,
// and the verifier key to the new file vkeyFile, and syncs their
// directories and those created for them. vkeyMade says whether it
// created vkeyFile.
func writeKeyFiles(f *os.File, skey, vkeyFile, vkey string, created []string) (vkeyMade bool, err error) {
	if _, err := fmt.Fprintln(f, skey); err != nil {
		return false, fmt.Errorf("failed to write signing key: %w", err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return false, fmt.Errorf("failed to write signing key: %w", err)
	}
	if err := writeNew(vkeyFile, []byte(vkey+"\n"), 0o644); err != nil {
		// An open that failed created nothing: the file, if any, is not
		// this run's.
		var pe *fs.PathError
		opened := !errors.As(err, &pe) || pe.Op != "open"
		return opened, fmt.Errorf("failed to write verifier key: %w", err)
	}
	// The files' names, and the directories created for them, survive a
	// power cut only once their directories are synced: key rotate stores
	// the new key in the database next, and a database naming a key whose
	// file vanished cannot sign until that key is retired.
	dirs := []string{filepath.Dir(f.Name()), filepath.Dir(vkeyFile)}
	for _, d := range created {
		dirs = append(dirs, filepath.Dir(d))
	}
	for _, d := range slices.Compact(dirs) {
		if err := syncDir(d); err != nil {
			return true, fmt.Errorf("failed to write signing key: %w", err)
		}
	}
	return true, nil
}

// writeNew writes data to the new file path, failing if it exists.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Sync(), f.Close())
}
