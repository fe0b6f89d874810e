package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupDBRefusesClientCert: backup -db copies a file from disk and
// reads no server, so -auth, -client-cert and -client-key given with it are
// refused (a usage error) rather than silently ignored; from the
// environment (SUMD_CLIENT_CERT, set for sumd status) they are not.
func TestBackupDBRefusesClientCert(t *testing.T) {
	dir := t.TempDir()
	base := []string{"backup", "-db", filepath.Join(dir, "sumd.db"), "-o", filepath.Join(dir, "copy.db")}
	_, errOut, code := sumdCode(t, nil, append(base, "-auth", "none", "-client-cert", filepath.Join(dir, "c.pem"), "-client-key", filepath.Join(dir, "k.pem"))...)
	for _, opt := range []string{"-auth", "-client-cert", "-client-key"} {
		if code != 2 || !strings.Contains(errOut, opt+" needs -server") {
			t.Errorf("sumd backup -db %s: exit %d, want 2 and %s refused\n%s", opt, code, opt, errOut)
		}
	}
	env := []string{"SUMD_CLIENT_CERT=" + filepath.Join(dir, "c.pem"), "SUMD_CLIENT_KEY=" + filepath.Join(dir, "k.pem")}
	if _, errOut, _ := sumdCode(t, env, base...); strings.Contains(errOut, "needs -server") {
		t.Errorf("sumd backup -db refused SUMD_CLIENT_CERT from the environment:\n%s", errOut)
	}
}
