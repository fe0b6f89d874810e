package main

import (
	"bytes"
	"cmp"
	"path/filepath"
	"strings"
	"testing"
)

// TestOriginKeyNamesSource: an -origin-key sumd mirror (or mirror export
// or import, which open the mirror alike) cannot use (neither a key nor a readable file), set by
// SUMD_ORIGIN_KEY or the config file, was reported as -origin-key's alone,
// sending the operator to a command line that has no -origin-key; the
// error now says, as other options' errors do, which variable or file set
// it.
func TestOriginKeyNamesSource(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "sumd.yaml")
	writeFile(t, conf, []byte("origin-key: garbage\n"))
	mirror := []string{"mirror", "-mirror", "m.db", "-origin", "http://127.0.0.1:1"}
	export := []string{"mirror", "export", "-mirror", "m.db", "-o", "out.bundle"}
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"SUMD_ORIGIN_KEY=garbage"}, mirror, "origin-key is set by SUMD_ORIGIN_KEY"},
		{nil, append(mirror, "-config", conf), "origin-key is set by the config file " + conf},
		{nil, append(mirror, "-origin-key", "garbage"), ""},
		{[]string{"SUMD_ORIGIN_KEY=garbage"}, export, "origin-key is set by SUMD_ORIGIN_KEY"},
		{nil, append(export, "-config", conf), "origin-key is set by the config file " + conf},
	} {
		cmd := sumdCommand(t, tc.args...)
		cmd.Env = childEnv(t, tc.env...)
		var stderr bytes.Buffer
		cmd.Dir, cmd.Stderr = dir, &stderr
		err := cmd.Run()
		if err == nil || !strings.Contains(stderr.String(), "neither a verifier key nor a readable file") {
			t.Fatalf("sumd %q %q: %v\n%s\nwant the key refused", tc.env, tc.args, err, stderr.String())
		}
		if got := strings.Contains(stderr.String(), "is set by"); tc.want == "" && got || tc.want != "" && !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("sumd %q %q:\n%s\nwant %q", tc.env, tc.args, stderr.String(), cmp.Or(tc.want, "no line saying where -origin-key was set"))
		}
	}
}
