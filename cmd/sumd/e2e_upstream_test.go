package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestGoCommandUpstream runs sumd beside a module proxy with an empty log:
// every lookup is a first lookup, fetched from the proxy, hashed and
// recorded. The go.sum the go command writes through sumd must equal the one
// it writes from the proxy alone with no checksum database.
func TestGoCommandUpstream(t *testing.T) {
	dir := t.TempDir()
	proxyDir := filepath.Join(dir, "proxy")
	proxyURL, err := testproxy.Build(proxyDir, special)
	if err != nil {
		t.Fatal(err)
	}
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	key := filepath.Join(dir, "keys", e2eName+".key")
	token := writeSecret(t, filepath.Join(dir, "admin.token"), "0123456789abcdef0123456789abcdef\n")
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", key,
		"-upstream", proxyURL, "-admin-token-file", token)

	gosumWith := func(sumdb string) string {
		g := testproxy.NewGo(t)
		g.Env = append(g.Env, "GOPROXY="+proxyURL, "GOSUMDB="+sumdb)
		if out, err := g.Run(append([]string{"get"}, args(special...)...)...); err != nil {
			t.Fatalf("go get with GOSUMDB=%s: %v\n%s", sumdb, err, out)
		}
		data, err := os.ReadFile(filepath.Join(g.Dir, "go.sum"))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	through, alone := gosumWith(s.gosumdb), gosumWith("off")
	if through != alone || strings.Count(through, "\n") != 2*len(special) {
		t.Fatalf("go.sum through sumd:\n%s\ndiffers from the go command's own:\n%s", through, alone)
	}
	if head := get(t, s.url+"/latest"); !strings.HasPrefix(head, "go.sum database tree\n5\n") {
		t.Errorf("after first lookups sumd's tree head is %q, want 5 records", head)
	}

	t.Run("missing version", func(t *testing.T) {
		// The go command would stop at the proxy, which lacks the version;
		// ask sumd directly for its answer.
		resp := getStatus(t, s.url+"/lookup/example.com/plain@v1.9.9")
		if resp.status != 410 || !strings.HasPrefix(resp.body, "not found: example.com/plain@v1.9.9") {
			t.Errorf("lookup of a version the proxy lacks: %d %q, want 410 not found", resp.status, resp.body)
		}
	})

	t.Run("admin", func(t *testing.T) {
		mod := t.TempDir()
		writeFile(t, filepath.Join(mod, "go.mod"), []byte("module example.com/uploaded\n\ngo 1.21\n"))
		writeFile(t, filepath.Join(mod, "u.go"), []byte("package uploaded\n"))
		bad := writeSecret(t, filepath.Join(dir, "bad.token"), "wrong-token-wrong-token\n")
		_, errOut, err := sumdRun(t, "add", "-server", s.url, "-token-file", bad, "example.com/uploaded@v1.0.0", mod)
		if err == nil || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "hint: the credentials are missing or wrong") {
			t.Fatalf("add with a wrong token: %v\n%s", err, errOut)
		}
		out := sumd(t, "add", "-server", s.url, "-token-file", token, "example.com/uploaded@v1.0.0", mod)
		if !strings.Contains(out, "example.com/uploaded@v1.0.0 recorded as record 5 (tree size 6)") {
			t.Fatalf("add -server upload printed %q", out)
		}
		out = sumd(t, "add", "-server", s.url, "-token-file", token, "example.com/plain@v1.0.0")
		// Already recorded by the go command's first lookup: its old id, and
		// the tree does not grow.
		if !regexp.MustCompile(`^example\.com/plain@v1\.0\.0 already recorded, with the same hashes, as record [0-4] \(tree size 6\)\n$`).MatchString(out) {
			t.Fatalf("add -server fetch of a recorded version printed %q", out)
		}
	})

	t.Run("verify -recheck", func(t *testing.T) {
		// The version uploaded through the admin API is published too, with
		// the same files: h1 hashes depend on names and contents only.
		uploaded := testproxy.Module{Path: "example.com/uploaded", Version: "v1.0.0", Files: map[string]string{
			"go.mod": "module example.com/uploaded\n\ngo 1.21\n", "u.go": "package uploaded\n"}}
		if _, err := testproxy.Build(proxyDir, []testproxy.Module{uploaded}); err != nil {
			t.Fatal(err)
		}
		vkey, _, _ := strings.Cut(s.gosumdb, " ")
		out, errOut, code := verify(t, "-url", s.url, "-key", vkey, "-recheck", proxyURL, "-json")
		if code != 0 || !strings.Contains(out, `"records_rechecked": 6`) {
			t.Fatalf("verify -recheck of an honest log: exit %d\n%s%s", code, out, errOut)
		}
		// The module is re-published with other content: the audit reports
		// that the recorded hash no longer matches its source.
		m := module.Version{Path: "example.com/plain", Version: "v1.0.0"}
		other := t.TempDir()
		changed := special[0]
		changed.Files = map[string]string{"go.mod": changed.Files["go.mod"], "plain.go": "package plain // re-tagged\n"}
		if _, err := testproxy.Build(other, []testproxy.Module{changed}); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(testproxy.ZipPath(other, m))
		if err == nil {
			err = os.WriteFile(testproxy.ZipPath(proxyDir, m), data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		out, _, code = verify(t, "-url", s.url, "-key", vkey, "-recheck", proxyURL)
		if code != 1 || !strings.Contains(out, "recheck-mismatch: example.com/plain@v1.0.0") {
			t.Fatalf("verify -recheck after re-publishing a version: exit %d\n%s", code, out)
		}
	})
}

type response struct {
	status int
	body   string
}

func getStatus(t *testing.T, url string) response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(body)}
}

