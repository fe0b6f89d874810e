package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
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

// TestMirrorPrivateSticky: sumd serve refused a mirror whose database
// remembered credentials, but a later run that forgot them (-auth none,
// -client-cert none, or an -origin on another host) made the mirror look
// public, and sumd serve then gave anonymous clients everything copied
// with them. The database records that its data was read with
// credentials, and forgetting them keeps the record; a database from
// before that record, which remembers credentials, is taken to have read
// with them.
func TestMirrorPrivateSticky(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	skey, _, err := itlog.GenerateKey("sum.corp.example")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := itlog.ParseKey(skey)
	vkey := key.VerifierKey()
	const origin = "https://sumd.corp.example"
	token := &mirror.Config{URL: origin, VerifierKeys: []string{vkey}, Auth: "bearer:/etc/sumd/replica.token"}
	cert := &mirror.Config{URL: origin, VerifierKeys: []string{vkey}, ClientCert: "/etc/sumd/replica.pem", ClientKey: "/etc/sumd/replica.key"}
	for _, tc := range []struct {
		name   string
		first  *mirror.Config // written as a database from before the record keeps it
		run    bool           // first saved by a run with its options, rather than written as it is
		later  mirrorOpts     // the later run's options
		public bool           // sumd serve may serve it to anonymous clients
	}{
		{name: "-auth none", first: token, run: true, later: mirrorOpts{auth: "none"}},
		{name: "-client-cert none", first: cert, run: true, later: mirrorOpts{cert: config.ClientCertNone}},
		{name: "another host", first: token, run: true, later: mirrorOpts{origin: "https://sumd.other.example"}},
		{name: "client cert to another host", first: cert, run: true, later: mirrorOpts{origin: "https://sumd.other.example"}},
		{name: "older database with -auth none", first: token, later: mirrorOpts{auth: "none"}},
		{name: "older database to another host", first: cert, later: mirrorOpts{origin: "https://sumd.other.example"}},
		{name: "never private", first: &mirror.Config{URL: origin, VerifierKeys: []string{vkey}, Auth: "none"}, run: true,
			later: mirrorOpts{origin: "https://sumd.other.example"}, public: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mdb := filepath.Join(t.TempDir(), "m.db")
			l, stored, err := openMirror(mdb, vkey, nil, true, -1, "", logger)
			if err != nil {
				t.Fatal(err)
			}
			if tc.run {
				first := mirrorOpts{origin: tc.first.URL, auth: tc.first.Auth, cert: tc.first.ClientCert, key: tc.first.ClientKey}
				mc, err := mirrorConfig(first.config(), l, stored)
				if err == nil {
					err = saveMirrorConfig(l, stored, mc)
				}
				if err != nil {
					t.Fatal(err)
				}
			} else if err := mirror.WriteConfig(context.Background(), l, tc.first); err != nil {
				t.Fatal(err)
			}
			stored, err = mirror.ReadConfig(context.Background(), l)
			if err != nil {
				t.Fatal(err)
			}
			mc, err := mirrorConfig(tc.later.config(), l, stored)
			if err == nil {
				err = saveMirrorConfig(l, stored, mc)
			}
			if err != nil {
				t.Fatal(err)
			}
			l.Close()

			cfg := &config.Serve{}
			cfg.Mirrors = mdb
			f, creds, err := serveMirrors(cfg, nil, logger)[0].Open()
			if err != nil {
				t.Fatal(err)
			}
			defer f.Log().Close()
			if public := creds == ""; public != tc.public {
				t.Errorf("sumd serve takes the mirror for one read with credentials %q; want public %v", creds, tc.public)
			}
		})
	}
}

// mirrorOpts are the options of a sumd mirror run.
type mirrorOpts struct{ origin, auth, cert, key string }

func (o mirrorOpts) config() *config.Mirror {
	cfg := &config.Mirror{Origin: o.origin}
	cfg.Auth = o.auth
	cfg.ClientCert = config.ClientCert{ClientCert: o.cert, ClientKey: o.key}
	return cfg
}
