package config

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// OCI says where module versions published as signed OCI artifacts are
// synced from and whose cosign signatures are accepted (docs/oci.md).
// sumd sync and sumd serve share it.
type OCI struct {
	Registry       []string `flag:"registry" arg:"HOST[:PORT][/PREFIX]" help:"registry and repository prefix to sync signed module artifacts from; repeatable. A module's repository is PREFIX/<module path in lower case>; the registry's /v2/_catalog lists them unless -repository names them"`
	Repository     []string `flag:"repository" arg:"HOST[:PORT]/REPO" help:"repository to sync, under a -registry prefix; repeatable. A prefix with any is not listed through the catalog: use it for registries without /v2/_catalog"`
	CosignKey      []string `flag:"cosign-key" arg:"FILE" help:"cosign public key (cosign.pub, PEM) whose signatures are accepted, in cosign v2 (.sig tag) or v3 (Sigstore bundle) format; repeatable; required with -registry. HOST[:PORT][/PATH]=FILE accepts them only for the repositories at or under that path (docs/oci.md, Keys)"`
	SyncPassBudget int      `flag:"sync-pass-budget" arg:"MIB" help:"MiB of blobs (zips, go.mod files, signatures) one sync pass downloads at most: once they are spent, the pass stops with a warning, not a failure, and the next one starts at the artifact it stopped at (docs/oci.md, Limits)"`
}

// DefaultSyncPassBudget is sync-pass-budget's default,
// oci.DefaultMaxPassBytes in MiB.
const DefaultSyncPassBudget = 4096

// maxSyncPassBudget bounds sync-pass-budget: 1 PiB in MiB, far below
// where MiB in bytes overflows.
const maxSyncPassBudget = 1 << 30

func defaultOCI() OCI { return OCI{SyncPassBudget: DefaultSyncPassBudget} }

// MaxPassBytes is sync-pass-budget in bytes for oci.Options.MaxPassBytes:
// 0 (oci's default) for a value Validate refuses.
func (o OCI) MaxPassBytes() int64 {
	if o.SyncPassBudget <= 0 || o.SyncPassBudget > maxSyncPassBudget {
		return 0
	}
	return int64(o.SyncPassBudget) << 20
}

// ServeSync configures the periodic OCI sync of sumd serve.
type ServeSync struct {
	OCI
	SyncInterval time.Duration `flag:"sync-interval" help:"how often sumd serve syncs the -registry sources (once at start, then at this interval); 0: never. Without -registry it does nothing"`
}

// Sync configures `sumd sync`, one sync pass on the database file.
type Sync struct {
	Database
	DiskFloor
	Creating
	Log
	OCI
	SyncCrosscheck
}

// SyncCrosscheck is sumd serve's cross-check for sumd sync: the same
// options with the same meaning, so that a version sumd serve's sync would
// refuse is refused by sumd sync as well. The upstream proxies serve only
// to reach the checksum database: sync fetches no module from them.
type SyncCrosscheck struct {
	Upstream        string        `flag:"upstream" arg:"LIST" help:"with -crosscheck and no -crosscheck-url: GOPROXY-style list of module proxies whose /sumdb/<name>/ reaches the upstream checksum database, as for sumd serve (sync fetches no module from them)"`
	UpstreamAuth    string        `flag:"upstream-auth" secret:"true" arg:"AUTH" help:"upstream credentials, as for sumd serve: none, basic:USER:PASSWORD_FILE, bearer:TOKEN_FILE or netrc[:FILE]; or HOST=AUTH,HOST=AUTH"`
	UpstreamTimeout time.Duration `flag:"upstream-timeout" help:"time limit of one request to the upstream checksum database"`
	CrosscheckOptions
}

// OCIPush configures `sumd oci push`. It logs nothing: it has no Log,
// whose flags would do nothing.
type OCIPush struct {
	SignKey string `flag:"sign-key" secret:"true" arg:"FILE" help:"cosign private key (cosign.key from cosign generate-key-pair) to sign the artifact with, as cosign sign --key does; its password comes from $COSIGN_PASSWORD, as for cosign. Empty: push unsigned (sign later with cosign)"`
}

