package config

import (
	"errors"
	"fmt"
	"io"
	"time"
)

var statusCommand = command{
	name:    "status",
	usage:   "sumd status -url URL [-json]",
	summary: "Print the status of a running sumd serve: health and problems, tree size and\nlast commit, records per day, OCI sync, TUF expiries, counters. Sending no\ncredential to a server whose status needs an auditor (-read-auth, client\ncertificates under -tls-client-auth verify-if-given), only the health\n(/healthz); under require, it gets no TLS handshake without -client-cert.\nExit status 0: the log serves (ok or degraded); 1: it does not, or the\nserver cannot be reached.",
	example: "sumd status -url http://127.0.0.1:8080",
}

// Status configures `sumd status`, which reads GET /status of a server.
type Status struct {
	URL     string        `flag:"url" arg:"URL" help:"base URL of the sumd server, e.g. http://127.0.0.1:8080 (required)"`
	JSON    bool          `flag:"json" help:"print the server's status as JSON instead of text"`
	Timeout time.Duration `flag:"timeout" help:"how long to wait for the server's answer"`
	ClientAuth
	ClientCert
}

// LoadStatus is LoadServe for `sumd status`.
func LoadStatus(args, env []string, w io.Writer) (*Status, []string, error) {
	c := Status{Timeout: 10 * time.Second}
	rest, err := loadValidated(statusCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of c, one per line.
func (c *Status) Validate() error {
	errs := []error{c.ClientCert.Validate()}
	if c.URL == "" {
		errs = append(errs, errors.New("url is empty: set -url to the sumd server's base URL"))
	} else {
		errs = append(errs, checkURL(c.URL))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("invalid timeout %v: want a positive duration such as 10s", c.Timeout))
	}
	return errors.Join(errs...)
}
