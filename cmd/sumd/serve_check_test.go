package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeChecksBeforeCreating: sumd serve in an empty directory with a
// bad cross-check key or state file, a mistyped -mirror, an -upstream-auth
// file that is not there, or a file:// -upstream tree that is not, is refused before it generates a
// key or creates the database (it used to make both, then fail on the
// cross-check's options, the missing mirror or the credential file).
func TestServeChecksBeforeCreating(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"crosscheck-key", []string{"-upstream", "https://proxy.golang.org", "-crosscheck", "-crosscheck-key", "garbage"}, "invalid crosscheck-key"},
		{"crosscheck-state", []string{"-upstream", "https://proxy.golang.org", "-crosscheck", "-crosscheck-state", "state"}, "does not hold a tree head"},
		{"mirror", []string{"-create", "-mirror", "missing.db"}, "hint: create the mirror first: sumd mirror -mirror missing.db"},
		{"upstream-auth", []string{"-create", "-upstream", "https://proxy.golang.org", "-upstream-auth", "bearer:missing"}, "failed to read bearer credentials"},
		{"upstream file tree", []string{"-create", "-upstream", "https://proxy.golang.org,file:///nonexistent/sumd-tree"}, "hint: check the file:// path in -upstream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "state"), []byte("not a signed head\n"))
			var stdout, stderr bytes.Buffer
			cmd := sumdCommand(t, append([]string{"serve", "-listen", "127.0.0.1:0"}, tc.args...)...)
			cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &stdout, &stderr
			if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("sumd serve %q: %v\n%s\nwant it refused with %q", tc.args, err, stderr.String(), tc.want)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if e.Name() != "state" {
					t.Errorf("the refused sumd serve %q left %s", tc.args, e.Name())
				}
			}
		})
	}
}

// TestServeCrosscheckURL: -crosscheck with -crosscheck-url and no
// -upstream is enough for sumd serve (it cross-checks the admin API's and
// OCI sync's records), as for sumd sync; an option that needs -upstream
// is named alone.
func TestServeCrosscheckURL(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	base := []string{"-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key")}
	s := startServer(t, append(base, "-crosscheck", "-crosscheck-url", "http://127.0.0.1:1")...)
	s.stop()
	_, errOut, err := sumdRun(t, append([]string{"serve", "-listen", "127.0.0.1:0"}, append(base, "-crosscheck")...)...)
	if err == nil || !strings.Contains(errOut, "crosscheck needs -upstream or -crosscheck-url") || strings.Contains(errOut, "upstream-auth") {
		t.Errorf("-crosscheck alone: %v\n%s\nwant it refused, naming -crosscheck-url and not -upstream-auth", err, errOut)
	}
	_, errOut, err = sumdRun(t, append([]string{"serve", "-listen", "127.0.0.1:0"}, append(base, "-upstream-auth", "none")...)...)
	if err == nil || !strings.Contains(errOut, "upstream-auth needs -upstream") || strings.Contains(errOut, "crosscheck") {
		t.Errorf("-upstream-auth alone: %v\n%s\nwant it refused, naming only -upstream-auth", err, errOut)
	}
}

// TestSecretFileOptionNamed: a token given where -admin-token-file or
// -token-file wants its file is refused without being repeated, and the
// error names the option instead.
func TestSecretFileOptionNamed(t *testing.T) {
	const token = "tS0GKR9q2mXc7LbYvWnE4a1Hd8JpQz"
	for option, args := range map[string][]string{
		"admin-token-file": {"serve", "-listen", "127.0.0.1:0", "-admin-token-file", token},
		"token-file":       {"add", "-server", "http://127.0.0.1:1", "-insecure-http", "-token-file", token, "example.com/m@v1.0.0"},
	} {
		cmd := sumdCommand(t, args...)
		var stderr bytes.Buffer
		cmd.Dir, cmd.Stderr = t.TempDir(), &stderr
		if err := cmd.Run(); err == nil || strings.Contains(stderr.String(), token) || !strings.Contains(stderr.String(), "error: "+option+": ") {
			t.Errorf("sumd %q: %v\n%s\nwant it refused, naming -%s and not the token", args, err, stderr.String(), option)
		}
	}
}