var (
	syncCommand = command{
		name:    "sync",
		summary: "Record the module versions published as cosign-signed OCI artifacts in the\n-registry sources: one pass on the database file (stop the server first, or\nlet sumd serve -sync-interval do it). With -crosscheck, public modules are\ncross-checked as sumd serve -crosscheck does: give sumd sync the same\noptions (or configuration file). Exit status 1 if a registry could not be\nread, a version is already recorded with other hashes, or the cross-check\nrefused one.",
		example: "sumd sync -registry registry.example.com/gomod -cosign-key cosign.pub -key keys/sum.example.com.key",
	}
	ociPushCommand = command{
		name:    "oci push",
		usage:   "sumd oci push [flags] MODULE@VERSION DIR|ZIP HOST[:PORT][/PREFIX]",
		summary: "Publish a module version as an OCI artifact at PREFIX/<module path>:<version>\nfor sumd sync, validated as sumd add validates, and sign it as cosign sign\n--key does.",
		example: "COSIGN_PASSWORD=... sumd oci push -sign-key cosign.key example.com/m@v1.2.3 ./m registry.example.com/gomod",
	}
)

// DefaultSyncInterval is how often sumd serve syncs when -registry is set.
const DefaultSyncInterval = 5 * time.Minute

func defaultServeSync() ServeSync {
	return ServeSync{OCI: defaultOCI(), SyncInterval: DefaultSyncInterval}
}

// LoadSync is LoadServe for `sumd sync`.
func LoadSync(args, env []string, w io.Writer) (*Sync, []string, error) {
	c := Sync{Database: defaultDatabase(), DiskFloor: defaultDiskFloor(), Log: defaultLog(), OCI: defaultOCI(), SyncCrosscheck: SyncCrosscheck{UpstreamTimeout: time.Minute}}
	rest, err := loadValidated(syncCommand, &c, args, env, w)
	return &c, rest, err
}

// LoadOCIPush is LoadServe for `sumd oci push`.
func LoadOCIPush(args, env []string, w io.Writer) (*OCIPush, []string, error) {
	var c OCIPush
	rest, err := loadValidated(ociPushCommand, &c, args, env, w)
	return &c, rest, err
}

// Validate reports every problem of o, one per line. The registry and
// repository syntax is checked when sync starts (oci.ParseSources); here,
// what needs no more than the configuration.
func (o *OCI) Validate() error {
	var errs []error
	if len(o.Registry) > 0 && len(o.CosignKey) == 0 {
		errs = append(errs, errors.New("registry is set but cosign-key is not: set -cosign-key to the cosign.pub whose signatures to accept"))
	}
	if len(o.Registry) == 0 && (len(o.Repository) > 0 || len(o.CosignKey) > 0) {
		errs = append(errs, errors.New("repository and cosign-key need registry: set -registry HOST[:PORT]/PREFIX"))
	}
	for _, r := range o.Registry {
		if strings.Contains(r, "://") {
			errs = append(errs, fmt.Errorf("invalid registry %q: want HOST[:PORT][/PREFIX] without a scheme", redactValue(r)))
		}
	}
	if o.SyncPassBudget <= 0 || o.SyncPassBudget > maxSyncPassBudget {
		errs = append(errs, fmt.Errorf("invalid sync-pass-budget %d: want MiB such as %d (at most %d)", o.SyncPassBudget, DefaultSyncPassBudget, maxSyncPassBudget))
	}
	return errors.Join(errs...)
}

// Validate reports every problem of c, one per line.
func (c *ServeSync) Validate() error {
	errs := []error{c.OCI.Validate()}
	if c.SyncInterval < 0 {
		errs = append(errs, fmt.Errorf("invalid sync-interval %v: want a duration such as 5m, or 0 for never", c.SyncInterval))
	}
	return errors.Join(errs...)
}

// Validate reports every problem of c, one per line.
func (c *Sync) Validate() error {
	errs := []error{c.Database.Validate(), c.DiskFloor.Validate(), c.Log.Validate(), c.OCI.Validate(), c.CrosscheckOptions.validate()}
	if len(c.Registry) == 0 {
		errs = append(errs, errors.New("registry is empty: set -registry HOST[:PORT]/PREFIX (and -cosign-key) to say what to sync"))
	}
	if c.Crosscheck && c.Upstream == "" && c.CrosscheckURL == "" {
		errs = append(errs, errors.New("crosscheck needs -crosscheck-url or -upstream: set the upstream checksum database's URL, or the module proxies that reach it (as for sumd serve)"))
	}
	if c.UpstreamTimeout <= 0 {
		errs = append(errs, fmt.Errorf("invalid upstream-timeout %v: want a positive duration such as 1m", c.UpstreamTimeout))
	}
	return errors.Join(errs...)
}

// Validate accepts anything: the key is read when the artifact is signed.
func (c *OCIPush) Validate() error { return nil }
