package config

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

func TestCheckName(t *testing.T) {
	valid := []string{
		"sum.example.com",
		"127.0.0.1:18081",
		"corp.example/sumdb",
		"sumd.local",
		"sum.example.com:443/a/b",
	}
	for _, name := range valid {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", name, err)
		}
	}
	invalid := []struct{ name, want string }{
		{"", "empty"},
		{"https://sum.example.com", "scheme"},
		{"sum.example.com/", "must not end in /"},
		{"user@sum.example.com", "user information"},
		{"user:pw@sum.example.com", "user information"},
		{"sum.example.com?x=1", "? or #"},
		{"sum.example.com?", "? or #"},
		{"sum.example.com#frag", "? or #"},
		{"/sumdb", "no host"},
		{"sum.example.com/a%2Fb", "without escapes"},
		{"sum example.com", "+ or spaces"},
		{"sum+example.com", "+ or spaces"},
		{"sum.example.com:port", "not a valid URL"},
	}
	for _, tt := range invalid {
		err := CheckName(tt.name)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "host[/path]") {
			t.Errorf("CheckName(%q) = %v, want error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestServeValidate(t *testing.T) {
	valid := defaultServe()
	valid.Database.resolve()
	if err := valid.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		edit func(*Serve)
		want string
	}{
		{func(c *Serve) { c.DB = "" }, "db is empty: set -db or SUMD_DB"},
		{func(c *Serve) { c.Key = "" }, "key is empty: set -key or SUMD_KEY"},
		{func(c *Serve) { c.Name = "https://x" }, `invalid name "https://x": it must not start with a scheme`},
		{func(c *Serve) { c.Listen = "8080" }, `invalid listen address "8080": address 8080: missing port in address; want host:port`},
		{func(c *Serve) { c.Listen = "localhost:http" }, `invalid listen address "localhost:http": port "http" is not a number from 0 to 65535`},
		{func(c *Serve) { c.Listen = ":70000" }, `port "70000" is not a number`},
		{func(c *Serve) { c.Level = "verbose" }, `invalid log-level "verbose": want debug, info, warn or error`},
		{func(c *Serve) { c.Format = "xml" }, `invalid log-format "xml": want text or json`},
		{func(c *Serve) { c.ShutdownTimeout = 0 }, "invalid shutdown-timeout 0s: want a positive duration"},
		{func(c *Serve) { c.ShutdownTimeout = -time.Second }, "invalid shutdown-timeout -1s"},
		{func(c *Serve) { c.MaxConnections = 0 }, "invalid max-connections 0: want a positive number"},
		{func(c *Serve) { c.MaxBatch = 0 }, "invalid max-batch 0: want a positive number"},
		{func(c *Serve) { c.Cache = -1 }, "invalid cache-size -1: want MiB of memory"},
		{func(c *Serve) { c.Cache = 1 << 43 }, "invalid cache-size 8796093022208: want MiB of memory such as 64 (at most 1048576)"},
		{func(c *Serve) { c.MinFreeDisk = -1 }, "invalid min-free-disk -1: want MiB such as 64, or 0 for no floor"},
		{func(c *Serve) { c.MinFreeDisk = 1 << 31 }, "invalid min-free-disk 2147483648"},
		{func(c *Serve) { c.MirrorOnly, c.Mirrors, c.MinFreeDisk = true, "m.db", -5 }, "invalid min-free-disk -5"},
		{func(c *Serve) { c.UpstreamTimeout = 0 }, "invalid upstream-timeout 0s: want a positive duration"},
		{func(c *Serve) { c.UpstreamTimeout = -5 * time.Second }, "invalid upstream-timeout -5s"},
		{func(c *Serve) { c.NegativeTTL = -time.Second }, "invalid negative-ttl -1s"},
		{func(c *Serve) { c.UpstreamParallel = 0 }, "invalid upstream-parallel 0: want a positive number of fetches"},
		{func(c *Serve) { c.UpstreamPerClient = -1 }, "invalid upstream-per-client -1: want a number of lookups such as 4, or 0"},
		{func(c *Serve) { c.Verify = "quick" }, `invalid verify mode "quick": want tail or full`},
		{func(c *Serve) { c.RefreshInterval = 0 }, "invalid refresh-interval 0s: want a positive duration"},
		{func(c *Serve) { c.MaxHeadAge = 3 * time.Second / 2 }, "invalid max-head-age 1.5s: want at least twice refresh-interval (1s)"},
		{func(c *Serve) { c.AdminListen = "127.0.0.1:0" }, "admin-listen is set, but the server has no admin API: set -admin-token-file"},
	}
	for _, tt := range tests {
		c := valid
		tt.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want error containing %q", err, tt.want)
		}
	}
	withAdmin := valid
	withAdmin.AdminListen, withAdmin.AdminTokenFile = "127.0.0.1:0", "admin.token"
	if err := withAdmin.Validate(); err != nil {
		t.Errorf("-admin-listen with -admin-token-file: %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Serve{Listen: ":1", ShutdownTimeout: time.Second, MaxConnections: 1, MaxBatch: 1, Verify: VerifyFull, Log: Log{"INFO", "JSON"}, Upstream: Upstream{UpstreamParallel: 1, UpstreamTimeout: time.Second},
		RefreshInterval: time.Second, MaxHeadAge: 2 * time.Second, ServeMirrors: ServeMirrors{MirrorInterval: time.Minute}, ServeSync: defaultServeSync()}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil for an empty database config")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "db is empty") || !strings.HasPrefix(lines[1], "key is empty") {
		t.Errorf("Validate() = %q, want two problems: db and key", err)
	}
	c.Database = Database{DB: "x.db", Key: "x.key", Name: "bad/"}
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), `invalid name "bad/"`) {
		t.Errorf("Validate() = %v, want the name problem", err)
	}
}

