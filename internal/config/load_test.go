package config

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeFile writes a YAML file into a temporary directory and returns its path.
func writeFile(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sumd.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o666); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "listen: 127.0.0.1:1001\nshutdown-timeout: 1s\n")
	cfg := "SUMD_CONFIG=" + file
	tests := []struct {
		name    string
		args    []string
		env     []string
		listen  string
		timeout time.Duration
	}{
		{"default", nil, nil, "127.0.0.1:8080", 10 * time.Second},
		{"file", nil, []string{cfg}, "127.0.0.1:1001", time.Second},
		{"env over file", nil, []string{cfg, "SUMD_LISTEN=127.0.0.1:1002", "SUMD_SHUTDOWN_TIMEOUT=2s"}, "127.0.0.1:1002", 2 * time.Second},
		{"flag over env", []string{"-listen", "127.0.0.1:1003", "-shutdown-timeout=3s"}, []string{cfg, "SUMD_LISTEN=127.0.0.1:1002", "SUMD_SHUTDOWN_TIMEOUT=2s"}, "127.0.0.1:1003", 3 * time.Second},
		{"flag over file", []string{"-config", file, "-listen", "127.0.0.1:1003"}, nil, "127.0.0.1:1003", time.Second},
		{"flag over default", []string{"-listen", "127.0.0.1:1003"}, nil, "127.0.0.1:1003", 10 * time.Second},
		{"empty env is unset", nil, []string{cfg, "SUMD_LISTEN="}, "127.0.0.1:1001", time.Second},
		{"first of repeated env", nil, []string{"SUMD_LISTEN=127.0.0.1:1002", "SUMD_LISTEN=127.0.0.1:1009"}, "127.0.0.1:1002", 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := LoadServe(tt.args, tt.env, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.Listen != tt.listen || c.ShutdownTimeout != tt.timeout {
				t.Errorf("listen %q, shutdown-timeout %v; want %q, %v", c.Listen, c.ShutdownTimeout, tt.listen, tt.timeout)
			}
		})
	}
}