// TestGoCommandUpstreamFailures: what the go command's user sees when
// sumd's upstream, listed as "<internal proxy>,<file tree>", fails a first
// lookup: a 503 from the proxy is a 502 whose reason the go command shows
// and that names neither the proxy's address nor its URL, and no fall
// through past ","; a .mod that differs from the zip's go.mod is a 410
// "invalid module"; a version the proxy lacks (404) comes from the tree
// after ",". The go command downloads from the tree in each case.
func TestGoCommandUpstreamFailures(t *testing.T) {
	dir := t.TempDir()
	treeDir := filepath.Join(dir, "tree")
	mod := func(path string) testproxy.Module {
		return testproxy.Module{Path: path, Version: "v1.0.0", Files: map[string]string{
			"go.mod": "module " + path + "\n\ngo 1.21\n", "m.go": "package m\n"}}
	}
	down, invalid, elsewhere := mod("example.com/down"), mod("example.com/invalid"), mod("example.com/elsewhere")
	treeURL, err := testproxy.Build(treeDir, []testproxy.Module{down, invalid, elsewhere})
	if err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(treeDir))
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/example.com/down/"):
			http.Error(w, "backend "+r.Host+" is overloaded", http.StatusServiceUnavailable)
		case strings.HasPrefix(r.URL.Path, "/example.com/elsewhere/"):
			http.Error(w, "not found: example.com/elsewhere@v1.0.0: unknown revision", http.StatusNotFound)
		case r.URL.Path == "/example.com/invalid/@v/v1.0.0.mod":
			io.WriteString(w, "module example.com/invalid\n\ngo 1.99\n")
		default:
			files.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(internal.Close)
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-upstream", internal.URL+","+treeURL)

	goGet := func(m testproxy.Module) (string, error) {
		g := testproxy.NewGo(t)
		g.Env = append(g.Env, "GOPROXY="+treeURL, "GOSUMDB="+s.gosumdb)
		return g.Run("get", m.Path+"@"+m.Version)
	}
	internalHost := strings.TrimPrefix(internal.URL, "http://")
	for _, tc := range []struct {
		m    testproxy.Module
		want []string // in the go command's output; none: it succeeds
	}{
		{down, []string{"502 Bad Gateway", "server response: upstream proxy error: example.com/down@v1.0.0: upstream proxy answered 503 Service Unavailable"}},
		{invalid, []string{"410 Gone", "server response: not found: example.com/invalid@v1.0.0: invalid module: go.mod differs from the go.mod in the zip"}},
		{elsewhere, nil},
	} {
		out, err := goGet(tc.m)
		if (err == nil) != (tc.want == nil) {
			t.Errorf("go get %s@%s: %v\n%s", tc.m.Path, tc.m.Version, err, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("go get %s@%s printed\n%s\nwithout %q", tc.m.Path, tc.m.Version, out, w)
			}
		}
		if strings.Contains(out, internalHost) || strings.Contains(out, treeDir) {
			t.Errorf("go get %s@%s printed the upstream's address or path:\n%s", tc.m.Path, tc.m.Version, out)
		}
	}
	if head := get(t, s.url+"/latest"); !strings.HasPrefix(head, "go.sum database tree\n1\n") {
		t.Errorf("tree head %q, want the one version that upstream served", head)
	}
}