func TestAddValidate(t *testing.T) {
	c := defaultAdd()
	c.Database.resolve()
	if c.Name != DefaultName || c.Key != DefaultKeyFile(DefaultName) {
		t.Errorf("resolve() without key: name %q, key %q; want the defaults", c.Name, c.Key)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	c = defaultAdd()
	c.Key = "keys/corp.key"
	c.Database.resolve()
	if c.Name != "" {
		t.Errorf("resolve() with a key set the name to %q; want it left to the key", c.Name)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestDefaultKeyFile(t *testing.T) {
	for name, want := range map[string]string{
		"sumd.local":         "keys/sumd.local.key",
		"corp.example/sumdb": "keys/corp.example_sumdb.key",
		"127.0.0.1:18081":    "keys/127.0.0.1:18081.key",
	} {
		if got := DefaultKeyFile(name); got != want {
			t.Errorf("DefaultKeyFile(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(Log{Level: "warn", Format: "json"}, &buf)
	log.Info("dropped")
	log.Warn("kept", "n", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON line, got %q: %v", buf.String(), err)
	}
	if rec["msg"] != "kept" || rec["level"] != "WARN" || rec["n"] != 1.0 {
		t.Errorf("logged %v", rec)
	}

	// JSON logs durations as Go durations, not nanoseconds.
	buf.Reset()
	NewLogger(Log{Level: "info", Format: "json"}, &buf).Info("took", "duration", 1500*time.Millisecond)
	if !strings.Contains(buf.String(), `"duration":"1.5s"`) {
		t.Errorf("JSON logger wrote %q, want \"duration\":\"1.5s\"", buf.String())
	}

	buf.Reset()
	NewLogger(Log{Level: "debug", Format: "text"}, &buf).Debug("hello", "k", "v")
	if got := buf.String(); !strings.Contains(got, "level=DEBUG msg=hello k=v") {
		t.Errorf("text logger wrote %q", got)
	}
}

func TestCopyValidate(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "from is empty: set -from to the database to copy\nto is empty: set -to"},
		{[]string{"-from", "a.db", "-to", "a.db"}, "from and to are the same database"},
		{[]string{"-from", "a.db", "-to", "postgres:///sumd"}, ""},
	} {
		_, _, err := LoadCopy(tt.args, nil, io.Discard)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("LoadCopy(%q) = %v, want %q", tt.args, err, tt.want)
		}
	}
}

func TestDiskFloorBytes(t *testing.T) {
	for _, c := range []struct {
		mib  int
		want int64
	}{{0, -1}, {-5, -1}, {maxMinFreeDisk + 1, -1}, {1, 1 << 20}, {DefaultMinFreeDisk, 64 << 20}, {maxMinFreeDisk, 1 << 50}} {
		if got := (DiskFloor{c.mib}).Bytes(); got != c.want {
			t.Errorf("DiskFloor{%d}.Bytes() = %d, want %d", c.mib, got, c.want)
		}
	}
}

// TestDiskFloorOnlyWhereWritten: -min-free-disk is a flag of the commands
// that write a bbolt file (a log's, or backup's copy), and not of those
// that only read one, where it would do nothing.
func TestDiskFloorOnlyWhereWritten(t *testing.T) {
	type loader func([]string) error
	wrap := func(f func([]string, []string, io.Writer) error) loader {
		return func(args []string) error { return f(args, nil, io.Discard) }
	}
	writers := map[string]loader{
		"serve":         wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadServe(a, e, w); return err }),
		"add":           wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadAdd(a, e, w); return err }),
		"key rotate":    wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadKeyRotate(a, e, w); return err }),
		"sync":          wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadSync(a, e, w); return err }),
		"restore":       wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadRestore(a, e, w); return err }),
		"mirror":        wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadMirror(a, e, w); return err }),
		"mirror import": wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadMirrorImport(a, e, w); return err }),
		"copy":          wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadCopy(a, e, w); return err }),
		"backup":        wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadBackup(a, e, w); return err }),
	}
	readers := map[string]loader{
		"tuf init":      wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadTUFInit(a, e, w); return err }),
		"tuf publish":   wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadTUFPublish(a, e, w); return err }),
		"mirror export": wrap(func(a, e []string, w io.Writer) error { _, _, err := LoadMirrorExport(a, e, w); return err }),
	}
	undefined := func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "min-free-disk") && strings.Contains(err.Error(), "not defined")
	}
	for name, load := range writers {
		if err := load([]string{"-min-free-disk", "1"}); undefined(err) {
			t.Errorf("sumd %s -min-free-disk: %v; want the flag", name, err)
		}
	}
	for name, load := range readers {
		if err := load([]string{"-min-free-disk", "1"}); !undefined(err) {
			t.Errorf("sumd %s -min-free-disk: %v; want the flag refused as not defined", name, err)
		}
	}
}

// TestLogOnlyWhereLogged checks that the commands that never log take no
// -log-level or -log-format: listed in their -h, the flags did nothing.
func TestLogOnlyWhereLogged(t *testing.T) {
	for name, load := range map[string]func([]string) error{
		"tuf rotate-root": func(a []string) error { _, _, err := LoadTUFRotateRoot(a, nil, io.Discard); return err },
		"oci push":        func(a []string) error { _, _, err := LoadOCIPush(a, nil, io.Discard); return err },
	} {
		for _, flag := range []string{"-log-level=debug", "-log-format=json"} {
			if err := load([]string{flag}); err == nil || !strings.Contains(err.Error(), "not defined") {
				t.Errorf("sumd %s %s: %v; want the flag refused as not defined (the command never logs)", name, flag, err)
			}
		}
	}
}
