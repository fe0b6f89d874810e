package main

import (
	"bytes"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/config"
	"github.com/sumd-project/sumd/internal/oci"
	"github.com/sumd-project/sumd/internal/testproxy"
)

const cosignPassword = "sumd-test-password"

// startRegistry serves go-containerregistry's in-memory registry on
// 127.0.0.1 (plain http, which go-containerregistry and cosign use for
// loopback registries) and returns its host:port.
func startRegistry(t *testing.T, referrers bool) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(referrers), registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// cosignKeys writes a cosign key pair into dir as `cosign generate-key-pair`
// does, encrypted with cosignPassword, and returns the two files.
func cosignKeys(t *testing.T, dir string) (priv, pub string) {
	t.Helper()
	kb, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte(cosignPassword), nil })
	if err != nil {
		t.Fatal(err)
	}
	priv, pub = filepath.Join(dir, "cosign.key"), filepath.Join(dir, "cosign.pub")
	writeFile(t, priv, kb.PrivateBytes)
	writeFile(t, pub, kb.PublicBytes)
	return priv, pub
}

// sumdCode runs the sumd binary with extra environment variables and
// returns its output and exit status.
func sumdCode(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := sumdCommand(t, args...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// ociEnv is a sumd log, a registry, a cosign key pair and a module proxy
// tree whose zips are what gets pushed.
type ociEnv struct {
	dir, db, key, vkey string
	host               string // registry
	priv, pub          string // cosign key files
	proxyDir, proxyURL string
}

func newOCIEnv(t *testing.T, referrers bool, mods ...testproxy.Module) *ociEnv {
	t.Helper()
	dir := t.TempDir()
	e := &ociEnv{dir: dir, db: filepath.Join(dir, "sumd.db"), host: startRegistry(t, referrers), proxyDir: filepath.Join(dir, "proxy")}
	e.vkey = strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	e.key = filepath.Join(dir, "keys", e2eName+".key")
	e.priv, e.pub = cosignKeys(t, dir)
	var err error
	if e.proxyURL, err = testproxy.Build(e.proxyDir, mods); err != nil {
		t.Fatal(err)
	}
	return e
}

// push runs sumd oci push of m's zip from the proxy tree, signed or not,
// and returns the pushed reference (host/repo@sha256:…).
func (e *ociEnv) push(t *testing.T, m testproxy.Module, sign bool) string {
	t.Helper()
	ref, _ := e.pushOut(t, m, sign)
	return ref
}

// pushOut is push, also returning what sumd oci push printed.
func (e *ociEnv) pushOut(t *testing.T, m testproxy.Module, sign bool) (ref, stdout string) {
	t.Helper()
	args := []string{"oci", "push"}
	if sign {
		args = append(args, "-sign-key", e.priv)
	}
	mv := module.Version{Path: m.Path, Version: m.Version}
	args = append(args, mv.String(), testproxy.ZipPath(e.proxyDir, mv), e.host+"/gomod")
	out, errOut, code := sumdCode(t, []string{"COSIGN_PASSWORD=" + cosignPassword}, args...)
	m1 := regexp.MustCompile(`^pushed \S+ as (\S+)\n`).FindStringSubmatch(out)
	if code != 0 || m1 == nil {
		t.Fatalf("sumd %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return m1[1], out
}

// sync runs sumd sync and returns its output and exit status.
func (e *ociEnv) sync(t *testing.T) (stdout, stderr string, code int) {
	t.Helper()
	return sumdCode(t, nil, "sync", "-db", e.db, "-key", e.key, "-create", "-registry", e.host+"/gomod", "-cosign-key", e.pub)
}

func ociModule(path, version, body string) testproxy.Module {
	return testproxy.Module{Path: path, Version: version, Files: map[string]string{
		"go.mod": "module " + path + "\n\ngo 1.21\n", "m.go": "package m\n\n// " + body + "\n"}}
}

// TestSyncCommand: sumd sync records what is signed, skips what is not,
// is idempotent, and refuses a version re-published with other content
// with exit status 1, naming it.
func TestSyncCommand(t *testing.T) {
	signed, unsigned := ociModule("example.com/m", "v1.0.0", "a"), ociModule("example.com/m", "v1.0.1", "b")
	e := newOCIEnv(t, true, signed, unsigned)
	e.push(t, signed, true)
	e.push(t, unsigned, false)
	out, errOut, code := e.sync(t)
	if code != 0 || !strings.Contains(out, "1 recorded, 1 unsigned") || !strings.Contains(errOut, "outcome=unsigned") {
		t.Fatalf("first sync: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = e.sync(t)
	if code != 0 || !strings.Contains(out, "1 unsigned, 1 unchanged since the last sync; 0 records added") {
		t.Fatalf("second sync: exit %d\n%s%s", code, out, errOut)
	}

	t.Run("push over a published version", func(t *testing.T) {
		// v1.0.0 is published; other content under its tag is refused
		// before anything is uploaded, and the tag stays.
		other := ociModule("example.com/m", "v1.0.0", "other")
		dir := filepath.Join(e.dir, "other-v1.0.0")
		if _, err := testproxy.Build(dir, []testproxy.Module{other}); err != nil {
			t.Fatal(err)
		}
		mv := module.Version{Path: other.Path, Version: other.Version}
		_, errOut, code := sumdCode(t, nil, "oci", "push", mv.String(), testproxy.ZipPath(dir, mv), e.host+"/gomod")
		if code != 1 || !strings.Contains(errOut, "gomod/example.com/m:v1.0.0 is published already with other content") ||
			!strings.Contains(errOut, "hint: a module version's content never changes once published") {
			t.Errorf("sumd oci push over a published version: exit %d\n%s", code, errOut)
		}
		if out, errOut, code := e.sync(t); code != 0 || strings.Contains(out, "conflict") {
			t.Errorf("sync after the refused push: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("conflict", func(t *testing.T) {
		// v1.0.2 is recorded from one tree, then published with another.
		recorded, published := ociModule("example.com/m", "v1.0.2", "recorded"), ociModule("example.com/m", "v1.0.2", "published")
		other := filepath.Join(e.dir, "other")
		if _, err := testproxy.Build(other, []testproxy.Module{recorded}); err != nil {
			t.Fatal(err)
		}
		sumd(t, "add", "-db", e.db, "-key", e.key, "example.com/m@v1.0.2", testproxy.ZipPath(other, module.Version{Path: "example.com/m", Version: "v1.0.2"}))
		if _, err := testproxy.Build(e.proxyDir, []testproxy.Module{published}); err != nil {
			t.Fatal(err)
		}
		e.push(t, published, true)
		out, errOut, code := e.sync(t)
		want := "sumd: error: artifact " + e.host + "/gomod/example.com/m:v1.0.2: example.com/m@v1.0.2 is already recorded as record 1 with different hashes:"
		if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "hint: a recorded version never changes") || !strings.Contains(out, "1 conflict") {
			t.Fatalf("sync of a re-published version: exit %d, want 1 and\n%s\ngot:\n%s%s", code, want, out, errOut)
		}
	})
}

// TestSyncDenied: a registry that refuses sumd (401 without credentials,
// 403 with the wrong ones) is a failure whose hint, and log line, say where
// the credentials come from: DOCKER_CONFIG, the only way under systemd's
// dynamic user or in the container, which have no home to docker login in.
func TestSyncDenied(t *testing.T) {
	dir := t.TempDir()
	sumd(t, "keygen", "-name", e2eName, "-dir", dir)
	_, pub := cosignKeys(t, dir)
	// An empty Docker config: the test must not depend on the host's.
	env := []string{"DOCKER_CONFIG=" + t.TempDir()}
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			http.Error(w, `{"errors":[{"code":"DENIED","message":"access denied"}]}`, status)
		}))
		defer srv.Close()
		host := strings.TrimPrefix(srv.URL, "http://")
		for _, source := range [][]string{
			{"-registry", host + "/gomod"}, // the catalog
			{"-registry", host + "/gomod", "-repository", host + "/gomod/example.com/m"}, // the tags of a repository
		} {
			args := append([]string{"sync", "-db", filepath.Join(t.TempDir(), "sumd.db"), "-key", filepath.Join(dir, e2eName+".key"), "-create",
				"-cosign-key", pub}, source...)
			_, errOut, code := sumdCode(t, env, args...)
			if code != 1 || !strings.Contains(errOut, "hint: the registry refused sumd's credentials") ||
				!strings.Contains(errOut, "set DOCKER_CONFIG to a directory holding a config.json") {
				t.Errorf("sumd sync %s against a registry answering %d: exit %d, want 1 and a hint naming DOCKER_CONFIG:\n%s",
					strings.Join(source, " "), status, code, errOut)
			}
			if !regexp.MustCompile(`level=ERROR msg="OCI sync: failed to \S+ repositor.*hint=.*DOCKER_CONFIG`).MatchString(errOut) {
				t.Errorf("sumd sync %s against a registry answering %d logged no hint naming DOCKER_CONFIG:\n%s",
					strings.Join(source, " "), status, errOut)
			}
		}
	}
}

// TestPushDirectory: sumd oci push zips a directory as the go command
// does, and the hashes it prints are those sync records.
func TestPushDirectory(t *testing.T) {
	e := newOCIEnv(t, false)
	dir := filepath.Join(e.dir, "src")
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	writeFile(t, filepath.Join(dir, "go.mod"), []byte("module example.com/d\n\ngo 1.21\n"))
	writeFile(t, filepath.Join(dir, "d.go"), []byte("package d\n"))
	writeFile(t, filepath.Join(dir, ".git", "HEAD"), []byte("ref: refs/heads/main\n")) // left out, as by the go command
	out, errOut, code := sumdCode(t, []string{"COSIGN_PASSWORD=" + cosignPassword}, "oci", "push", "-sign-key", e.priv, "example.com/d@v0.1.0", dir, e.host+"/gomod")
	if code != 0 || !strings.Contains(out, "signed: "+e.host+"/gomod/example.com/d:sha256-") {
		t.Fatalf("push: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := e.sync(t); code != 0 || !strings.Contains(out, "1 recorded") {
		t.Fatalf("sync: exit %d\n%s%s", code, out, errOut)
	}
	// sumd add of the same directory computes the hashes sync recorded.
	out = sumd(t, "add", "-db", e.db, "-key", e.key, "example.com/d@v0.1.0", dir)
	if !strings.Contains(out, "already recorded, with the same hashes") {
		t.Errorf("adding the pushed directory after sync: %s", out)
	}
}

// TestServeSync: sumd serve -registry syncs periodically; a version pushed
// while it runs becomes available to lookups, and the outcome is counted.
func TestServeSync(t *testing.T) {
	m := ociModule("example.com/live", "v1.0.0", "live")
	e := newOCIEnv(t, true, m)
	sumd(t, "add", "-db", e.db, "-key", e.key, "-create", m.Path+"@"+m.Version, testproxy.ZipPath(e.proxyDir, module.Version{Path: m.Path, Version: m.Version}))
	// sync adds a version pushed after the server started.
	late := ociModule("example.com/live", "v1.1.0", "late")
	if _, err := testproxy.Build(e.proxyDir, []testproxy.Module{late}); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "-db", e.db, "-key", e.key, "-registry", e.host+"/gomod", "-cosign-key", e.pub, "-sync-interval", "200ms")
	e.push(t, late, true)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.url + "/lookup/example.com/live@v1.1.0")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("v1.1.0 not served 20s after it was pushed; sumd serve:\n%s", s.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The pass counts the artifact just after the log records it: a scrape
	// may come in between.
	for {
		resp, err := http.Get(s.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(metrics, []byte(`sumd_oci_artifacts_total{outcome="recorded"} 1`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack one recorded artifact:\n%s", grepLines(string(metrics), "sumd_oci"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// TestPushUnnamableModule: a module path with an element no OCI repository
// name can hold (example.com/_) is refused before the key's password is
// read or the registry is contacted, with a hint about the name, not one
// sending the user to their registry credentials.
func TestPushUnnamableModule(t *testing.T) {
	e := newOCIEnv(t, false)
	dir := filepath.Join(e.dir, "src")
	os.MkdirAll(dir, 0o755)
	writeFile(t, filepath.Join(dir, "go.mod"), []byte("module example.com/_\n"))
	_, errOut, code := sumdCode(t, []string{"COSIGN_PASSWORD=" + cosignPassword}, "oci", "push", "-sign-key", e.priv, "example.com/_@v1.0.0", dir, e.host+"/gomod")
	if code != 1 || !strings.Contains(errOut, `element "_" has no letter or digit`) ||
		strings.Contains(errOut, "docker login") || !strings.Contains(errOut, "docs/oci.md, Repository names") {
		t.Errorf("sumd oci push example.com/_: exit %d, want 1 and a hint about repository names:\n%s", code, errOut)
	}
}

// TestSyncSummaryResume: a pass that ran out of its download budget read
// part of the registries and exits 0; its summary says where the next
// sumd sync carries on.
func TestSyncSummaryResume(t *testing.T) {
	r := &oci.Report{Counts: map[oci.Outcome]int{oci.Recorded: 2}, Resume: "registry.example.com/gomod/example.com/m:v1.2.0"}
	want := "sync: 2 recorded, 0 unchanged since the last sync; 2 records added; the download budget of the pass was spent at registry.example.com/gomod/example.com/m:v1.2.0: run sumd sync again to carry on from there"
	if got := summary(r, 2); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

// TestSyncPassBudgetWiring: -sync-pass-budget reaches the download budget
// of sumd sync's pass and of sumd serve's, in bytes, and its default is
// oci's.
func TestSyncPassBudgetWiring(t *testing.T) {
	_, pub := cosignKeys(t, t.TempDir())
	src := []string{"-registry", "r.example/p", "-cosign-key", pub}
	for _, tt := range []struct {
		args []string
		want int64
	}{
		{nil, oci.DefaultMaxPassBytes},
		{[]string{"-sync-pass-budget", "7"}, 7 << 20},
	} {
		c, _, err := config.LoadSync(append(tt.args, src...), nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := loadSyncConfig(c.OCI)
		if err != nil {
			t.Fatal(err)
		}
		if got := sc.options(nil, "", nil, nil).MaxPassBytes; got != tt.want {
			t.Errorf("sumd sync %q: MaxPassBytes %d, want %d", tt.args, got, tt.want)
		}
		s, _, err := config.LoadServe(append(tt.args, src...), nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if sc, err = prepareSync(s.ServeSync); err != nil || sc == nil {
			t.Fatalf("prepareSync = %v, %v", sc, err)
		}
		if got := sc.options(nil, "", nil, nil).MaxPassBytes; got != tt.want {
			t.Errorf("sumd serve %q: MaxPassBytes %d, want %d", tt.args, got, tt.want)
		}
	}
}

// TestServeReportBudgetSpent: a pass of sumd serve's sync that spent its
// download budget says so to the status, without where it stopped (a
// registry's name, which the status does not show).
func TestServeReportBudgetSpent(t *testing.T) {
	at := "registry.example.com/gomod/example.com/m:v1.2.0"
	sr := serveReport(&oci.Report{Counts: map[oci.Outcome]int{oci.Recorded: 2}, Skipped: 5, Resume: at})
	if !sr.BudgetSpent || sr.Outcomes["recorded"] != 2 || sr.Unchanged != 5 {
		t.Errorf("serveReport = %+v, want the budget spent, 2 recorded and 5 unchanged", sr)
	}
	if sr := serveReport(&oci.Report{}); sr.BudgetSpent {
		t.Errorf("serveReport of a pass that read everything = %+v, want the budget not spent", sr)
	}
}
