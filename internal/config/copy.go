package config

import (
	"errors"
	"io"
)

var copyCommand = command{
	name:    "copy",
	usage:   "sumd copy -from DB -to DB",
	summary: "Copy a log between databases (a bbolt file or a postgres:// URL, either way),\nthen verify the copy in full against its signed tree head. The destination\nmust be empty, or hold an earlier copy of the same log (which is brought up\nto date). Stop the servers of a bbolt source first; a PostgreSQL source may\nbe live: the copy ends at the head it read first.",
	example: "sumd copy -from data/sumd.db -to 'postgres://sumd@db.example.com/sumd?sslmode=verify-full'",
}

// Copy configures `sumd copy`.
type Copy struct {
	Log
	DiskFloor
	From string `flag:"from" arg:"FILE|URL" help:"database to copy: a bbolt file or a postgres:// URL (required)"`
	To   string `flag:"to" arg:"FILE|URL" help:"database to copy into: a bbolt file (created if missing) or a postgres:// URL of an existing database (required)"`
}

// LoadCopy is LoadServe for `sumd copy`.
func LoadCopy(args, env []string, w io.Writer) (*Copy, []string, error) {
	c := Copy{Log: defaultLog(), DiskFloor: defaultDiskFloor()}
	rest, err := loadValidated(copyCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of c, one per line.
func (c *Copy) Validate() error {
	errs := []error{c.Log.Validate(), c.DiskFloor.Validate()}
	if c.From == "" {
		errs = append(errs, errors.New("from is empty: set -from to the database to copy"))
	}
	if c.To == "" {
		errs = append(errs, errors.New("to is empty: set -to to the database to copy into"))
	}
	if c.From != "" && c.From == c.To {
		errs = append(errs, errors.New("from and to are the same database"))
	}
	return errors.Join(errs...)
}