func TestConfigFlagOverEnv(t *testing.T) {
	env := []string{"SUMD_CONFIG=" + writeFile(t, "max-batch: 1\n")}
	c, _, err := LoadServe([]string{"-config", writeFile(t, "max-batch: 2\n")}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxBatch != 2 {
		t.Errorf("max-batch %d, want 2 from the file named by -config", c.MaxBatch)
	}
}

func TestExampleFile(t *testing.T) {
	c, rest, err := LoadServe([]string{"-config", "testdata/sumd.yaml", "extra"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Serve{
		Database:        Database{DB: "/var/lib/sumd/sumd.db", Key: "/etc/sumd/sum.example.com.key", Name: "sum.example.com"},
		DiskFloor:       DiskFloor{256},
		Log:             Log{Level: "info", Format: "json"},
		Listen:          ":8080",
		ShutdownTimeout: 30 * time.Second,
		MaxConnections:  20000,
		MaxBatch:        512,
		Cache:           128,
		Verify:          VerifyFull,
		RefreshInterval: time.Second,
		MaxHeadAge:      5 * time.Second,
		Upstream: Upstream{
			Upstream:          "https://athens.corp.example|file:///srv/goproxy",
			UpstreamAuth:      "athens.corp.example=bearer:/etc/sumd/athens.token",
			UpstreamTimeout:   30 * time.Second,
			UpstreamParallel:  32,
			UpstreamPerClient: 8,
			Record:            "corp.example/*,golang.org/toolchain",
			NegativeTTL:       time.Minute,
			CrosscheckOptions: CrosscheckOptions{Private: "corp.example/*"},
		},
		AdminTokenFile: "/etc/sumd/admin.token",
		Access: Access{ReadAuth: ReadAuthBasic, ReadAuthFile: "/etc/sumd/htpasswd", TLSClientAuth: ClientAuthRequire,
			AdminListen: "127.0.0.1:8081", MetricsListen: "127.0.0.1:9090"},
		ServeSync: ServeSync{
			OCI: OCI{
				Registry:       []string{"registry.corp.example/gomod", "registry.corp.example/team"},
				CosignKey:      []string{"/etc/sumd/cosign.pub"},
				SyncPassBudget: 2048,
			},
			SyncInterval: 10 * time.Minute,
		},
		ServeMirrors: ServeMirrors{MirrorInterval: time.Minute},
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got  %+v\nwant %+v", *c, want)
	}
	if !reflect.DeepEqual(rest, []string{"extra"}) {
		t.Errorf("remaining args %q, want [extra]", rest)
	}

	// sumd add reads the same file, ignoring what only serve uses.
	a, _, err := LoadAdd([]string{"-gosum", "go.sum"}, []string{"SUMD_CONFIG=testdata/sumd.yaml"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a.Database != want.Database || a.DiskFloor != want.DiskFloor || a.Log != want.Log || a.Gosum != "go.sum" {
		t.Errorf("add: got %+v", *a)
	}
}

func TestDerivedKey(t *testing.T) {
	c, _, err := LoadServe([]string{"-name", "corp.example/sumdb"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Key != filepath.Join("keys", "corp.example_sumdb.key") {
		t.Errorf("key %q, want keys/corp.example_sumdb.key", c.Key)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown key", []string{"-config", writeFile(t, "db: x.db\nlistn: :80\n")}, nil, `unknown key "listn"`},
		{"snake case key", []string{"-config", writeFile(t, "max_batch: 5\n")}, nil, `unknown key "max_batch" (did you mean "max-batch"?)`},
		{"nested key", []string{"-config", writeFile(t, "log:\n  level: info\n")}, nil, `unknown key "log.level"`},
		{"config key in file", []string{"-config", writeFile(t, "config: other.yaml\n")}, nil, `unknown key "config"`},
		{"list value", []string{"-config", writeFile(t, "db: [a, b]\n")}, nil, "db: want a single value, not a list or map"},
		{"bare number duration", []string{"-config", writeFile(t, "shutdown-timeout: 10\n")}, nil, `shutdown-timeout: invalid value "10": want a duration such as "10s"`},
		{"bad yaml", []string{"-config", writeFile(t, "db: [\n")}, nil, "failed to load config file"},
		{"missing -config file", []string{"-config", "nope.yaml"}, nil, "failed to load config file nope.yaml: open nope.yaml"},
		{"missing SUMD_CONFIG file", nil, []string{"SUMD_CONFIG=nope.yaml"}, "failed to load config file nope.yaml"},
		{"bad env int", nil, []string{"SUMD_MAX_BATCH=lots"}, `environment variable SUMD_MAX_BATCH: invalid value "lots": want an integer`},
		{"bad env duration", nil, []string{"SUMD_SHUTDOWN_TIMEOUT=10"}, "environment variable SUMD_SHUTDOWN_TIMEOUT"},
		{"unknown flag", []string{"-bogus"}, nil, "flag provided but not defined: -bogus"},
		{"bad flag value", []string{"-max-batch", "x"}, nil, `invalid value "x" for flag -max-batch`},
		{"validated", nil, []string{"SUMD_VERIFY=quick"}, `invalid verify mode "quick"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			c, _, err := LoadServe(tt.args, tt.env, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadServe() = %+v, %v; want error containing %q", c, err, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("LoadServe printed %q; errors must be returned, not printed", out.String())
			}
		})
	}
}

// TestUnknownEnvWarned checks that a SUMD_* variable no subcommand knows
// gets a warning (with a suggestion when it looks like a typo) and is
// otherwise ignored, and that another subcommand's variable (SUMD_GOSUM,
// for serve) gets none.
func TestUnknownEnvWarned(t *testing.T) {
	var out strings.Builder
	env := []string{"SUMD_BOGUS=1", "SUMD_LISTN=:1", "SUMD_GOSUM=x", "SUMD_CONFIG=", "PATH=/bin"}
	if _, _, err := LoadServe(nil, env, &out); err != nil {
		t.Errorf("LoadServe() = %v, want unknown SUMD_ variables ignored", err)
	}
	want := "sumd: warning: ignoring environment variable SUMD_BOGUS: no sumd option has that name\n" +
		"sumd: warning: ignoring environment variable SUMD_LISTN: no sumd option has that name; did you mean SUMD_LISTEN?\n"
	if out.String() != want {
		t.Errorf("LoadServe printed\n%s\nwant\n%s", out.String(), want)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-help"}, {"-db", "x", "-h"}} {
		var out strings.Builder
		_, _, err := LoadServe(args, nil, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("LoadServe(%q) = %v, want flag.ErrHelp", args, err)
		}
		usage := out.String()
		for _, want := range []string{
			"Usage: sumd serve [flags]",
			"-config FILE (env SUMD_CONFIG)",
			`-db FILE|URL (env SUMD_DB; default "data/sumd.db")`,
			"-shutdown-timeout DURATION (env SUMD_SHUTDOWN_TIMEOUT; default 10s)",
			"-max-batch N (env SUMD_MAX_BATCH; default 1024)",
			"Example:\n  sumd serve ",
		} {
			if !strings.Contains(usage, want) {
				t.Errorf("usage lacks %q:\n%s", want, usage)
			}
		}
	}
	var out strings.Builder
	if _, _, err := LoadAdd([]string{"-h"}, nil, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-gosum FILE|DIR (env SUMD_GOSUM)") {
		t.Errorf("LoadAdd(-h) = %v, usage:\n%s", err, out.String())
	}
}

func TestFileKeys(t *testing.T) {
	want := "db key name min-free-disk create log-level log-format listen tls-cert tls-key public-url shutdown-timeout max-connections max-batch cache-size verify refresh-interval max-head-age upstream upstream-auth upstream-timeout upstream-parallel upstream-per-client record negative-ttl private crosscheck crosscheck-key crosscheck-url crosscheck-fail-open crosscheck-state tmp-dir admin-token-file read-auth read-auth-file tls-client-ca tls-client-auth tls-client-roles admin-listen metrics-listen read-listen allowed-hosts tuf tuf-online-keys registry repository cosign-key sync-pass-budget sync-interval gosum proxy-dir strict server token-file insecure-http auth client-cert client-key url state full parallel json recheck recheck-auth since tuf-root tuf-url new-key retire dir keys online-keys vkey root-keys root-threshold targets-keys targets-threshold root-expiry targets-expiry new-root-key new-targets-key rotate-online cache sign-key timeout key-dir from to"
	want = strings.Replace(want, "sync-interval gosum", "sync-interval mirror mirror-interval mirror-only gosum", 1) +
		" origin-key origin modules step o"
	if got := strings.Join(fileKeys(), " "); got != want {
		t.Errorf("fileKeys() = %s\nwant        %s", got, want)
	}
}

func TestUsageLinesFit(t *testing.T) {
	var out strings.Builder
	LoadServe([]string{"-h"}, nil, &out)
	for line := range strings.Lines(out.String()) {
		if len(line) > 81 {
			t.Errorf("usage line longer than 80 columns: %q", line)
		}
	}
}

func ExampleLoadServe() {
	env := []string{"SUMD_CONFIG=testdata/sumd.yaml", "SUMD_LOG_LEVEL=debug"}
	c, _, err := LoadServe([]string{"-listen", "127.0.0.1:9000"}, env, os.Stderr)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Name, c.Listen, c.Level, c.ShutdownTimeout)
	// Output: sum.example.com 127.0.0.1:9000 debug 30s
}

// TestMinimalExampleFile loads the minimal example configuration: every
// key in it is known and valid, and it sets what it says it sets.
func TestMinimalExampleFile(t *testing.T) {
	c, _, err := LoadServe([]string{"-config", "testdata/minimal.yaml"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DB != "/var/lib/sumd/sumd.db" || c.Key != "/etc/sumd/sum.example.com.key" || c.Listen != ":8080" || c.Upstream.Upstream != "https://athens.corp.example" {
		t.Errorf("minimal.yaml loads as db %q, key %q, listen %q, upstream %q", c.DB, c.Key, c.Listen, c.Upstream.Upstream)
	}
}

// TestConfigFileCap: a config file over 1 MiB is refused before parsing.
func TestConfigFileCap(t *testing.T) {
	big := writeFile(t, "# "+strings.Repeat("x", maxConfigFile)+"\n")
	_, _, err := LoadServe([]string{"-config", big}, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Errorf("LoadServe with a 1 MiB config file: %v", err)
	}
}

// TestCreateOnlyWhereItCreates checks that -create, and create: in a shared
// config file, mean something to the commands that may start a new log and
// that the others refuse the flag instead of ignoring it (restore always
// builds the database it names; key and tuf work on an existing one).
func TestCreateOnlyWhereItCreates(t *testing.T) {
	file := writeFile(t, "create: true\nfrom: m.db\n")
	creates := map[string]func(args []string) (bool, error){
		"serve": func(a []string) (bool, error) { c, _, err := LoadServe(a, nil, nil); return c.Create, err },
		"add":   func(a []string) (bool, error) { c, _, err := LoadAdd(a, nil, nil); return c.Create, err },
		"sync": func(a []string) (bool, error) {
			c, _, err := LoadSync(append(a, "-registry", "r.example/p", "-cosign-key", "k.pub"), nil, nil)
			return c.Create, err
		},
	}
	for name, load := range creates {
		for _, args := range [][]string{{"-create"}, {"-config", file}} {
			if create, err := load(args); err != nil || !create {
				t.Errorf("%s %q: create %v, %v; want true", name, args, create, err)
			}
		}
	}
	others := map[string]func(args []string) error{
		"restore":     func(a []string) error { _, _, err := LoadRestore(append(a, "-from", "m.db"), nil, nil); return err },
		"key rotate":  func(a []string) error { _, _, err := LoadKeyRotate(a, nil, nil); return err },
		"key retire":  func(a []string) error { _, _, err := LoadKeyRetire(a, nil, nil); return err },
		"tuf init":    func(a []string) error { _, _, err := LoadTUFInit(a, nil, nil); return err },
		"tuf publish": func(a []string) error { _, _, err := LoadTUFPublish(a, nil, nil); return err },
	}
	for name, load := range others {
		if err := load([]string{"-create"}); err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -create") {
			t.Errorf("%s -create: %v; want the flag refused", name, err)
		}
		if err := load([]string{"-config", file}); err != nil && strings.Contains(err.Error(), "create") {
			t.Errorf("%s with create: in the config file: %v; another command's key must be ignored", name, err)
		}
	}
}

// TestBadValueEveryLayer checks that a bad value gets the same helpful
// message whether a flag, a variable or the file gives it, and not the
// flag package's bare "parse error".
func TestBadValueEveryLayer(t *testing.T) {
	tests := []struct {
		key, value, want string
		load             func(args, env []string) error
	}{
		{"shutdown-timeout", "10", `want a duration such as "10s" or "1m30s"`, loadServeEnv},
		{"cache-size", "1G", "want a whole number of MiB", loadServeEnv},
		{"create", "yes", "want true or false", loadServeEnv},
		{"max-batch", "lots", "want an integer", loadServeEnv},
		{"root-expiry", "365d", `"8760h" for 365d`, func(args, env []string) error { _, _, err := LoadTUFInit(args, env, io.Discard); return err }},
	}
	for _, tt := range tests {
		layers := map[string]struct{ args, env []string }{
			"flag": {args: []string{"-" + tt.key + "=" + tt.value}},
			"env":  {env: []string{envName(tt.key) + "=" + tt.value}},
			"file": {args: []string{"-config", writeFile(t, tt.key+": "+tt.value+"\n")}},
		}
		for layer, in := range layers {
			err := tt.load(in.args, in.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"`+tt.value+`"`) || strings.Contains(err.Error(), "parse error") {
				t.Errorf("%s %s=%s: %v; want an error quoting the value and saying %q", layer, tt.key, tt.value, err, tt.want)
			}
		}
	}
}

func loadServeEnv(args, env []string) error {
	_, _, err := LoadServe(args, env, io.Discard)
	return err
}

// TestRepeatedFlag checks that a single-value flag given twice is refused
// rather than the last one silently kept, saying so where the option takes
// a comma-separated list, and that a list flag may still be repeated.
func TestRepeatedFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-mirror", "a.db", "-mirror", "b.db"}, `-mirror given twice ("a.db", then "b.db"): it takes one comma-separated list, such as -mirror a,b`},
		{[]string{"-key", "old.key", "-key=new.key"}, `-key given twice ("old.key", then "new.key"): it takes one comma-separated list`},
		{[]string{"-listen", ":1", "-listen", ":2"}, `-listen given twice (":1", then ":2"): it takes one value`},
		{[]string{"-create", "-create"}, "-create given twice"},
	} {
		if err := loadServeEnv(tt.args, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serve %q: %v; want an error containing %q", tt.args, err, tt.want)
		}
	}
	c, _, err := LoadServe([]string{"-registry", "r1/p", "-registry", "r2/p", "-cosign-key", "k.pub"}, []string{"SUMD_LISTEN=:1"}, io.Discard)
	if err != nil || len(c.Registry) != 2 {
		t.Errorf("repeated -registry, a list: %v, %v", c, err)
	}
	// Once each, over the same option from another layer, is no repeat.
	if _, _, err := LoadServe([]string{"-listen", ":2"}, []string{"SUMD_LISTEN=:1", "SUMD_CONFIG=" + writeFile(t, "listen: :3\n")}, io.Discard); err != nil {
		t.Errorf("-listen over SUMD_LISTEN and the file: %v", err)
	}
}

// TestExclusiveFlagWins checks that of two options a command takes only
// one of, the one given as a flag wins over the other's value from the
// environment or the file (SUMD_DB, which the Dockerfile sets, against
// sumd backup -server), and that two from lower layers are refused with
// the layer of each and how to clear it.
func TestExclusiveFlagWins(t *testing.T) {
	file := writeFile(t, "server: https://file.example\n")
	b, _, err := LoadBackup([]string{"-server", "https://sum.example", "-o", "b.db"}, []string{"SUMD_DB=/data/sumd.db"}, io.Discard)
	if err != nil || b.DB != "" || b.Server != "https://sum.example" {
		t.Errorf("backup -server under SUMD_DB: %+v, %v; want the flag's server alone", b, err)
	}
	b, _, err = LoadBackup([]string{"-db", "x.db", "-o", "b.db"}, []string{"SUMD_CONFIG=" + file}, io.Discard)
	if err != nil || b.Server != "" || b.DB != "x.db" {
		t.Errorf("backup -db under server: in the file: %+v, %v; want the flag's db alone", b, err)
	}
	_, _, err = LoadBackup([]string{"-o", "b.db"}, []string{"SUMD_DB=/data/sumd.db", "SUMD_CONFIG=" + file}, io.Discard)
	for _, want := range []string{"server and db both name what to copy", "server is set by the config file " + file, "db by SUMD_DB", "pass its flag empty (-server= or -db=)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("backup with db and server from lower layers: %v; want %q", err, want)
		}
	}
	if _, _, err := LoadBackup([]string{"-server", "https://a.example", "-db", "x.db", "-o", "b.db"}, nil, io.Discard); err == nil {
		t.Error("backup -server -db: no error")
	}
	v, _, err := LoadVerify([]string{"-tuf-root", "1.root.json", "-tuf-url", "https://sum.example/tuf"}, []string{"SUMD_KEY=keys/sum.example.key"}, io.Discard)
	if err != nil || len(v.Key) != 0 {
		t.Errorf("verify -tuf-root under SUMD_KEY: %+v, %v", v, err)
	}
	v, _, err = LoadVerify([]string{"-key", "sum.example.vkey", "-url", "https://sum.example"}, []string{"SUMD_TUF_ROOT=1.root.json", "SUMD_TUF_URL=https://sum.example/tuf"}, io.Discard)
	if err != nil || v.TUFRoot != "" || v.TUFURL != "" {
		t.Errorf("verify -key under SUMD_TUF_ROOT and SUMD_TUF_URL: %+v, %v", v, err)
	}
	k, _, err := LoadKeyRetire([]string{"-retire", "old.vkey"}, []string{"SUMD_NEW_KEY=next.key"}, io.Discard)
	if err != nil || k.NewKey != "" {
		t.Errorf("key retire -retire under SUMD_NEW_KEY: %+v, %v", k, err)
	}
	a, _, err := LoadAdd([]string{"-server", "https://sum.example", "-token-file", "t"}, []string{"SUMD_AUTH=bearer:tok"}, io.Discard)
	if err != nil || a.Auth != "" {
		t.Errorf("add -token-file under SUMD_AUTH: %+v, %v", a, err)
	}
}

// TestFileSourceText checks that a file's values are read as the operator
// wrote them, not as YAML would coerce them: 1.10 stays 1.10 (not 1.1),
// 0123 stays 0123 (not 83), and a bad value is quoted as written.
func TestFileSourceText(t *testing.T) {
	file := writeFile(t, "name: 1.10\ndb: 0123\ntmp-dir: 0x1F\nregistry: [0123, 1.50]\ncosign-key: k.pub\nkey: ~\nmax-batch: 0017\n")
	c, _, err := LoadServe([]string{"-config", file}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "1.10" || c.DB != "0123" || c.TmpDir != "0x1F" || !reflect.DeepEqual(c.Registry, []string{"0123", "1.50"}) {
		t.Errorf("name %q, db %q, tmp-dir %q, registry %q; want 1.10, 0123, 0x1F, [0123 1.50]", c.Name, c.DB, c.TmpDir, c.Registry)
	}
	if c.Key != DefaultKeyFile("1.10") {
		t.Errorf("key: ~ gave %q, want unset (the default)", c.Key)
	}
	if c.MaxBatch != 17 {
		t.Errorf("max-batch: 0017 gave %d, want 17", c.MaxBatch)
	}
	_, _, err = LoadServe([]string{"-config", writeFile(t, "sync-interval: 1e3\n")}, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `invalid value "1e3"`) {
		t.Errorf("sync-interval: 1e3: %v; want the value quoted as written", err)
	}
}

// TestOneMeaningPerName checks the options whose name meant different
// things to different commands: keygen's key directory is key-dir (-dir
// still accepted on its command line), so a TUF repository's dir from the
// shared file or SUMD_DIR does not receive the private key; and sumd
// mirror, which takes one mirror database, refuses serve's comma list.
func TestOneMeaningPerName(t *testing.T) {
	file := writeFile(t, "dir: data/tuf\nname: sum.example.com\n")
	for _, env := range [][]string{{"SUMD_DIR=data/tuf", "SUMD_NAME=sum.example.com"}, {"SUMD_CONFIG=" + file}} {
		c, _, err := LoadKeygen(nil, env, io.Discard)
		if err != nil || c.KeyDir != "keys" {
			t.Errorf("keygen under %q: %+v, %v; want key-dir keys", env, c, err)
		}
	}
	for _, in := range []struct{ args, env []string }{
		{args: []string{"-name", "n.example", "-dir", "k"}},
		{args: []string{"-name", "n.example", "-key-dir", "k"}},
		{env: []string{"SUMD_NAME=n.example", "SUMD_KEY_DIR=k"}},
		{args: []string{"-config", writeFile(t, "key-dir: k\nname: n.example\n")}},
	} {
		c, _, err := LoadKeygen(in.args, in.env, io.Discard)
		if err != nil || c.KeyDir != "k" {
			t.Errorf("keygen %q %q: %+v, %v; want key-dir k", in.args, in.env, c, err)
		}
	}
	for _, args := range [][]string{{"-mirror", "m1.db,m2.db"}, {"-config", writeFile(t, "mirror: m1.db,m2.db\n")}} {
		_, _, err := LoadMirror(args, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `mirror "m1.db,m2.db" holds a comma`) {
			t.Errorf("mirror %q: %v; want the comma refused", args, err)
		}
	}
}

// TestUsageOwnExample checks that every command's -h explains the layers
// with an option of its own, not serve's, and that an unknown key of the
// file gets a suggestion rather than every known key on one line.
func TestUsageOwnExample(t *testing.T) {
	var out strings.Builder
	LoadKeygen([]string{"-h"}, nil, &out)
	if s := out.String(); strings.Contains(s, "max-batch") || strings.Contains(s, "admin-token-file") || !strings.Contains(s, "SUMD_KEY_DIR=keys") {
		t.Errorf("keygen -h explains the layers with another command's options:\n%s", s)
	}
	out.Reset()
	LoadStatus([]string{"-h"}, nil, &out)
	if s := out.String(); strings.Contains(s, "-timeout=") || !strings.Contains(s, "-url=") {
		t.Errorf("status -h: a duration is not cleared by an empty flag; want a string option's:\n%s", s)
	}
	_, _, err := LoadServe([]string{"-config", writeFile(t, "listn: :80\n")}, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown key "listn" (did you mean "listen"?)`) || len(err.Error()) > 300 {
		t.Errorf("unknown key: %v; want a short error with a suggestion", err)
	}
}

// TestFlagAfterArguments: a flag of the command given after the
// arguments, which the flag package takes for an argument, is named with
// the rule that flags go first (sumd add said "got 4 arguments", and sumd
// add -gosum took -key for a go.sum file); an argument after "--" is left
// alone.
func TestFlagAfterArguments(t *testing.T) {
	for _, args := range [][]string{
		{"example.com/m@v1.2.4", "./m", "-key", "K"},
		{"-gosum", "go.sum", "extra.sum", "--key=K"},
	} {
		_, _, err := LoadAdd(args, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "flags go before the arguments") || !strings.Contains(err.Error(), "key") {
			t.Errorf("sumd add %q: %v, want the flag after the arguments named", args, err)
		}
	}
	if _, rest, err := LoadAdd([]string{"--", "example.com/m@v1.2.4", "-key"}, nil, io.Discard); err != nil || len(rest) != 2 {
		t.Errorf("sumd add -- example.com/m@v1.2.4 -key: %v %q, want the arguments after -- kept", err, rest)
	}
}

// TestFlagTakenAsValue: a flag that the option before it took as its
// value (sumd add -gosum -server URL FILE, as the docs' shorthand reads)
// is refused, saying how to write the command, not taken for a file; a
// file of that name, or a value given with "=", is taken as written.
func TestFlagTakenAsValue(t *testing.T) {
	for _, tc := range []struct {
		load func(args []string) error
		args []string
		want string
	}{
		{func(a []string) error { _, _, err := LoadAdd(a, nil, io.Discard); return err },
			[]string{"-gosum", "-server", "http://127.0.0.1:1", "go.sum"},
			"-gosum takes FILE|DIR as its value, not the flag -server after it: sumd add -gosum FILE|DIR [-server URL]; put the other flags before -gosum, or its value right after it"},
		{func(a []string) error { _, _, err := LoadAdd(a, nil, io.Discard); return err },
			[]string{"-proxy-dir", "--strict", "example.com/m@v1.0.0", "m"},
			"-proxy-dir takes DIR as its value, not the flag --strict after it: sumd add -proxy-dir DIR [-strict]"},
		{func(a []string) error { _, _, err := LoadAdd(a, nil, io.Discard); return err },
			[]string{"-tmp-dir", "-gosum=go.sum"},
			"-tmp-dir takes DIR as its value, not the flag -gosum=go.sum after it: sumd add -tmp-dir DIR [-gosum FILE|DIR]"},
		{func(a []string) error { _, _, err := LoadVerify(a, nil, io.Discard); return err },
			[]string{"-gosum", "-url", "https://sum.example.com", "-key", "k.vkey"},
			"-gosum takes FILE as its value, not the flag -url after it: sumd verify -gosum FILE [-url URL]"},
	} {
		if err := tc.load(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v\nwant an error saying %q", tc.args, err, tc.want)
		}
	}
	t.Chdir(t.TempDir())
	if err := os.WriteFile("-server", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-gosum", "-server", "go.sum"}, {"-gosum=-strict", "go.sum"}} {
		if _, _, err := LoadAdd(args, nil, io.Discard); err != nil {
			t.Errorf("%q: %v, want the value taken as written", args, err)
		}
	}
}

// TestIntegersDecimal checks that a number is read in decimal from every
// layer: the flag package's reading (base 0) took a zero-padded 0100 for
// octal 64 and 0x40 for 64 without a word.
func TestIntegersDecimal(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  int // 0: refused
	}{{"0100", 100}, {"010", 10}, {"+16", 16}, {"0x40", 0}, {"0o10", 0}, {"1_000", 0}} {
		layers := map[string]struct{ args, env []string }{
			"flag": {args: []string{"-max-batch=" + tt.value}},
			"env":  {env: []string{"SUMD_MAX_BATCH=" + tt.value}},
			"file": {args: []string{"-config", writeFile(t, "max-batch: "+tt.value+"\n")}},
		}
		for layer, in := range layers {
			c, _, err := LoadServe(in.args, in.env, io.Discard)
			switch {
			case tt.want == 0 && (err == nil || !strings.Contains(err.Error(), "want an integer")):
				t.Errorf("%s max-batch=%s: max-batch %d, %v; want it refused", layer, tt.value, c.MaxBatch, err)
			case tt.want != 0 && (err != nil || c.MaxBatch != tt.want):
				t.Errorf("%s max-batch=%s: max-batch %d, %v; want %d", layer, tt.value, c.MaxBatch, err, tt.want)
			}
		}
	}
}

// TestFileOneDocument checks that a config file holding a second YAML
// document (after --- or ...) is refused: yaml.Unmarshal reads the first
// alone, so the keys after the separator were ignored without a word.
func TestFileOneDocument(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"max-batch: 2\n---\nmax-batch: 1\n", "a second YAML document starts at line 3"},
		{"max-batch: 2\n---\n# TLS\ntls-cert: c.pem\n---\n", "a second YAML document starts at line 4"},
		{"max-batch: 2\n...\nshutdown-timeout: 1s\n", "line 2: did not find expected <document start>"},
	} {
		c, _, err := LoadServe([]string{"-config", writeFile(t, tt.yaml)}, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: max-batch %d, shutdown-timeout %v, %v; want the second document refused: %s", tt.yaml, c.MaxBatch, c.ShutdownTimeout, err, tt.want)
		}
	}
	// A separator with nothing after it loses nothing.
	for _, yaml := range []string{"---\nmax-batch: 2\n", "# sumd\n---\nmax-batch: 2\n...\n", "max-batch: 2\n...\n# end\n", "max-batch: 2\n---\n"} {
		if c, _, err := LoadServe([]string{"-config", writeFile(t, yaml)}, nil, io.Discard); err != nil || c.MaxBatch != 2 {
			t.Errorf("%q: max-batch %d, %v; want 2", yaml, c.MaxBatch, err)
		}
	}
}

// TestConfigFlagEmpty checks that -config= loads no file, as an empty
// flag clears any other option: it fell back to $SUMD_CONFIG.
func TestConfigFlagEmpty(t *testing.T) {
	env := []string{"SUMD_CONFIG=" + writeFile(t, "max-batch: 1\n")}
	c, _, err := LoadServe([]string{"-config="}, env, io.Discard)
	if err != nil || c.MaxBatch != 1024 {
		t.Errorf("-config= under %q: max-batch %d, %v; want the default 1024, no file loaded", env, c.MaxBatch, err)
	}
	if c, _, err := LoadServe(nil, env, io.Discard); err != nil || c.MaxBatch != 1 {
		t.Errorf("no -config under %q: max-batch %d, %v; want 1 from the file", env, c.MaxBatch, err)
	}
}

// TestEnvOverFileWarned checks that a variable overriding a value the
// config file sets gets a warning naming both: the Dockerfile's
// SUMD_LISTEN=:8080 silently beat a mounted file's listen: ":8443".
func TestEnvOverFileWarned(t *testing.T) {
	file := writeFile(t, "listen: \":8443\"\nlog-format: json\ndb: postgres://sumd:secret@db/sumd\n")
	env := []string{"SUMD_CONFIG=" + file, "SUMD_LISTEN=:8080", "SUMD_LOG_FORMAT=json", "SUMD_DB=postgres://sumd:other@db/sumd"}
	var w strings.Builder
	c, _, err := LoadServe(nil, env, &w)
	if err != nil || c.Listen != ":8080" {
		t.Fatalf("listen %q, %v; want :8080 from the environment", c.Listen, err)
	}
	want := "sumd: warning: SUMD_DB overrides db of the config file " + file + `:3 ("postgres://sumd:xxxxx@db/sumd" instead of "postgres://sumd:xxxxx@db/sumd")` + "\n" +
		"sumd: warning: SUMD_LISTEN overrides listen of the config file " + file + `:1 (":8080" instead of ":8443")` + "\n"
	if got := strings.Join(slices.DeleteFunc(strings.SplitAfter(w.String(), "\n"), func(l string) bool { return !strings.Contains(l, "overrides") }), ""); got != want {
		t.Errorf("warnings:\n%s\nwant (the same value, log-format, needs none):\n%s", got, want)
	}
	w.Reset()
	if _, _, err := LoadServe([]string{"-listen", ":9"}, env[:3], &w); err != nil || strings.Contains(w.String(), "overrides") {
		t.Errorf("with -listen over both: %v, warnings %q; want none, the flag being what the operator asked for", err, w.String())
	}
}

// TestYAMLListForCommaList checks that a YAML list given to an option
// that takes one comma-separated string (key during a rotation, serve's
// mirror) is refused saying how to write it, rather than only that it
// wants a single value.
func TestYAMLListForCommaList(t *testing.T) {
	for yaml, want := range map[string]string{
		"key: [old.key, new.key]\n":          `key: want one comma-separated string, not a YAML list: key: "old.key,new.key"`,
		"mirror:\n  - a.db\n  - b.db\n":      `mirror: want one comma-separated string, not a YAML list: mirror: "a.db,b.db"`,
		"allowed-hosts: [a.example, b.ex]\n": `allowed-hosts: "a.example,b.ex"`,
		"db: [a, b]\n":                       "db: want a single value, not a list or map",
	} {
		_, _, err := LoadServe([]string{"-config", writeFile(t, yaml)}, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: %v, want an error containing %q", yaml, err, want)
		}
	}
}

// TestInlinePasswordWarned checks that a URL holding a password (a
// postgres:// -db, an upstream proxy's user:password@) gets a warning
// naming where it came from, without the password: docs/ha.md says to
// give it in PGPASSWORD or a passfile, since whoever reads the file, the
// environment or the process list reads it.
func TestInlinePasswordWarned(t *testing.T) {
	for _, in := range []struct {
		args, env []string
		want      string
	}{
		{env: []string{"SUMD_DB=postgres://sumd:s3cret@db/sumd"}, want: "db: the URL in SUMD_DB holds a password"},
		{args: []string{"-db", "postgres://sumd@db/sumd?password=s3cret"}, want: "db: the URL in -db holds a password"},
		{args: []string{"-config", writeFile(t, "upstream: https://u:s3cret@athens.example\n")}, want: "upstream: the URL in the config file "},
	} {
		var w strings.Builder
		if _, _, err := LoadServe(in.args, in.env, &w); err != nil {
			t.Fatal(err)
		}
		advice := "PGPASSWORD"
		if strings.Contains(in.want, "upstream") {
			advice = "-upstream-auth basic:USER:PASSWORD_FILE"
		}
		if !strings.Contains(w.String(), "sumd: warning: "+in.want) || !strings.Contains(w.String(), advice) || strings.Contains(w.String(), "s3cret") {
			t.Errorf("%q %q: warnings %q; want %q, without the password", in.args, in.env, w.String(), in.want)
		}
	}
	var w strings.Builder
	if _, _, err := LoadServe([]string{"-db", "postgres://sumd@db/sumd?sslmode=verify-full", "-upstream", "https://athens.example"}, nil, &w); err != nil || w.String() != "" {
		t.Errorf("URLs without a password: %v, warnings %q; want none", err, w.String())
	}
}

// TestUnknownKeyCase checks that a key written in upper case, or as its
// environment variable's name, is refused suggesting the key: keys are
// lower case, and the edit distance found nothing for MAX_BATCH or JSON.
func TestUnknownKeyCase(t *testing.T) {
	for yaml, want := range map[string]string{
		"MAX_BATCH: 1\n":      `unknown key "MAX_BATCH" (did you mean "max-batch"?)`,
		"SUMD_MAX_BATCH: 1\n": `unknown key "SUMD_MAX_BATCH" (did you mean "max-batch"?)`,
		"Log-Format: json\n":  `unknown key "Log-Format" (did you mean "log-format"?)`,
	} {
		_, _, err := LoadServe([]string{"-config", writeFile(t, yaml)}, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: %v; want %s", yaml, err, want)
		}
	}
}

// TestValidateNamesLayer checks that a value refused by Validate that did
// not come from a flag is followed by where it came from: the message
// named the option and its value, not the file or variable to fix.
// TestValidateNamesLayer: an option Validate refuses is followed by where
// its value came from, the variable or the config file and its line.
func TestValidateNamesLayer(t *testing.T) {
	file := writeFile(t, "shutdown-timeout: -1s\ntls-cert: c.pem\n")
	_, _, err := LoadServe([]string{"-config", file, "-max-batch=0"}, []string{"SUMD_LISTEN=8080"}, io.Discard)
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{
		"\n\tlisten is set by SUMD_LISTEN",
		"\n\tshutdown-timeout is set by the config file " + file + ":1\n",
		"\n\ttls-cert is set by the config file " + file + ":2\n",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error:\n%v\nwant the line %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "max-batch is set") || strings.Contains(err.Error(), "tls-key is set") {
		t.Errorf("error:\n%v\nwant no line for max-batch (a flag) or tls-key (unset)", err)
	}
}

// TestCrosscheckOptionsNeedCrosscheck checks that a cross-check option
// (crosscheck-url, private…) set while crosscheck never was is refused:
// the operator who wrote crosscheck-url believed public modules were
// checked, and sumd recorded them unchecked. crosscheck set false, by any
// layer, keeps the others unused on purpose (turning it off in an outage).
func TestCrosscheckOptionsNeedCrosscheck(t *testing.T) {
	sync := func(args, env []string) error { _, _, err := LoadSync(args, env, io.Discard); return err }
	serve := func(args, env []string) error { _, _, err := LoadServe(args, env, io.Discard); return err }
	syncArgs := []string{"-registry", "r.example/p", "-cosign-key", "k.pub"}
	for _, tt := range []struct {
		name      string
		load      func(args, env []string) error
		args, env []string
		want      string // "": loads
	}{
		{"serve, file", serve, []string{"-config", writeFile(t, "crosscheck-url: https://sum.golang.org\n")}, nil, "crosscheck-url is set, but crosscheck is not"},
		{"serve, env", serve, nil, []string{"SUMD_PRIVATE=corp.example/*"}, "private is set, but crosscheck is not"},
		{"sync, flag", sync, append(syncArgs, "-crosscheck-fail-open"), nil, "crosscheck-fail-open is set, but crosscheck is not"},
		{"serve, crosscheck false", serve, []string{"-config", writeFile(t, "crosscheck: false\nprivate: corp.example/*\n")}, nil, ""},
		{"serve, SUMD_CROSSCHECK=false", serve, nil, []string{"SUMD_CROSSCHECK=false", "SUMD_CROSSCHECK_KEY=sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"}, ""},
		{"sync, crosscheck", sync, append(syncArgs, "-crosscheck", "-crosscheck-url", "https://sum.golang.org"), nil, ""},
	} {
		err := tt.load(tt.args, tt.env)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v; want %q", tt.name, err, cmp.Or(tt.want, "no error"))
		}
	}
}

// TestCrosscheckKeyNamesSource: a crosscheck-key that is no verifier key
// was refused only when sumd serve or sumd sync built the cross-check,
// after loading, so its error could not say which layer set it, as the
// errors of other options do; it is refused with them now, the variable or
// config file named, and a private key is refused without being quoted.
func TestCrosscheckKeyNamesSource(t *testing.T) {
	const private = "PRIVATE+KEY+sum.example+1f3e7a1c+AVmc4ni3pBmJt7HUHUs2wZ3TNCYIQ2cwFmuEoPpyJEpg"
	file := writeFile(t, "crosscheck: true\ncrosscheck-key: garbage\n")
	serve := func(args, env []string) error { _, _, err := LoadServe(args, env, io.Discard); return err }
	sync := func(args, env []string) error { _, _, err := LoadSync(args, env, io.Discard); return err }
	syncArgs := []string{"-registry", "r.example/p", "-cosign-key", "k.pub", "-crosscheck-url", "https://sum.golang.org"}
	for _, tt := range []struct {
		name      string
		load      func(args, env []string) error
		args, env []string
		want      string
	}{
		{"serve, env", serve, []string{"-upstream", "https://proxy.golang.org"}, []string{"SUMD_CROSSCHECK=1", "SUMD_CROSSCHECK_KEY=garbage"}, "\n\tcrosscheck-key is set by SUMD_CROSSCHECK_KEY"},
		{"serve, file", serve, []string{"-upstream", "https://proxy.golang.org", "-config", file}, nil, "\n\tcrosscheck-key is set by the config file " + file},
		{"sync, env", sync, syncArgs, []string{"SUMD_CROSSCHECK=1", "SUMD_CROSSCHECK_KEY=" + private}, "\n\tcrosscheck-key is set by SUMD_CROSSCHECK_KEY"},
		{"sync, flag", sync, append(syncArgs, "-crosscheck", "-crosscheck-key", "garbage"), nil, "crosscheck-key"},
	} {
		err := tt.load(tt.args, tt.env)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v; want an error with %q", tt.name, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "PRIVATE+KEY") {
			t.Errorf("%s: %v: quotes the private key", tt.name, err)
		}
		if tt.env == nil && tt.args[len(tt.args)-1] == "garbage" && strings.Contains(err.Error(), "is set by") {
			t.Errorf("%s: %v: names a layer for a flag", tt.name, err)
		}
	}
}

// TestCrosscheckKeyUnusedStarts: a crosscheck-key kept unused on purpose
// (crosscheck: false) is not used (newChecker builds nothing), and a
// configuration holding an unusable one started before crosscheck-key was
// checked by Validate: it still does.
func TestCrosscheckKeyUnusedStarts(t *testing.T) {
	file := writeFile(t, "crosscheck: false\ncrosscheck-key: garbage\n")
	if _, _, err := LoadServe([]string{"-upstream", "https://proxy.golang.org", "-config", file}, nil, io.Discard); err != nil {
		t.Errorf("serve: %v; want no error with -crosscheck off", err)
	}
	syncArgs := []string{"-registry", "r.example/p", "-cosign-key", "k.pub", "-config", file}
	if _, _, err := LoadSync(syncArgs, nil, io.Discard); err != nil {
		t.Errorf("sync: %v; want no error with -crosscheck off", err)
	}
}

// TestPublicURL: -public-url, the URL clients reach sumd serve at behind a
// reverse proxy, is set by flag, config file key and environment variable
// alike, loses its trailing slash (the go command appends /lookup/… to
// it), and must be an http(s) base URL.
func TestPublicURL(t *testing.T) {
	for name, load := range map[string]struct{ args, env []string }{
		"flag": {args: []string{"-public-url", "https://sumd.corp.example/sumdb/"}},
		"file": {args: []string{"-config", writeFile(t, "public-url: https://sumd.corp.example/sumdb/\n")}},
		"env":  {env: []string{"SUMD_PUBLIC_URL=https://sumd.corp.example/sumdb/"}},
	} {
		c, _, err := LoadServe(load.args, load.env, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := "https://sumd.corp.example/sumdb"; c.PublicURL != want {
			t.Errorf("%s: public-url %q, want %q", name, c.PublicURL, want)
		}
	}
	for _, bad := range []string{"sumd.corp.example", "ftp://sumd.corp.example", "https://sumd.corp.example/?a=b", "https://sumd.corp.example/#top", "https:///path"} {
		if c, _, err := LoadServe([]string{"-public-url", bad}, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "public-url") {
			t.Errorf("-public-url %s: %+v, %v; want an error naming public-url", bad, c.PublicURL, err)
		}
	}
}

// TestFileErrorsNameLine: an error about a key of the config file names
// the file and the line, as compilers do (sumd.yaml:3:), so the operator
// finds a key written twice or nested under another at a glance.
func TestFileErrorsNameLine(t *testing.T) {
	for yaml, want := range map[string]string{
		"db: x.db\n\nlistn: :80\n":                `sumd.yaml:3: unknown key "listn"`,
		"db: x.db\nshutdown-timeout: 10\n":        `sumd.yaml:2: shutdown-timeout: invalid value "10"`,
		"# sumd\nmax-batch: [1, 2]\n":             `sumd.yaml:2: max-batch: want a single value`,
		"log:\n  level: debug\n":                  `sumd.yaml:2: unknown key "log.level"`,
		"listen: :1\ndb: x.db\nlisten: :2\n":      `sumd.yaml:3: key "listen" given twice`,
		"cache-size: 64\nregistry:\n  - [a, b]\n": `sumd.yaml:2: registry: want a list of single values`,
	} {
		path := writeFile(t, yaml)
		_, _, err := LoadServe([]string{"-config", path}, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), filepath.Dir(path)+string(filepath.Separator)+want) {
			t.Errorf("%q: %v\nwant an error containing %q", yaml, err, want)
		}
	}
}
