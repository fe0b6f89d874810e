package admin

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
)

// TestTokenRacyRewrite: on a file system of coarse time stamps, a token
// file rewritten in place with a token of the same length within the tick
// of its last read shows the same stat as then, and the old token stayed
// valid until the file's next change: the cache kept the stat taken
// before its read, which secret.Changed cannot compare content with. It
// keeps the read's now, as internal/access does (TestRacyRewrite there).
func TestTokenRacyRewrite(t *testing.T) {
	// The bubble's clock starts in 2000, before any file's stamp: every
	// read is racy, however slow the machine.
	synctest.Test(t, func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(file, []byte(testToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		h := New(&fakeRecorder{}, Options{TokenFile: file, Logger: quiet})
		code := func(token string) int {
			r := httptest.NewRequest(http.MethodPost, "/admin/nowhere", strings.NewReader("{}"))
			r.Header.Set("Authorization", "Bearer "+token)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w.Code
		}
		if got := code(testToken); got != http.StatusNotFound { // past the token: no such endpoint
			t.Fatalf("the token: %d, want 404 of the route", got)
		}

		coarse, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		defer func(f func(string) (fs.FileInfo, error)) { stat = f }(stat)
		stat = func(string) (fs.FileInfo, error) { return coarse, nil } // stamps that did not move
		rotated := strings.ToUpper(testToken)                           // testToken's length
		if err := os.WriteFile(file, []byte(rotated+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := code(testToken); got != http.StatusUnauthorized {
			t.Errorf("the revoked token: %d, want 401", got)
		}
		if got := code(rotated); got != http.StatusNotFound {
			t.Errorf("the rotated token: %d, want 404 of the route", got)
		}
	})
}
