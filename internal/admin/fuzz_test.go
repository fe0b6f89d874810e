package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/gosum"
)

// FuzzParseFetch: a /admin/fetch body is refused with a 4xx, or is exactly
// one JSON object or a form naming a valid module version.
func FuzzParseFetch(f *testing.F) {
	for _, s := range []string{
		`{"module": "example.com/m", "version": "v1.0.0"}`,
		`{"module": "example.com/m", "version": "v1.0.0"} {}`,
		`{"Module": "example.com/m", "version": "v1.0.0", "x": 1}`,
		`[]`, `null`, "",
	} {
		f.Add("application/json", []byte(s))
	}
	for _, s := range []string{"module=example.com%2Fm&version=v1.0.0", "module=a&module=b&version=v1.0.0", "x=1", "%zz"} {
		f.Add("application/x-www-form-urlencoded", []byte(s))
	}
	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/admin/fetch", bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		req.Body = http.MaxBytesReader(httptest.NewRecorder(), req.Body, maxFetchBody)
		m, err := parseFetch(req)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.status/100 != 4 {
				t.Fatalf("parseFetch(%q, %q): %v, want a 4xx", ctype, body, err)
			}
			return
		}
		if err := gosum.CheckModule(m.Path, m.Version); err != nil {
			t.Fatalf("parseFetch(%q, %q) accepted %v: %v", ctype, body, m, err)
		}
		if strings.HasPrefix(ctype, "application/json") && !json.Valid(body) {
			t.Fatalf("parseFetch accepted %q, which is not one JSON value", body)
		}
	})
}

// FuzzReadUpload: a multipart body is refused with a 4xx or read within
// the limits; either way at most one temporary file is made, in TempDir,
// and only for a zip larger than the handler keeps in memory.
func FuzzReadUpload(f *testing.F) {
	part := func(name, value string) string {
		return "--X\r\nContent-Disposition: form-data; name=\"" + name + "\"\r\n\r\n" + value + "\r\n"
	}
	f.Add(part("module", "example.com/m") + part("version", "v1.0.0") + part("zip", "PK\x05\x06") + "--X--\r\n")
	f.Add(part("module", "a") + part("module", "b") + "--X--\r\n")
	f.Add(part("zip", strings.Repeat("z", 2000)) + "--X--\r\n")
	f.Add(part("mod", "") + "--X--")
	f.Add("--X\r\n\r\n--X--")
	// One directory and handler for all inputs: a fuzz worker runs them one
	// at a time, and a new directory each would cost most of the time.
	dir := f.TempDir()
	h := New(&fakeRecorder{}, Options{TempDir: dir, MaxZipSize: 1024, MaxModSize: 256, Logger: quiet})
	h.memoryZip = 512 // zips of 513 to 1024 bytes go to a file
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/admin/upload", strings.NewReader(body))
		req.Header.Set("Content-Type", "multipart/form-data; boundary=X")
		req.Body = http.MaxBytesReader(httptest.NewRecorder(), req.Body, 1024+256+uploadSlack)
		up, err := h.readUpload(req)
		if up.release != nil {
			up.release()
		}
		if up.zipPath != "" {
			fi, statErr := os.Stat(up.zipPath)
			if statErr != nil || err == nil && (fi.Size() > 1024 || fi.Size() <= 512) {
				t.Fatalf("zip file %s: %v, %v", up.zipPath, fi, statErr)
			}
			os.Remove(up.zipPath)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("files left in TempDir: %v", left)
		}
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.status/100 != 4 {
				t.Fatalf("readUpload(%q): %v, want a 4xx", body, err)
			}
			return
		}
		if len(up.path) > maxField || len(up.version) > maxField || len(up.mod) > 256 || len(up.zipData) > 512 || up.zipData != nil && up.zipPath != "" {
			t.Fatalf("readUpload(%q) accepted fields over their limits", body)
		}
	})
}

// FuzzParseToken: an accepted token is long enough and has no surrounding
// white space nor a control character but tabs (a header value could not
// carry it).
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{testToken, testToken + "\n", " \n", "short", "\t" + testToken + " x\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		token, err := ParseToken(data)
		if err != nil {
			return
		}
		if len(token) < MinTokenLength || strings.TrimSpace(token) != token || strings.ContainsFunc(token, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			t.Fatalf("ParseToken(%q) = %q", data, token)
		}
	})
}
