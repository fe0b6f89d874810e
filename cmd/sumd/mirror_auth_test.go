package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/mirror"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestMirrorConfigAuthStaysWithHost: the credentials a mirror's database
// remembers were sent to whatever -origin a later run named, so a run
// pointed at another host (a typo, a new origin) sent it the old origin's
// token. A token or password goes on only to the host it was given for;
// a .netrc, which picks credentials by host, goes anywhere.
func TestMirrorConfigAuthStaysWithHost(t *testing.T) {
	skey, _, err := itlog.GenerateKey("sum.corp.example")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := itlog.ParseKey(skey)
	l, err := itlog.OpenStore(itlog.NewMemStore(), itlog.Options{VerifierKeys: []string{key.VerifierKey()}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		stored, origin, flag, want string
	}{
		{"bearer:/etc/sumd/replica.token", "", "", "bearer:/etc/sumd/replica.token"},
		{"bearer:/etc/sumd/replica.token", "https://sumd.corp.example:8443", "", "bearer:/etc/sumd/replica.token"},
		{"bearer:/etc/sumd/replica.token", "https://sumd.other.example", "", ""},
		{"basic:u:/etc/sumd/pw", "https://sumd.other.example/sumdb", "", ""},
		{"bearer:/etc/sumd/replica.token", "https://sumd.other.example", "bearer:/etc/sumd/other.token", "bearer:/etc/sumd/other.token"},
		{"netrc", "https://sumd.other.example", "", "netrc"},
		{"none", "https://sumd.other.example", "", "none"},
	} {
		cfg := &config.Mirror{Origin: tc.origin}
		cfg.Auth = tc.flag
		stored := &mirror.Config{URL: "https://sumd.corp.example", VerifierKeys: l.VerifierKeys(), Auth: tc.stored}
		mc, err := mirrorConfig(cfg, l, stored)
		if err != nil {
			t.Fatal(err)
		}
		if mc.Auth != tc.want {
			t.Errorf("stored -auth %s, -origin %q, -auth %q: the run sends %q, want %q", tc.stored, tc.origin, tc.flag, mc.Auth, tc.want)
		}
	}
}

// TestMirrorConfigClientCertStaysWithHost: the client certificate a
// mirror's database remembers (its files) is presented to the host it was
// given for, as a token is; a run naming an origin on another host must
// give -client-cert again, and a run's -client-cert replaces it.
func TestMirrorConfigClientCertStaysWithHost(t *testing.T) {
	skey, _, err := itlog.GenerateKey("sum.corp.example")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := itlog.ParseKey(skey)
	l, err := itlog.OpenStore(itlog.NewMemStore(), itlog.Options{VerifierKeys: []string{key.VerifierKey()}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		origin, flag, want string
	}{
		{"", "", "/etc/sumd/replica.pem"},
		{"https://sumd.corp.example:8443", "", "/etc/sumd/replica.pem"},
		{"https://sumd.other.example", "", ""},
		{"https://sumd.other.example", "/etc/sumd/other.pem", "/etc/sumd/other.pem"},
		{"", "/etc/sumd/new.pem", "/etc/sumd/new.pem"},
	} {
		cfg := &config.Mirror{Origin: tc.origin}
		if tc.flag != "" {
			cfg.ClientCert = config.ClientCert{ClientCert: tc.flag, ClientKey: tc.flag + ".key"}
		}
		stored := &mirror.Config{URL: "https://sumd.corp.example", VerifierKeys: l.VerifierKeys(), ClientCert: "/etc/sumd/replica.pem", ClientKey: "/etc/sumd/replica.pem.key"}
		mc, err := mirrorConfig(cfg, l, stored)
		if err != nil {
			t.Fatal(err)
		}
		wantKey := ""
		if tc.want != "" {
			wantKey = tc.want + ".key"
		}
		if mc.ClientCert != tc.want || mc.ClientKey != wantKey {
			t.Errorf("-origin %q, -client-cert %q: the run presents %q (key %q), want %q", tc.origin, tc.flag, mc.ClientCert, mc.ClientKey, tc.want)
		}
	}
}

// TestMirrorClientCertNone: a mirror remembers its client certificate's
// files, and -client-cert none makes it forget them, as -auth none does
// the credentials: the option loads without -client-key, checkMirrorFlags
// reads no file named none, and the run presents no certificate.
func TestMirrorClientCertNone(t *testing.T) {
	skey, _, err := itlog.GenerateKey("sum.corp.example")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := itlog.ParseKey(skey)
	l, err := itlog.OpenStore(itlog.NewMemStore(), itlog.Options{VerifierKeys: []string{key.VerifierKey()}, Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg, _, err := config.LoadMirror([]string{"-mirror", t.TempDir() + "/m.db", "-client-cert", "none"}, nil, io.Discard)
	if err != nil {
		t.Fatalf("sumd mirror -client-cert none: %v", err)
	}
	if err := checkMirrorFlags(cfg); err != nil {
		t.Fatalf("sumd mirror -client-cert none: %v", err)
	}
	stored := &mirror.Config{URL: "https://sumd.corp.example", VerifierKeys: l.VerifierKeys(), ClientCert: "/etc/sumd/replica.pem", ClientKey: "/etc/sumd/replica.key"}
	mc, err := mirrorConfig(cfg, l, stored)
	if err != nil {
		t.Fatal(err)
	}
	if mc.ClientCert != "" || mc.ClientKey != "" {
		t.Errorf("-client-cert none: the run presents %q (key %q), want none", mc.ClientCert, mc.ClientKey)
	}
	if _, _, err := config.LoadMirror([]string{"-mirror", "m.db", "-client-cert", "none", "-client-key", "k.pem"}, nil, io.Discard); err == nil {
		t.Errorf("sumd mirror -client-cert none -client-key: accepted, want the key refused")
	}
}
