package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/tlog"
)

func runKeygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sumd keygen", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported the sumd way; -h prints usage
	name := fs.String("name", "", "checksum database name, host[/path] as in GOSUMDB (required)")
	dir := fs.String("dir", "keys", "directory to write NAME.key and NAME.vkey to")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: sumd keygen -name NAME [-dir keys]\n\n"+
			"Writes a new Ed25519 signing key to DIR/NAME.key (mode 0600; keep it secret and backed up)\n"+
			"and its verifier key to DIR/NAME.vkey, and prints the verifier key: the GOSUMDB value.\n"+
			"A \"/\" in NAME becomes \"_\" in the file names.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\nExample:\n\tsumd keygen -name sum.example.com\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.Usage()
			return err
		}
		return usageError(err, "see sumd keygen -h")
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Errorf("unexpected argument %q", fs.Arg(0)), "sumd keygen takes only flags: sumd keygen -name NAME")
	}
	if *name == "" {
		return usageError(errors.New("-name is required"), "pass the database name clients will use, e.g. sumd keygen -name sum.example.com")
	}
	if err := config.CheckName(*name); err != nil {
		return usageError(err, "pass -name with the database name clients will use, e.g. -name sum.example.com")
	}
	skeyFile := filepath.Join(*dir, filepath.Base(config.DefaultKeyFile(*name)))
	vkeyFile := strings.TrimSuffix(skeyFile, ".key") + ".vkey"
	vkey, err := writeKey(*name, skeyFile, vkeyFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "sumd: wrote signing key %s (secret) and verifier key %s\n", skeyFile, vkeyFile)
	fmt.Fprintf(stderr, "sumd: clients set GOSUMDB=\"%s <URL of sumd>\"\n", vkey)
	fmt.Fprintln(stdout, vkey)
	return nil
}

// writeKey generates a key for name and writes its files, refusing to
// overwrite an existing key: losing a log's key ends the log.
func writeKey(name, skeyFile, vkeyFile string) (string, error) {
	skey, vkey, err := tlog.GenerateKey(name)
	if err != nil {
		return "", fmt.Errorf("failed to generate key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(skeyFile), 0o700); err != nil {
		return "", fmt.Errorf("failed to create key directory: %w", err)
	}
	f, err := os.OpenFile(skeyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", withHint(fmt.Errorf("%s already exists", skeyFile),
			"a log keeps its key for life: serve that log with -key "+skeyFile+"; for a new log choose another -name or -dir")
	}
	if err != nil {
		return "", fmt.Errorf("failed to create signing key file: %w", err)
	}
	if _, err := fmt.Fprintln(f, skey); err != nil {
		f.Close()
		return "", fmt.Errorf("failed to write signing key: %w", err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return "", fmt.Errorf("failed to write signing key: %w", err)
	}
	if err := os.WriteFile(vkeyFile, []byte(vkey+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("failed to write verifier key: %w", err)
	}
	return vkey, nil
}