// TestGoCommandCrosscheckFallback: with -upstream A|B and A down, sumd
// fetches from B and, as the go command does, finds the checksum database
// it cross-checks with through B: an honest version is recorded, one that
// the database holds with other hashes refused. The discovery stopped at
// A's 503, which failed every cross-check.
func TestGoCommandCrosscheckFallback(t *testing.T) {
	dir := t.TempDir()
	mod := func(path, content string) testproxy.Module {
		return testproxy.Module{Path: path, Version: "v1.0.0", Files: map[string]string{
			"go.mod": "module " + path + "\n\ngo 1.21\n", "m.go": "package m // " + content + "\n"}}
	}
	honest, forged := mod("example.com/honest", "honest"), mod("example.com/forged", "forged")
	treeDir, refTree := filepath.Join(dir, "tree"), filepath.Join(dir, "reftree")
	treeURL, err := testproxy.Build(treeDir, []testproxy.Module{honest, forged})
	if err != nil {
		t.Fatal(err)
	}
	// The reference database, standing in for sum.golang.org, holds the
	// honest version and another build of the forged one.
	if _, err := testproxy.Build(refTree, []testproxy.Module{honest, mod("example.com/forged", "genuine")}); err != nil {
		t.Fatal(err)
	}
	const refName = "ref.e2e.example"
	refVkey := strings.TrimSpace(sumd(t, "keygen", "-name", refName, "-dir", filepath.Join(dir, "refkeys")))
	refKey, refDB := filepath.Join(dir, "refkeys", refName+".key"), filepath.Join(dir, "ref.db")
	for i, m := range []testproxy.Module{honest, forged} {
		mv := module.Version{Path: m.Path, Version: m.Version}
		args := []string{"add", "-db", refDB, "-key", refKey}
		if i == 0 {
			args = append(args, "-create")
		}
		sumd(t, append(args, mv.String(), testproxy.ZipPath(refTree, mv))...)
	}
	ref := startServer(t, "-db", refDB, "-key", refKey)
	refURL, err := url.Parse(ref.url)
	if err != nil {
		t.Fatal(err)
	}

	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	files, toRef := http.FileServer(http.Dir(treeDir)), httputil.NewSingleHostReverseProxy(refURL)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sumdb/") {
			toRef.ServeHTTP(w, r)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)

	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-upstream", down.URL+"|"+up.URL, "-crosscheck", "-crosscheck-key", refVkey, "-crosscheck-state", filepath.Join(dir, "crosscheck-latest"))
	goGet := func(m testproxy.Module) (string, error) {
		g := testproxy.NewGo(t)
		g.Env = append(g.Env, "GOPROXY="+treeURL, "GOSUMDB="+s.gosumdb)
		return g.Run("get", m.Path+"@"+m.Version)
	}
	if out, err := goGet(honest); err != nil {
		t.Fatalf("go get of a version the reference database agrees with: %v\n%s", err, out)
	}
	out, err := goGet(forged)
	if want := "server response: not found: example.com/forged@v1.0.0: checksum mismatch"; err == nil || !strings.Contains(out, want) {
		t.Fatalf("go get of a version the reference database holds with other hashes: %v\n%s\nwant %q", err, out, want)
	}
	if head := get(t, s.url+"/latest"); !strings.HasPrefix(head, "go.sum database tree\n1\n") {
		t.Errorf("tree head %q, want the honest version alone", head)
	}
}
