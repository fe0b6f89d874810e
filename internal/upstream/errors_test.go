package upstream

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testlog"
	"github.com/sumd-project/sumd/internal/testnet"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestLookupErrorsShowNoUpstream looks versions up through the HTTP server
// while the upstream fails in every way it can, and checks what anyone who
// can look a version up then sees: the status, a reason, and never the
// upstream's URL, host or port, nor a local path. The log keeps the detail.
func TestLookupErrorsShowNoUpstream(t *testing.T) {
	m := mv("example.com/m", "v1.0.0")
	long := mv("example.com/"+strings.Repeat("a", 300), "v1.0.0")
	good := func() *proxy { return newProxy(t, goodModule(m.Path, m.Version)) }

	// The proxy's own reason repeats its URL and host: it is passed on
	// without them.
	gone404 := good()
	gone404.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "not found: "+gone404.url+"/example.com/m: unknown revision v1.0.0 at "+hostOf(gone404.url), http.StatusNotFound)
		return true
	})
	gone410 := good()
	gone410.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "gone from "+hostOf(gone410.url), http.StatusGone)
		return true
	})
	// Real proxies put VCS URLs and cache paths in their reasons (Athens),
	// and a proxy redirected to names the host that answered.
	athens := good()
	athens.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "not found: git ls-remote https://git.internal.corp:8443/secret/leak.git: exit status 128 (/var/lib/athens/cache/leak)", http.StatusNotFound)
		return true
	})
	behind := good()
	behind.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "not found on localhost (internal-artifactory.corp.local, "+hostOf(behind.url)+", [::1]:8081)", http.StatusNotFound)
		return true
	})
	redirected := good()
	redirected.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, strings.Replace(behind.url, "127.0.0.1", "localhost", 1)+r.URL.Path, http.StatusFound)
		return true
	})
	broken := good()
	broken.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "dial tcp 10.1.2.3:5432 at "+broken.url+": database on fire", http.StatusInternalServerError)
		return true
	})
	slow := good()
	slow.setHook(func(w http.ResponseWriter, r *http.Request) bool { <-r.Context().Done(); return true })
	downURL := "http://" + testnet.RefusingAddr(t)
	garbage := good()
	if err := os.WriteFile(testproxy.ZipPath(garbage.dir, m), []byte("not a zip"), 0o644); err != nil {
		t.Fatal(err)
	}
	// file:// trees: a version missing, one whose path crosses a file, a
	// symbolic link loop where the .mod should be, and a path element
	// longer than the file system allows; and a tree that is not there.
	fileTree := func(mods ...testproxy.Module) (string, string) {
		dir := filepath.Join(t.TempDir(), "tree")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		u, err := testproxy.Build(dir, mods)
		if err != nil {
			t.Fatal(err)
		}
		return dir, u
	}
	_, fileMissing := fileTree()
	noTreeDir, fileNoTree := fileTree()
	os.Remove(noTreeDir)
	notDirDir, fileNotDir := fileTree()
	os.WriteFile(filepath.Join(notDirDir, "example.com"), []byte("a file"), 0o644)
	loopDir, fileLoop := fileTree(goodModule(m.Path, m.Version))
	mod := testproxy.ModPath(loopDir, m)
	os.Remove(mod)
	if err := os.Symlink(mod, mod); err != nil {
		t.Fatal(err)
	}
	_, fileLong := fileTree(goodModule("example.com/other", "v1.0.0")) // example.com/ exists
	// The zip, which is hashed where it lies: missing, a directory, a loop.
	zipMissingDir, fileZipMissing := fileTree(goodModule(m.Path, m.Version))
	os.Remove(testproxy.ZipPath(zipMissingDir, m))
	zipDirDir, fileZipDir := fileTree(goodModule(m.Path, m.Version))
	os.Remove(testproxy.ZipPath(zipDirDir, m))
	os.Mkdir(testproxy.ZipPath(zipDirDir, m), 0o755)
	zipLoopDir, fileZipLoop := fileTree(goodModule(m.Path, m.Version))
	zip := testproxy.ZipPath(zipLoopDir, m)
	os.Remove(zip)
	if err := os.Symlink(zip, zip); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		list   string
		m      module.Version
		status int
		want   string
	}{
		{"404 from proxy", gone404.url, m, 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version: not found: upstream proxy: unknown revision v1.0.0 at upstream proxy"},
		{"404 naming a VCS URL and a path", athens.url, m, 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version: not found: git ls-remote [redacted]: exit status 128 ([redacted])"},
		{"404 after a redirect", redirected.url, m, 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version: not found on upstream proxy ([redacted], [redacted], [redacted])"},
		{"410 from proxy", gone410.url, m, 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version: gone from upstream proxy"},
		{"5xx", broken.url, m, 502, "upstream proxy error: example.com/m@v1.0.0: upstream proxy answered 500 Internal Server Error"},
		{"timeout", slow.url, m, 504, "upstream proxy error: example.com/m@v1.0.0: upstream proxy gave no complete answer within 200ms"},
		{"connection refused", downURL, m, 502, "upstream proxy error: example.com/m@v1.0.0: upstream proxy could not be reached"},
		{"invalid zip", garbage.url, m, 410, "not found: example.com/m@v1.0.0: invalid module: zip: not a valid zip file"},
		{"file missing", fileMissing, m, 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version"},
		{"file not a directory", fileNotDir, m, 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version"},
		{"file tree missing", fileNoTree, m, 502, "upstream proxy error: example.com/m@v1.0.0: the upstream proxy's file tree is missing"},
		{"file loop", fileLoop, m, 502, "upstream proxy error: example.com/m@v1.0.0: failed to read the upstream proxy's file tree"},
		{"file zip missing", fileZipMissing, m, 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version"},
		{"file zip a directory", fileZipDir, m, 410, "not found: example.com/m@v1.0.0: upstream proxy has no such version"},
		{"file zip loop", fileZipLoop, m, 502, "upstream proxy error: example.com/m@v1.0.0: failed to read the upstream proxy's file tree"},
		{"file name too long", fileLong, long, 410, "not found: " + long.String() + ": invalid module: a path element is longer than the upstream proxy's file tree allows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testlog.Buffer
			tmp := t.TempDir()
			f := newFetcher(t, tt.list, FetcherOptions{Timeout: 200 * time.Millisecond, TempDir: tmp})
			rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: f, Logger: logs.Logger()})
			status, body := lookupHTTP(t, rec, tt.m)
			if status != tt.status || body != tt.want+"\n" {
				t.Errorf("lookup: %d %q\nwant %d %q", status, body, tt.status, tt.want)
			}
			for _, secret := range []string{tt.list, strings.TrimPrefix(tt.list, "file://"), hostOf(tt.list), "127.0.0.1", "10.1.2.3", "file:", tmp, os.TempDir(), "on fire",
				"localhost", "git.internal.corp", "8443", "/var/lib", "artifactory", "::1", hostOf(behind.url)} {
				if secret != "" && strings.Contains(body, secret) {
					t.Errorf("the answer %q shows %q", body, secret)
				}
			}
			if !strings.Contains(logs.String(), "version not recorded") {
				t.Errorf("the failure was not logged:\n%s", logs.String())
			}
		})
	}

	t.Run("cross-check unreachable", func(t *testing.T) {
		s := newCheckedSetup(t, CheckerOptions{})
		s.db.add(t, s.right)
		s.lookupAfterDiscovery(t, http.StatusServiceUnavailable)
		status, body := lookupHTTP(t, s.rec, s.m)
		want := "upstream proxy error: example.com/m@v1.0.0: cannot cross-check with " + fakeSumName + ": it could not be reached\n"
		if status != 502 || body != want {
			t.Errorf("lookup: %d %q, want 502 %q", status, body, want)
		}
		e := asError(t, s.rec.checker.Check(context.Background(), s.right))
		if !strings.Contains(e.Detail(), s.proxy.url+"/sumdb/") {
			t.Errorf("the detail for the log lacks the database's URL: %s", e.Detail())
		}
	})

	t.Run("log keeps the detail", func(t *testing.T) {
		var logs testlog.Buffer
		f := newFetcher(t, broken.url, FetcherOptions{})
		rec := newRecorder(t, testLog(t), RecorderOptions{Fetcher: f, Logger: logs.Logger()})
		lookupHTTP(t, rec, m)
		if !strings.Contains(logs.String(), broken.url+"/example.com/m/@v/v1.0.0.mod: 500 Internal Server Error") {
			t.Errorf("the log lacks the upstream URL and status:\n%s", logs.String())
		}
	})
}

// hostOf is the host:port of an http URL, "" for others.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
