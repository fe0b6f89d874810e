package config

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// TUFRepo locates a TUF repository publishing a database's verifier keys,
// and the keys that sign it (see docs/keys.md).
type TUFRepo struct {
	Dir        string `flag:"dir" arg:"DIR" help:"TUF repository directory: metadata/ and targets/ are public (sumd serve -tuf DIR serves them under /tuf/); a config file that sets no dir gives sumd serve's tuf"`
	Keys       string `flag:"keys" arg:"DIR[,DIR...]" help:"directories of the offline root and targets keys: new keys are written to the first; list several to sign with keys kept on separate media"`
	OnlineKeys string `flag:"online-keys" arg:"DIR" help:"directory of the online snapshot and timestamp keys, which sumd serve -tuf signs with; default: the config file's tuf-online-keys (sumd serve's), else DIR/keys"`
}

// TUFPublished says what is published about the database.
type TUFPublished struct {
	VKey string `flag:"vkey" arg:"VKEY[,VKEY]|FILE" help:"verifier keys to publish, oldest first, or a file of them one per line, instead of the signing keys of the log in -db (for a machine without the database)"`
	URL  string `flag:"url" arg:"URL" help:"URL clients reach the database at, published with the keys and in the GOSUMDB value derived from them; empty: none (clients find it through GOPROXY), or for tuf publish the URL published before"`
}

// TUFInit configures `sumd tuf init`.
type TUFInit struct {
	Database
	Log
	TUFRepo
	TUFPublished
	RootKeys         int           `flag:"root-keys" help:"number of root keys to generate"`
	RootThreshold    int           `flag:"root-threshold" help:"root keys that must sign a new root; keep the keys on separate media when above 1"`
	TargetsKeys      int           `flag:"targets-keys" help:"number of targets keys to generate"`
	TargetsThreshold int           `flag:"targets-threshold" help:"targets keys that must sign the published keys"`
	RootExpiry       time.Duration `flag:"root-expiry" help:"lifetime of a root version; renew it with sumd tuf rotate-root"`
	TargetsExpiry    time.Duration `flag:"targets-expiry" help:"lifetime of the published keys; renew them with sumd tuf publish"`
}

// TUFPublish configures `sumd tuf publish`.
type TUFPublish struct {
	Database
	Log
	TUFRepo
	TUFPublished
	TargetsExpiry time.Duration `flag:"targets-expiry" help:"lifetime of the published keys; renew them with sumd tuf publish"`
}

// TUFRotateRoot configures `sumd tuf rotate-root`. It logs nothing: it
// has no Log, whose flags would do nothing.
type TUFRotateRoot struct {
	TUFRepo
	NewRootKey       string        `flag:"new-root-key" secret:"true" arg:"FILE[,FILE...]" help:"new root key files replacing the root keys (generated where missing), never in the online keys' directory (-online-keys), where the server signs; empty: keep the root keys"`
	RootThreshold    int           `flag:"root-threshold" help:"new root threshold; 0: keep it"`
	NewTargetsKey    string        `flag:"new-targets-key" secret:"true" arg:"FILE[,FILE...]" help:"new targets key files replacing the targets keys (generated where missing), never in the online keys' directory; the published keys are re-signed with them"`
	TargetsThreshold int           `flag:"targets-threshold" help:"new targets threshold; 0: keep it"`
	RotateOnline     bool          `flag:"rotate-online" help:"replace the online snapshot and timestamp keys with new ones written to -online-keys (after a leak)"`
	RootExpiry       time.Duration `flag:"root-expiry" help:"lifetime of a root version; renew it with sumd tuf rotate-root"`
	TargetsExpiry    time.Duration `flag:"targets-expiry" help:"lifetime of the published keys; renew them with sumd tuf publish"`
}

// TUFStatus configures `sumd tuf status`.
type TUFStatus struct {
	Dir string `flag:"dir" arg:"DIR" help:"TUF repository directory: metadata/ and targets/ are public (sumd serve -tuf DIR serves them under /tuf/); a config file that sets no dir gives sumd serve's tuf"`
	// OnlineKeys is checked for root and targets keys, which do not
	// belong where the server signs.
	OnlineKeys string `flag:"online-keys" arg:"DIR" help:"directory of the online snapshot and timestamp keys, where sumd serve -tuf signs (its -tuf-online-keys), checked for root and targets keys, which belong offline; default: the config file's tuf-online-keys (sumd serve's), else DIR/keys"`
}

