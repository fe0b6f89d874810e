package config

import (
	"errors"
	"io"
)

// Key configures `sumd key rotate` and `sumd key retire`, which change the
// keys a log signs with. They work on the database file.
type Key struct {
	Database
	Log
	NewKey string `flag:"new-key" arg:"FILE" help:"rotate: the new signing key file (same name as the log); generated there if it does not exist"`
	Retire string `flag:"retire" arg:"VKEY|FILE" help:"retire: the verifier key (or .vkey file) of the key to stop signing with"`
}

// LoadKey is LoadServe for `sumd key rotate|retire`.
func LoadKey(args, env []string, w io.Writer) (*Key, []string, error) {
	c := Key{Database: defaultDatabase(), Log: defaultLog()}
	rest, err := loadValidated(keyCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of c, one per line.
func (c *Key) Validate() error {
	var errs []error
	if c.NewKey != "" && c.Retire != "" {
		errs = append(errs, errors.New("new-key and retire are for two different steps: rotate takes -new-key, retire takes -retire"))
	}
	return errors.Join(append(errs, c.Database.Validate(), c.Log.Validate())...)
}
