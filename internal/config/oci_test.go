package config

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestListPrecedence: a list option takes several values in every layer,
// and a later layer replaces the list of an earlier one.
func TestListPrecedence(t *testing.T) {
	file := writeFile(t, "registry:\n  - f1.example/p\n  - f2.example/p\ncosign-key: a.pub, b.pub\n")
	cfg := "SUMD_CONFIG=" + file
	tests := []struct {
		name      string
		args, env []string
		registry  []string
		keys      []string
	}{
		{"default", nil, nil, nil, nil},
		{"file list and comma string", nil, []string{cfg}, []string{"f1.example/p", "f2.example/p"}, []string{"a.pub", "b.pub"}},
		{"env over file", nil, []string{cfg, "SUMD_REGISTRY=e.example/p, e2.example/p"}, []string{"e.example/p", "e2.example/p"}, []string{"a.pub", "b.pub"}},
		{"repeated flag over env", []string{"-registry", "x.example/p", "-registry=y.example/p"}, []string{cfg, "SUMD_REGISTRY=e.example/p"}, []string{"x.example/p", "y.example/p"}, []string{"a.pub", "b.pub"}},
		{"flag comma list", []string{"-cosign-key", "c.pub,d.pub", "-cosign-key", "e.pub"}, []string{cfg}, []string{"f1.example/p", "f2.example/p"}, []string{"c.pub", "d.pub", "e.pub"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := LoadServe(tt.args, tt.env, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Registry, tt.registry) || !slices.Equal(c.CosignKey, tt.keys) {
				t.Errorf("registry %q, cosign-key %q; want %q, %q", c.Registry, c.CosignKey, tt.registry, tt.keys)
			}
		})
	}
}

func TestListFileErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		"registry:\n  - [a, b]\ncosign-key: k\n": "want a list of single values",
		"registry:\n  a: b\ncosign-key: k\n":     `unknown key "registry.a"`,
		"db: [a, b]\n":                           "want a single value",
	} {
		_, _, err := LoadServe([]string{"-config", writeFile(t, yaml)}, nil, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: %v, want an error containing %q", yaml, err, want)
		}
	}
}

