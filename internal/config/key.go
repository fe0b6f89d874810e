package config

import (
	"errors"
	"io"
)

// Key configures `sumd key rotate` and `sumd key retire`, which change the
// keys a log signs with. They work on the database file.
type Key struct {
	Database
	DiskFloor
	Log
	NewKey string `flag:"new-key" secret:"true" arg:"FILE" help:"rotate: the new signing key file (same name as the log); generated there if it does not exist"`
	Retire string `flag:"retire" arg:"VKEY|FILE" help:"retire: the verifier key (or .vkey file) of the key to stop signing with"`
}

// LoadKeyRotate is LoadServe for `sumd key rotate`.
func LoadKeyRotate(args, env []string, w io.Writer) (*Key, []string, error) {
	return loadKey(keyRotateCommand, args, env, w)
}

// LoadKeyRetire is LoadServe for `sumd key retire`.
func LoadKeyRetire(args, env []string, w io.Writer) (*Key, []string, error) {
	return loadKey(keyRetireCommand, args, env, w)
}

// loadKey loads either step: they share their flags, and each has its
// own usage text and example.
func loadKey(cmd command, args, env []string, w io.Writer) (*Key, []string, error) {
	c := Key{Database: defaultDatabase(), DiskFloor: defaultDiskFloor(), Log: defaultLog()}
	rest, err := loadValidated(cmd, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of c, one per line.
func (c *Key) Validate() error {
	var errs []error
	if c.NewKey != "" && c.Retire != "" {
		errs = append(errs, errors.New("new-key and retire are for two different steps: rotate takes -new-key, retire takes -retire"))
	}
	return errors.Join(append(errs, c.Database.Validate(), c.DiskFloor.Validate(), c.Log.Validate())...)
}

// Keygen configures `sumd keygen`, which creates a log's signing key.
//
// The key directory is key-dir, not dir: dir is the TUF repository of the
// tuf commands, and a shared config file or SUMD_DIR naming it would have
// put the private key in a directory that is published. keygen's command
// line still accepts -dir (keygenCommand.aliases), where it can only be
// meant for keygen.
type Keygen struct {
	Name   string `flag:"name" arg:"NAME" help:"checksum database name, host[/path] as in GOSUMDB, e.g. sum.example.com (required)"`
	KeyDir string `flag:"key-dir" arg:"DIR" help:"directory to write NAME.key and NAME.vkey to (-dir on the command line too); sumd serve looks in keys/ unless given -key"`
}

// LoadKeygen is LoadServe for `sumd keygen`.
func LoadKeygen(args, env []string, w io.Writer) (*Keygen, []string, error) {
	c := Keygen{KeyDir: "keys"}
	rest, err := loadValidated(keygenCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of c, one per line.
func (c *Keygen) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is empty: pass -name with the database name clients will use, e.g. -name sum.example.com"))
	} else {
		errs = append(errs, CheckName(c.Name))
	}
	if c.KeyDir == "" {
		errs = append(errs, errors.New("key-dir is empty: pass -key-dir with the directory for the key files, e.g. -key-dir keys"))
	}
	return errors.Join(errs...)
}
