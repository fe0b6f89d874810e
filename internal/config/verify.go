package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
)

// Verify configures `sumd verify`, the auditor. It talks to a checksum
// database over HTTP only, so it works against any server in the sumdb
// format, and never opens a database file.
//
// The option key means the verifier key here, where it means the signing
// key file for serve and add: a YAML file or SUMD_KEY shared with those
// commands would hand verify a private key, which it refuses by name.
type Verify struct {
	URL         string   `flag:"url" arg:"URL" help:"base URL of the checksum database, e.g. https://sum.golang.org or http://proxy.example/sumdb/sum.golang.org (required)"`
	Key         []string `flag:"key" arg:"VKEY|FILE" help:"the database's verifier key (\"name+hash+base64\", as in GOSUMDB) or a file holding it, such as keys/NAME.vkey (required); repeat it or give a comma-separated list for several keys of the database (a key rotation): a head signed by any of them is accepted"`
	State       string   `flag:"state" arg:"DIR" help:"directory remembering each database's last verified head and audit progress between runs: with it, a fork or rollback since the last run is detected and -full audits only new records; several databases can share it"`
	Full        bool     `flag:"full" help:"also read every record (only those added since the last run with -state): check the records rebuild the signed tree, are two go.sum lines each and hold no module version twice"`
	Parallel    int      `flag:"parallel" help:"most requests in flight at once"`
	JSON        bool     `flag:"json" help:"print the report as one JSON object on stdout instead of a summary"`
	Gosum       string   `flag:"gosum" arg:"FILE" help:"go.sum file to check against the database; more go.sum files may follow the flags as arguments"`
	Recheck     string   `flag:"recheck" arg:"LIST" help:"GOPROXY-style list of module proxies to re-fetch every recorded version from (from -since on), re-hash as the go command does and compare"`
	RecheckAuth string   `flag:"recheck-auth" secret:"true" arg:"AUTH" help:"credentials for -recheck, as -upstream-auth of sumd serve: none, basic:USER:FILE, bearer:FILE, netrc[:FILE] or HOST=AUTH,..."`
	Since       int      `flag:"since" arg:"ID" help:"with -recheck, re-hash only records from this id on; an id past the signed tree's size names no record and stops the audit (exit status 2)"`
	ClientAuth
	ClientCert
	TUFTrust
	Sources
}

func defaultVerify() Verify { return Verify{Parallel: 8} }

// maxParallel bounds -parallel: beyond it a server sees a denial of
// service rather than an audit.
const maxParallel = 64

// LoadVerify is LoadServe for `sumd verify`.
func LoadVerify(args, env []string, w io.Writer) (*Verify, []string, error) {
	c := defaultVerify()
	rest, err := loadValidated(verifyCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of c, one per line.
func (c *Verify) Validate() error {
	errs := []error{c.TUFTrust.Validate(), c.ClientCert.Validate()}
	if c.URL == "" && c.TUFRoot == "" {
		errs = append(errs, errors.New("url is empty: set -url to the checksum database's base URL"))
	} else if c.URL != "" {
		errs = append(errs, checkURL(c.URL))
	}
	switch {
	case len(c.Key) == 0 && c.TUFRoot == "":
		errs = append(errs, errors.New("key is empty: set -key to the database's verifier key or its .vkey file"))
	case len(c.Key) > 0 && c.TUFRoot != "":
		errs = append(errs, errors.New("key and tuf-root both name the verifier key: give -key, or -tuf-root and -tuf-url"))
	}
	if c.Parallel < 1 || c.Parallel > maxParallel {
		errs = append(errs, fmt.Errorf("invalid parallel %d: want 1 to %d", c.Parallel, maxParallel))
	}
	return errors.Join(errs...)
}

// checkURL accepts an http or https URL with a host and no query or
// fragment; a path is fine (a proxy's /sumdb/<name>).
func checkURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("invalid url %q: %v", redactValue(s), errors.Unwrap(err)) // *url.Error quotes s whole
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("invalid url %q: want http:// or https:// and a host, e.g. https://sum.golang.org", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("invalid url %q: a base URL has no ?query or #fragment", u.Redacted())
	}
	return nil
}
