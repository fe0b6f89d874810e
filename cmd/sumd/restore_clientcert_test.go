package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRestoreFileRefusesClientCert: restore -from a mirror file reads no
// server, so -client-cert and -client-key given with it are refused (a
// usage error) rather than silently ignored; from the environment
// (SUMD_CLIENT_CERT, set for sumd status) they are not.
func TestRestoreFileRefusesClientCert(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	key := filepath.Join(dir, "keys", e2eName+".key")
	base := []string{"restore", "-db", filepath.Join(dir, "sumd.db"), "-key", key, "-from", filepath.Join(dir, "replica.db")}
	_, errOut, code := sumdCode(t, nil, append(base, "-client-cert", filepath.Join(dir, "c.pem"), "-client-key", filepath.Join(dir, "k.pem"))...)
	if code != 2 || !strings.Contains(errOut, "-client-cert does not go with -from FILE") || !strings.Contains(errOut, "-client-key does not go with -from FILE") {
		t.Errorf("sumd restore -from FILE -client-cert: exit %d, want 2 and both options refused\n%s", code, errOut)
	}
	env := []string{"SUMD_CLIENT_CERT=" + filepath.Join(dir, "c.pem"), "SUMD_CLIENT_KEY=" + filepath.Join(dir, "k.pem")}
	if _, errOut, _ := sumdCode(t, env, base...); strings.Contains(errOut, "does not go with") {
		t.Errorf("sumd restore -from FILE refused SUMD_CLIENT_CERT from the environment:\n%s", errOut)
	}
}
