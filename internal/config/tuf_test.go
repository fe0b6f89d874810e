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

func TestTUFDefaults(t *testing.T) {
	c, _, err := LoadTUFInit([]string{"-name", "sum.example.com"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir != "data/tuf" || c.Keys != "keys/tuf" || c.OnlineKeys != "" || c.RootKeys != 1 || c.RootThreshold != 1 ||
		c.RootExpiry != 365*24*time.Hour || c.Key != "keys/sum.example.com.key" {
		t.Errorf("tuf init defaults: %+v", c)
	}
	r, _, err := LoadTUFRotateRoot(nil, []string{"SUMD_ROTATE_ONLINE=true"}, io.Discard)
	if err != nil || !r.RotateOnline || r.RootThreshold != 0 {
		t.Errorf("tuf rotate-root: %+v, %v", r, err)
	}
}

// TestTUFInvalid checks that each mistake is caught before anything runs.
func TestTUFInvalid(t *testing.T) {
	tests := []struct {
		name string
		load func() error
		want string
	}{
		{"threshold above keys", func() error {
			_, _, err := LoadTUFInit([]string{"-root-keys", "2", "-root-threshold", "3"}, nil, io.Discard)
			return err
		}, "invalid root threshold 3 of 2 keys"},
		{"short expiry", func() error {
			_, _, err := LoadTUFPublish([]string{"-targets-expiry", "1h"}, nil, io.Discard)
			return err
		}, "invalid targets-expiry 1h0m0s"},
		{"no keys", func() error {
			_, _, err := LoadTUFRotateRoot([]string{"-keys", ""}, nil, io.Discard)
			return err
		}, "keys is empty"},
		{"bad url", func() error {
			_, _, err := LoadTUFInit([]string{"-url", "ftp://x"}, nil, io.Discard)
			return err
		}, "invalid url"},
		{"tuf-url alone", func() error {
			_, _, err := LoadTUFGosumdb([]string{"-tuf-url", "http://x/tuf"}, nil, io.Discard)
			return err
		}, "tuf-root is empty"},
		{"verify: key and tuf-root", func() error {
			_, _, err := LoadVerify([]string{"-key", "k", "-tuf-root", "r", "-tuf-url", "http://x/tuf"}, nil, io.Discard)
			return err
		}, "key and tuf-root both"},
		{"verify: tuf-root without tuf-url", func() error {
			_, _, err := LoadVerify([]string{"-url", "http://x", "-tuf-root", "r"}, nil, io.Discard)
			return err
		}, "tuf-root needs -tuf-url"},
		{"serve: online keys without a repository", func() error {
			_, _, err := LoadServe([]string{"-tuf-online-keys", "k"}, nil, io.Discard)
			return err
		}, "tuf-online-keys needs -tuf"},
	}
	for _, tt := range tests {
		if err := tt.load(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestVerifyWithTUF needs neither -key nor -url: both come from TUF.
func TestVerifyWithTUF(t *testing.T) {
	c, _, err := LoadVerify([]string{"-tuf-root", "root.json", "-tuf-url", "https://sum.example.com/tuf"}, nil, io.Discard)
	if err != nil || len(c.Key) != 0 || c.URL != "" {
		t.Errorf("LoadVerify with TUF: %+v, %v", c, err)
	}
}

func TestTUFUsage(t *testing.T) {
	loads := map[string]func(w io.Writer) error{
		"init":        func(w io.Writer) error { _, _, err := LoadTUFInit([]string{"-h"}, nil, w); return err },
		"publish":     func(w io.Writer) error { _, _, err := LoadTUFPublish([]string{"-h"}, nil, w); return err },
		"rotate-root": func(w io.Writer) error { _, _, err := LoadTUFRotateRoot([]string{"-h"}, nil, w); return err },
		"status":      func(w io.Writer) error { _, _, err := LoadTUFStatus([]string{"-h"}, nil, w); return err },
		"gosumdb":     func(w io.Writer) error { _, _, err := LoadTUFGosumdb([]string{"-h"}, nil, w); return err },
	}
	for name, load := range loads {
		var out strings.Builder
		if err := load(&out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "Usage: sumd tuf "+name) {
			t.Errorf("tuf %s -h: %v\n%s", name, err, out.String())
		}
		for line := range strings.Lines(out.String()) {
			if len(line) > 81 && !strings.HasPrefix(line, "Usage:") && !strings.HasPrefix(line, "  sumd") {
				t.Errorf("tuf %s: usage line longer than 80 columns: %q", name, line)
			}
		}
	}
}

// TestVerifyKeys checks that verify takes several keys: repeated, as a
// comma-separated list, or from SUMD_KEY, flags replacing the environment.
func TestVerifyKeys(t *testing.T) {
	for _, tc := range []struct {
		args, env []string
		want      []string
	}{
		{[]string{"-key", "a.vkey"}, nil, []string{"a.vkey"}},
		{[]string{"-key", "a.vkey", "-key", "b.vkey"}, nil, []string{"a.vkey", "b.vkey"}},
		{[]string{"-key", "a.vkey,b.vkey"}, nil, []string{"a.vkey", "b.vkey"}},
		{nil, []string{"SUMD_KEY=a.vkey,b.vkey"}, []string{"a.vkey", "b.vkey"}},
		{[]string{"-key", "c.vkey"}, []string{"SUMD_KEY=a.vkey,b.vkey"}, []string{"c.vkey"}},
	} {
		c, _, err := LoadVerify(append([]string{"-url", "https://sum.example.com"}, tc.args...), tc.env, io.Discard)
		if err != nil || !slices.Equal(c.Key, tc.want) {
			t.Errorf("LoadVerify(%q, %q): key %q, %v; want %q", tc.args, tc.env, c.Key, err, tc.want)
		}
	}
}

// TestTUFGosumdbHelpSaysOldest: sumd tuf gosumdb prints the oldest key
// (the one every go command already trusts during a rotation); its help
// said the newest.
func TestTUFGosumdbHelpSaysOldest(t *testing.T) {
	var help strings.Builder
	LoadTUFGosumdb([]string{"-h"}, nil, &help)
	if !strings.Contains(help.String(), "oldest key") || strings.Contains(help.String(), "newest") {
		t.Errorf("sumd tuf gosumdb -h says:\n%s\nwant the oldest key named", help.String())
	}
}
