package main

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/modhash"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestTmpDir: the zips a fetch and an upload are streaming sit in the
// database's .tmp directory, never in the system's; SIGKILL leaves them
// there, and the next start removes them.
func TestTmpDir(t *testing.T) {
	dir := t.TempDir()
	proxy := holdingProxy(t, filepath.Join(dir, "proxy"))

	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	osTmp := filepath.Join(dir, "ostmp") // TMPDIR: must stay empty
	if err := os.Mkdir(osTmp, 0o700); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "data", "sumd.db")
	args := []string{"-db", db, "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-upstream", proxy.URL, "-admin-token-file", token}
	env := []string{"TMPDIR=" + osTmp}
	s := startServerEnv(t, "", env, append(args, "-create")...)
	tmpDir := db + ".tmp"
	if fi, err := os.Stat(tmpDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("temporary directory %s: %v, %v; want mode 0700", tmpDir, fi, err)
	}

	// A first lookup whose zip never finishes, and an upload that never
	// finishes either.
	go http.Get(s.url + "/lookup/example.com/slow@v1.0.0")
	pw := startUpload(t, s.url, "0123456789abcdef0123456789abcdef")
	defer pw.Close()
	waitFor(t, "a fetch and an upload in "+tmpDir, func() bool {
		return slices.Equal(tmpKinds(t, tmpDir), []string{"sumd-upload", "sumd-upstream"})
	})

	s.cmd.Process.Kill()
	s.cmd.Wait()
	if got := tmpKinds(t, tmpDir); len(got) != 2 {
		t.Fatalf("after SIGKILL the temporary directory holds %v, want the two orphans", got)
	}
	s = startServerEnv(t, "", env, args...)
	get(t, s.url+"/healthz") // serving, and so past the start's clean-up
	if got := tmpKinds(t, tmpDir); len(got) != 0 {
		t.Errorf("after the restart the temporary directory holds %v, want nothing", got)
	}
	if !strings.Contains(s.stderr.String(), "removed temporary files left by a crash") || !strings.Contains(s.stderr.String(), "files=2") {
		t.Errorf("the restart did not log the removal:\n%s", s.stderr)
	}
	if left, _ := os.ReadDir(osTmp); len(left) != 0 {
		t.Errorf("sumd wrote to TMPDIR: %v", left)
	}
}

// holdingProxy serves example.com/slow@v1.0.0 from a GOPROXY tree it
// builds in dir until the test ends, but sends part of the zip and then
// holds the connection. The part is larger than sumd keeps in memory
// (upstream's memoryZip, 1 MiB), so that it is in -tmp-dir.
func holdingProxy(t *testing.T, dir string) *httptest.Server {
	slow := testproxy.Module{Path: "example.com/slow", Version: "v1.0.0", Files: map[string]string{
		"go.mod": "module example.com/slow\n", "s.go": "package slow\n"}}
	if _, err := testproxy.Build(dir, []testproxy.Module{slow}); err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(dir))
	stop := make(chan struct{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".zip") {
			files.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(2<<20))
		w.Write(make([]byte, 1<<20+50000))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(proxy.Close)
	t.Cleanup(func() { close(stop) }) // runs first
	return proxy
}

// TestTmpDirShared: a second sumd given the -tmp-dir of one that is
// fetching a zip (two servers of two databases, or two processes of one
// PostgreSQL database) refuses to start, saying why, and does not remove
// the first one's zip in flight as a crash's leftover.
func TestTmpDirShared(t *testing.T) {
	dir := t.TempDir()
	proxy := holdingProxy(t, filepath.Join(dir, "proxy"))
	defer proxy.CloseClientConnections() // ends the fetch, so that the server stops at once
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	shared := filepath.Join(dir, "tmp")
	serveArgs := func(db string) []string {
		return []string{"-db", filepath.Join(dir, db), "-create", "-key", filepath.Join(dir, "keys", e2eName+".key"),
			"-upstream", proxy.URL, "-tmp-dir", shared}
	}
	s := startServer(t, serveArgs("a.db")...)
	go http.Get(s.url + "/lookup/example.com/slow@v1.0.0")
	waitFor(t, "a fetch in "+shared, func() bool { return slices.Equal(tmpKinds(t, shared), []string{"sumd-upstream"}) })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, sumdBin, append([]string{"serve", "-listen", "127.0.0.1:0"}, serveArgs("b.db")...)...)
	second.Env = childEnv(t)
	out, err := second.CombinedOutput()
	if err == nil || ctx.Err() != nil || !strings.Contains(string(out), "in use by another sumd process") || !strings.Contains(string(out), "give each sumd its own -tmp-dir") {
		t.Errorf("second sumd serve on the same -tmp-dir: %v\n%s\nwant it refused, saying why", err, out)
	}
	if got := tmpKinds(t, shared); !slices.Equal(got, []string{"sumd-upstream"}) {
		t.Errorf("after the second start the directory holds %v; want the first one's zip in flight", got)
	}
}

// startUpload starts an admin upload whose zip part never ends; closing the
// returned writer ends the request. The part sent is larger than the
// admin API keeps in memory (its memoryZip, 1 MiB), so that it is in
// -tmp-dir.
func startUpload(t *testing.T, url, token string) *io.PipeWriter {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	req, err := http.NewRequest(http.MethodPost, url+"/admin/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	go func() {
		mw.WriteField("module", "example.com/up")
		mw.WriteField("version", "v1.0.0")
		part, _ := mw.CreateFormFile("zip", "up.zip")
		part.Write(bytes.Repeat([]byte("z"), 1<<20+50000))
		// ... and nothing more until the test closes pw.
	}()
	return pw
}

// tmpKinds lists the files of dir by kind ("sumd-upstream"), sorted, but
// the directory's lock file.
func tmpKinds(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range entries {
		name := e.Name()
		if name == "sumd.lock" {
			continue
		}
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		kinds = append(kinds, name)
	}
	slices.Sort(kinds)
	return kinds
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAddGosumUpstreamTmpDir: sumd add -gosum -upstream fetched zips over
// 1 MiB into $TMPDIR, not into its -tmp-dir (default: the database's name
// plus .tmp), which was resolved only after its fetcher was built.
func TestAddGosumUpstreamTmpDir(t *testing.T) {
	dir := t.TempDir()
	proxy := holdingProxy(t, filepath.Join(dir, "proxy"))
	defer proxy.CloseClientConnections()
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	osTmp := filepath.Join(dir, "ostmp") // TMPDIR: must stay empty
	if err := os.Mkdir(osTmp, 0o700); err != nil {
		t.Fatal(err)
	}
	goModHash, err := modhash.GoModHash([]byte("module example.com/slow\n"))
	if err != nil {
		t.Fatal(err)
	}
	gosumFile := writeFile(t, filepath.Join(dir, "go.sum"), []byte("example.com/slow v1.0.0/go.mod "+goModHash+"\n"))
	db := filepath.Join(dir, "sumd.db")
	cmd := exec.Command(sumdBin, "add", "-create", "-db", db, "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-upstream", proxy.URL, "-gosum", gosumFile)
	cmd.Env = childEnv(t, "TMPDIR="+osTmp)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	inDir := func(dir string) bool {
		_, err := os.Stat(dir)
		return err == nil && slices.Contains(tmpKinds(t, dir), "sumd-upstream")
	}
	waitFor(t, "a fetch", func() bool { return inDir(db+".tmp") || inDir(osTmp) })
	if left, _ := os.ReadDir(osTmp); len(left) != 0 {
		t.Errorf("sumd add wrote to TMPDIR: %v", left)
	}
}