// TUFTrust is how a client learns a database's keys through TUF.
type TUFTrust struct {
	TUFRoot string `flag:"tuf-root" arg:"FILE" help:"trusted TUF root metadata of the database's repository (its N.root.json, pinned once); with -tuf-url, learn the verifier keys and URL from it"`
	TUFURL  string `flag:"tuf-url" arg:"URL" help:"base URL of the TUF repository, e.g. https://sum.example.com/tuf"`
}

// TUFGosumdb configures `sumd tuf gosumdb`.
type TUFGosumdb struct {
	TUFTrust
	ClientAuth
	ClientCert
	Cache string `flag:"cache" arg:"DIR" help:"directory keeping the verified TUF metadata between runs, a subdirectory per pinned root and URL, which detects rollbacks; empty: none"`
}

// TUFServe configures the TUF repository sumd serve serves and re-signs.
type TUFServe struct {
	TUF           string `flag:"tuf" arg:"DIR" help:"TUF repository (created by sumd tuf init) to serve under /tuf/ and keep re-signed with its online keys; empty: none"`
	TUFOnlineKeys string `flag:"tuf-online-keys" arg:"DIR" help:"directory of the repository's snapshot and timestamp keys; default <tuf>/keys"`
}

// Defaults of the TUF options.
const (
	defaultTUFDir        = "data/tuf"
	defaultTUFKeys       = "keys/tuf"
	defaultOfflineExpiry = 365 * 24 * time.Hour
	maxTUFKeys           = 16
	minOfflineExpiry     = 24 * time.Hour
)

func defaultTUFRepo() TUFRepo { return TUFRepo{Dir: defaultTUFDir, Keys: defaultTUFKeys} }

// LoadTUFInit is LoadServe for `sumd tuf init`.
func LoadTUFInit(args, env []string, w io.Writer) (*TUFInit, []string, error) {
	c := TUFInit{Database: defaultDatabase(), Log: defaultLog(), TUFRepo: defaultTUFRepo(),
		RootKeys: 1, RootThreshold: 1, TargetsKeys: 1, TargetsThreshold: 1,
		RootExpiry: defaultOfflineExpiry, TargetsExpiry: defaultOfflineExpiry}
	rest, err := loadValidated(tufInitCommand, &c, args, env, w)
	return &c, rest, err
}

// LoadTUFPublish is LoadServe for `sumd tuf publish`.
func LoadTUFPublish(args, env []string, w io.Writer) (*TUFPublish, []string, error) {
	c := TUFPublish{Database: defaultDatabase(), Log: defaultLog(), TUFRepo: defaultTUFRepo(), TargetsExpiry: defaultOfflineExpiry}
	rest, err := loadValidated(tufPublishCommand, &c, args, env, w)
	return &c, rest, err
}

// LoadTUFRotateRoot is LoadServe for `sumd tuf rotate-root`.
func LoadTUFRotateRoot(args, env []string, w io.Writer) (*TUFRotateRoot, []string, error) {
	c := TUFRotateRoot{TUFRepo: defaultTUFRepo(), RootExpiry: defaultOfflineExpiry, TargetsExpiry: defaultOfflineExpiry}
	rest, err := loadValidated(tufRotateRootCommand, &c, args, env, w)
	return &c, rest, err
}

// LoadTUFStatus is LoadServe for `sumd tuf status`.
func LoadTUFStatus(args, env []string, w io.Writer) (*TUFStatus, []string, error) {
	c := TUFStatus{Dir: defaultTUFDir}
	rest, err := loadValidated(tufStatusCommand, &c, args, env, w)
	return &c, rest, err
}