func TestSyncIntervalDefault(t *testing.T) {
	c, _, err := LoadServe(nil, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.SyncInterval != DefaultSyncInterval || len(c.Registry) != 0 {
		t.Errorf("sync-interval %v, registry %q; want %v and none", c.SyncInterval, c.Registry, DefaultSyncInterval)
	}
	if c, _, err = LoadServe([]string{"-sync-interval", "0"}, nil, io.Discard); err != nil || c.SyncInterval != 0 {
		t.Errorf("-sync-interval 0: %v, %v", c, err)
	}
}

func TestOCIValidate(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-registry", "r.example/p"}, "cosign-key is not"},
		{[]string{"-cosign-key", "k.pub"}, "need registry"},
		{[]string{"-registry", "https://r.example/p", "-cosign-key", "k.pub"}, "without a scheme"},
		{[]string{"-sync-interval", "-1s"}, "invalid sync-interval"},
	}
	for _, tt := range tests {
		if _, _, err := LoadServe(tt.args, nil, io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadServe(%q) = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

func TestLoadSync(t *testing.T) {
	if _, _, err := LoadSync(nil, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "registry is empty") {
		t.Errorf("LoadSync without a registry = %v", err)
	}
	c, _, err := LoadSync([]string{"-db", "d/s.db", "-registry", "r.example/p", "-cosign-key", "k.pub"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DB != "d/s.db" || c.Key != DefaultKeyFile(DefaultName) {
		t.Errorf("db %q, key %q", c.DB, c.Key)
	}
	if c.Crosscheck || c.UpstreamTimeout != time.Minute {
		t.Errorf("crosscheck %v, upstream-timeout %v: want off and sumd serve's default", c.Crosscheck, c.UpstreamTimeout)
	}
	// sumd serve's cross-check options, with their meaning: the database
	// is reached at -crosscheck-url or through -upstream.
	sync := []string{"-registry", "r.example/p", "-cosign-key", "k.pub", "-crosscheck"}
	if _, _, err := LoadSync(sync, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "crosscheck needs -crosscheck-url or -upstream") {
		t.Errorf("LoadSync -crosscheck alone = %v", err)
	}
	for _, extra := range [][]string{{"-crosscheck-url", "https://sum.golang.org"}, {"-upstream", "https://proxy.golang.org"}} {
		c, _, err := LoadSync(append(sync, extra...), []string{"SUMD_PRIVATE=corp.example"}, io.Discard)
		if err != nil || !c.Crosscheck || c.Private != "corp.example" {
			t.Errorf("LoadSync -crosscheck %v: %+v, %v", extra, c.SyncCrosscheck, err)
		}
	}
}

func TestOCIHelp(t *testing.T) {
	var out strings.Builder
	_, _, err := LoadSync([]string{"-h"}, nil, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	for _, want := range []string{"Usage: sumd sync [flags]", "-registry HOST[:PORT][/PREFIX] (env SUMD_REGISTRY)", "repeatable", "-cosign-key FILE (env SUMD_COSIGN_KEY)",
		"cross-checked as sumd serve -crosscheck does", "-crosscheck (env SUMD_CROSSCHECK; default false)", "-private PATTERNS (env SUMD_PRIVATE)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if _, _, err := LoadOCIPush([]string{"-h"}, nil, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-sign-key FILE (env SUMD_SIGN_KEY)") {
		t.Errorf("LoadOCIPush(-h) = %v:\n%s", err, out.String())
	}
	out.Reset()
	LoadServe([]string{"-h"}, nil, &out)
	if !strings.Contains(out.String(), "-sync-interval DURATION (env SUMD_SYNC_INTERVAL; default "+DefaultSyncInterval.String()+")") {
		t.Errorf("serve usage lacks -sync-interval:\n%s", out.String())
	}
}

// TestSyncPassBudget: -sync-pass-budget is MiB, as -min-free-disk and
// -cache-size are, for sumd sync and sumd serve alike, from every layer;
// its default is oci.DefaultMaxPassBytes (4 GiB, TestSyncPassBudgetWiring
// in cmd/sumd checks the two agree), and a budget of no bytes or past
// what fits in bytes is refused.
func TestSyncPassBudget(t *testing.T) {
	src := []string{"-registry", "r.example/p", "-cosign-key", "k.pub"}
	c, _, err := LoadSync(src, nil, io.Discard)
	if err != nil || c.SyncPassBudget != DefaultSyncPassBudget || c.MaxPassBytes() != 4<<30 {
		t.Fatalf("sumd sync's default: %v, %v; want %d MiB, 4 GiB", c, err, DefaultSyncPassBudget)
	}
	s, _, err := LoadServe(nil, nil, io.Discard)
	if err != nil || s.SyncPassBudget != DefaultSyncPassBudget {
		t.Fatalf("sumd serve's default: %v, %v; want %d MiB", s, err, DefaultSyncPassBudget)
	}
	file := "SUMD_CONFIG=" + writeFile(t, "sync-pass-budget: 100\n")
	for _, tt := range []struct {
		args, env []string
		want      int
	}{
		{nil, []string{file}, 100},
		{nil, []string{file, "SUMD_SYNC_PASS_BUDGET=200"}, 200},
		{[]string{"-sync-pass-budget", "300"}, []string{file, "SUMD_SYNC_PASS_BUDGET=200"}, 300},
	} {
		c, _, err := LoadSync(append(tt.args, src...), tt.env, io.Discard)
		if err != nil || c.SyncPassBudget != tt.want || c.MaxPassBytes() != int64(tt.want)<<20 {
			t.Errorf("LoadSync(%q, %q) = %v, %v; want %d MiB", tt.args, tt.env, c, err, tt.want)
		}
		s, _, err := LoadServe(tt.args, tt.env, io.Discard)
		if err != nil || s.SyncPassBudget != tt.want {
			t.Errorf("LoadServe(%q, %q) = %v, %v; want %d MiB", tt.args, tt.env, s, err, tt.want)
		}
	}
	for _, v := range []string{"0", "-1", "1073741825"} {
		want := "invalid sync-pass-budget " + v + ": want MiB such as 4096"
		if _, _, err := LoadSync(append([]string{"-sync-pass-budget", v}, src...), nil, io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadSync -sync-pass-budget %s = %v, want an error containing %q", v, err, want)
		}
		if _, _, err := LoadServe([]string{"-sync-pass-budget", v}, nil, io.Discard); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadServe -sync-pass-budget %s = %v, want an error containing %q", v, err, want)
		}
	}
	if got := (OCI{SyncPassBudget: 1 << 30}).MaxPassBytes(); got != 1<<50 {
		t.Errorf("MaxPassBytes of the largest budget = %d, want 1 PiB", got)
	}
	var out strings.Builder
	LoadSync([]string{"-h"}, nil, &out)
	if want := "-sync-pass-budget MIB (env SUMD_SYNC_PASS_BUDGET; default 4096)"; !strings.Contains(out.String(), want) {
		t.Errorf("sync usage lacks %q:\n%s", want, out.String())
	}
}
