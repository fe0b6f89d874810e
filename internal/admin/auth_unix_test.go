//go:build unix

package admin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokenFileMode: a token file other users may access is refused, as
// sumd serve's access layer and sumd add -server read it.
func TestTokenFileMode(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTokenFile(tokenFile); err == nil || !strings.Contains(err.Error(), "accessible by other users (mode -rw-r-----)") {
		t.Errorf("ReadTokenFile of a 0640 file: %v", err)
	}
	os.Chmod(tokenFile, 0o600)
	if token, err := ReadTokenFile(tokenFile); token != testToken || err != nil {
		t.Errorf("ReadTokenFile of a 0600 file = %q, %v; want the token", token, err)
	}
}