// LoadTUFGosumdb is LoadServe for `sumd tuf gosumdb`.
func LoadTUFGosumdb(args, env []string, w io.Writer) (*TUFGosumdb, []string, error) {
	var c TUFGosumdb
	rest, err := loadValidated(tufGosumdbCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of r, one per line.
func (r *TUFRepo) Validate() error {
	var errs []error
	if r.Dir == "" {
		errs = append(errs, errors.New("dir is empty: set -dir to the TUF repository directory"))
	}
	if r.Keys == "" {
		errs = append(errs, errors.New("keys is empty: set -keys to the directory of the offline root and targets keys"))
	}
	return errors.Join(errs...)
}

// Validate reports every problem of p, one per line.
func (p *TUFPublished) Validate() error {
	if p.URL == "" {
		return nil
	}
	return checkURL(p.URL)
}

// Validate reports every problem of c, one per line.
func (c *TUFInit) Validate() error {
	return errors.Join(c.Database.Validate(), c.Log.Validate(), c.TUFRepo.Validate(), c.TUFPublished.Validate(),
		checkThreshold("root", c.RootKeys, c.RootThreshold), checkThreshold("targets", c.TargetsKeys, c.TargetsThreshold),
		checkExpiry("root-expiry", c.RootExpiry), checkExpiry("targets-expiry", c.TargetsExpiry))
}

// Validate reports every problem of c, one per line.
func (c *TUFPublish) Validate() error {
	return errors.Join(c.Database.Validate(), c.Log.Validate(), c.TUFRepo.Validate(), c.TUFPublished.Validate(),
		checkExpiry("targets-expiry", c.TargetsExpiry))
}

// Validate reports every problem of c, one per line.
func (c *TUFRotateRoot) Validate() error {
	var errs []error
	if c.RootThreshold < 0 || c.RootThreshold > maxTUFKeys || c.TargetsThreshold < 0 || c.TargetsThreshold > maxTUFKeys {
		errs = append(errs, fmt.Errorf("invalid threshold: want 0 (keep) to %d", maxTUFKeys))
	}
	return errors.Join(append(errs, c.TUFRepo.Validate(),
		checkExpiry("root-expiry", c.RootExpiry), checkExpiry("targets-expiry", c.TargetsExpiry))...)
}

// Validate reports every problem of c, one per line.
func (c *TUFStatus) Validate() error {
	if c.Dir == "" {
		return errors.New("dir is empty: set -dir to the TUF repository directory")
	}
	return nil
}

// Validate reports every problem of c, one per line.
func (c *TUFGosumdb) Validate() error {
	if c.TUFRoot == "" {
		return errors.New("tuf-root is empty: set -tuf-root to the pinned root.json and -tuf-url to the repository")
	}
	return errors.Join(c.TUFTrust.Validate(), c.ClientCert.Validate())
}

// Validate reports every problem of t, one per line: the two options go
// together.
func (t *TUFTrust) Validate() error {
	switch {
	case t.TUFRoot == "" && t.TUFURL == "":
		return nil
	case t.TUFRoot == "":
		return errors.New("tuf-url needs -tuf-root, the pinned root.json of the repository")
	case t.TUFURL == "":
		return errors.New("tuf-root needs -tuf-url, the base URL of the repository (e.g. https://sum.example.com/tuf)")
	}
	return checkURL(t.TUFURL)
}

// Validate reports every problem of s, one per line.
func (s *TUFServe) Validate() error {
	if s.TUFOnlineKeys != "" && s.TUF == "" {
		return errors.New("tuf-online-keys needs -tuf, the TUF repository to serve")
	}
	return nil
}

func checkThreshold(role string, keys, threshold int) error {
	if keys < 1 || keys > maxTUFKeys || threshold < 1 || threshold > keys {
		return fmt.Errorf("invalid %s threshold %d of %d keys: want 1 ≤ %s-threshold ≤ %s-keys ≤ %d", role, threshold, keys, role, role, maxTUFKeys)
	}
	return nil
}

func checkExpiry(name string, d time.Duration) error {
	if d < minOfflineExpiry {
		return fmt.Errorf("invalid %s %v: want at least %v (renewing needs the offline keys)", name, d, minOfflineExpiry)
	}
	return nil
}
