package config

import (
	"errors"
	"io"
	"strings"
)

var (
	backupCommand = command{
		name:  "backup",
		usage: "sumd backup -server URL [-token-file FILE | -auth AUTH] -o FILE\n       sumd backup -db FILE -o FILE\n       sumd backup verify [-vkey VKEYS|FILE] FILE",
		summary: "Copy the database consistently: from a running sumd serve (GET /admin/backup,\n" +
			"while it serves and appends), or from the file of a stopped one. The copy is\n" +
			"a database file. Restoring an old copy is dangerous: see docs/mirrors.md.",
		example: "sumd backup -server https://sum.example.com -token-file admin.token -o backup.db",
		// DiskFloor's -min-free-disk speaks of the database's writes.
		helps: map[string]optionHelp{"min-free-disk": {"MIB", "MiB kept free on the file system of -o while the copy is written: " +
			"a copy that would leave less stops, writing nothing to -o; 0: no floor"}},
	}
	backupVerifyCommand = command{
		name:    "backup verify",
		usage:   "sumd backup verify [-vkey VKEYS|FILE] FILE",
		summary: "Open a backup read-only and verify it in full: the signed head, every tile and\nevery record.",
		example: "sumd backup verify -vkey keys/sum.example.com.vkey backup.db",
	}
	restoreCommand = command{
		name:  "restore",
		usage: "sumd restore -db FILE -key FILE -from MIRROR",
		summary: "Rebuild a primary's database, or roll an old one forward, from a full mirror of\n" +
			"it (a mirror database file, or the URL of a server serving one), verified with\n" +
			"the primary's own key, so that it resumes signing exactly where the mirror's\n" +
			"newest head left off: go commands that saw any head up to it accept the next.\n" +
			"The database is replaced only once the rebuilt copy verifies in full.",
		example: "sumd restore -db data/sumd.db -key keys/sum.example.com.key -from replica.db",
		// Database's -db offers PostgreSQL, which restore refuses.
		helps: map[string]optionHelp{"db": {"FILE", "the primary's database file to rebuild, or to roll forward: sumd restore writes a bbolt file " +
			"(for a PostgreSQL database, restore into a file, then copy it in with sumd copy -from FILE -to URL)"},
			// Database's -min-free-disk speaks of a server's 503s and of
			// PostgreSQL.
			"min-free-disk": {"MIB", "MiB kept free on the file system of -db while the restored copy (and, from a URL, the mirror kept " +
				"beside it) is written: a write that would leave less stops the restore, which then changes nothing; 0: no floor"}},
	}
)

// Backup configures `sumd backup`.
type Backup struct {
	DB        string `flag:"db" arg:"FILE" help:"the database file of a stopped server to copy (instead of -server)"`
	Server    string `flag:"server" arg:"URL" help:"base URL of the running sumd serve to copy from, through its admin API"`
	TokenFile string `flag:"token-file" secret:"true" arg:"FILE" help:"file holding the admin API bearer token, with -server; without it, -auth names an admin's credentials"`
	InsecureHTTP
	ClientAuth
	ClientCert
	DiskFloor
	Out string `flag:"o" arg:"FILE" help:"the copy to write (required): a new file, never one that exists; written beside it as FILE.tmp-NNN, verified, then given its name"`
}

// LoadBackup is LoadServe for `sumd backup`.
func LoadBackup(args, env []string, w io.Writer) (*Backup, []string, error) {
	c := Backup{DiskFloor: defaultDiskFloor()}
	rest, err := loadValidated(backupCommand, &c, args, env, w)
	return &c, rest, err
}

// The credentials go to the server of -server: given on the command line
// with -db, a file copied from disk, they are refused rather than ignored.
func (c *Backup) modes() []mode {
	return []mode{{[]string{"token-file", "auth", "client-cert", "client-key", "insecure-http"}, "server", true,
		"copying from a running sumd: -db copies a file from disk, and no server asks for credentials", nil}}
}

// Validate reports every problem of c, one per line.
func (c *Backup) Validate() error {
	errs := []error{c.DiskFloor.Validate(), c.ClientCert.Validate()}
	switch {
	case c.Server == "" && c.DB == "":
		errs = append(errs, errors.New("nothing to copy: set -server URL (a running sumd) or -db FILE (a stopped one)"))
	case c.Server != "" && c.DB != "":
		errs = append(errs, errors.New("server and db both name what to copy: give one"))
	case c.Server != "":
		errs = append(errs, checkURL(c.Server))
	}
	if c.Out == "" {
		errs = append(errs, errors.New("o is empty: set -o to the file to write"))
	}
	return errors.Join(errs...)
}

// BackupVerify configures `sumd backup verify`.
type BackupVerify struct {
	VKey string `flag:"vkey" arg:"VKEYS|FILE" help:"verifier keys the backup's head must be signed by; default: the keys the backup lists (it then only proves itself consistent)"`
}

// LoadBackupVerify is LoadServe for `sumd backup verify`.
func LoadBackupVerify(args, env []string, w io.Writer) (*BackupVerify, []string, error) {
	var c BackupVerify
	rest, err := loadValidated(backupVerifyCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate accepts anything: the backup file is an argument.
func (c *BackupVerify) Validate() error { return nil }

// Restore configures `sumd restore`.
type Restore struct {
	Database
	DiskFloor
	Log
	From string `flag:"from" arg:"MIRROR" help:"the full mirror to restore from: its database file, or the URL of a server serving it (such as https://replica.example or https://proxy.example/sumdb/sum.example.com) (required)"`
	ClientAuth
	ClientCert
}

// LoadRestore is LoadServe for `sumd restore`.
func LoadRestore(args, env []string, w io.Writer) (*Restore, []string, error) {
	c := Restore{Database: defaultDatabase(), DiskFloor: defaultDiskFloor(), Log: defaultLog()}
	rest, err := loadValidated(restoreCommand, &c, args, env, w)
	return &c, rest, err
}

// -auth and the client certificate are presented to the server of -from:
// given on the command line with a mirror file, which no server serves,
// they are refused rather than ignored.
func (c *Restore) modes() []mode {
	fromFile := func() bool {
		return c.From != "" && !strings.HasPrefix(c.From, "http://") && !strings.HasPrefix(c.From, "https://")
	}
	return []mode{{[]string{"auth", "client-cert", "client-key"}, "from FILE", false,
		"restoring from a server's URL: a mirror file is read from disk, and no server asks for credentials", fromFile}}
}

// Validate reports every problem of c, one per line.
func (c *Restore) Validate() error {
	errs := []error{c.Database.Validate(), c.DiskFloor.Validate(), c.Log.Validate(), c.ClientCert.Validate()}
	if c.From == "" {
		errs = append(errs, errors.New("from is empty: set -from to the mirror's database file or URL"))
	}
	return errors.Join(errs...)
}
