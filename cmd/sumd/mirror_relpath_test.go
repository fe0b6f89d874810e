package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sumd-project/sumd/internal/config"
	itlog "github.com/sumd-project/sumd/internal/tlog"
)

// TestMirrorConfigAbsolutePaths: the files a sumd mirror run names by a
// relative path (-auth's token, -client-cert and -client-key, -modules'
// go.sum files) were remembered as given, so a later run or sumd serve
// -mirror from another working directory (a systemd unit's /) looked for
// them there: no token, and the mirror could not follow its origin. They
// are remembered as the files this run read.
func TestMirrorConfigAbsolutePaths(t *testing.T) {
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
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("replica.token", []byte("s3cretTOKENvalue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := (mirrorOpts{origin: "https://sumd.corp.example", auth: "bearer:replica.token", cert: "c.pem", key: "k.pem"}).config()
	cfg.Modules = "go.sum,golang.org/x/*,!example.com/private"
	mc, err := mirrorConfig(cfg, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "bearer:" + filepath.Join(dir, "replica.token"); mc.Auth != want {
		t.Errorf("remembered -auth %q, want %q", mc.Auth, want)
	}
	if mc.ClientCert != filepath.Join(dir, "c.pem") || mc.ClientKey != filepath.Join(dir, "k.pem") {
		t.Errorf("remembered -client-cert %q -client-key %q, want them in %s", mc.ClientCert, mc.ClientKey, dir)
	}
	if want := []string{filepath.Join(dir, "go.sum"), "golang.org/x/*", "!example.com/private"}; !slices.Equal(mc.Modules, want) {
		t.Errorf("remembered -modules %q, want %q", mc.Modules, want)
	}
	// A later run from elsewhere reads the same token.
	t.Chdir(t.TempDir())
	mc.ClientCert, mc.ClientKey = "", ""
	mc.Modules = nil
	if _, err := newFollower(l, mc, followerOptions{logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatalf("a run from another directory: %v", err)
	}
	// Left as they are: none, the go command's .netrc, and absolute files.
	for _, auth := range []string{"none", "netrc", "bearer:/etc/sumd/replica.token"} {
		cfg := (mirrorOpts{origin: "https://sumd.corp.example", auth: auth, cert: config.ClientCertNone}).config()
		mc, err := mirrorConfig(cfg, l, nil)
		if err != nil {
			t.Fatal(err)
		}
		if mc.Auth != auth || mc.ClientCert != "" {
			t.Errorf("-auth %s -client-cert none remembered as %q, %q", auth, mc.Auth, mc.ClientCert)
		}
	}
}
