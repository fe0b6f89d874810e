package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sumd-project/sumd/internal/testproxy"
)

// TestGoCommandBusy: with -upstream-parallel 1 and the one fetch held by
// the proxy, the go command's first lookup of another version fails with
// sumd's reason; once the fetch ends, the same command succeeds.
func TestGoCommandBusy(t *testing.T) {
	dir := t.TempDir()
	proxyDir := filepath.Join(dir, "proxy")
	held := testproxy.Module{Path: "example.com/held", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/held\n"}}
	other := testproxy.Module{Path: "example.com/other", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/other\n", "o.go": "package other\n"}}
	if _, err := testproxy.Build(proxyDir, []testproxy.Module{held, other}); err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(proxyDir))
	release, holding := make(chan struct{}), make(chan struct{}, 1)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/example.com/held/@v/v1.0.0.zip") {
			holding <- struct{}{}
			<-release
		}
		files.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	releaseOnce := func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}
	defer releaseOnce()

	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-upstream", proxy.URL, "-upstream-parallel", "1")
	heldDone := make(chan string, 1)
	go func() { heldDone <- getStatus(t, s.url+"/lookup/example.com/held@v1.0.0").body }()
	<-holding

	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+proxy.URL, "GOSUMDB="+s.gosumdb)
	out, err := g.Run("mod", "download", "example.com/other@v1.0.0")
	if err == nil || !strings.Contains(out, "too many new versions are being fetched from upstream at once; try again in a moment") {
		t.Fatalf("go mod download while the only fetch slot is taken: %v\n%s", err, out)
	}
	t.Logf("the go command says:\n%s", out)
	releaseOnce()
	if body := <-heldDone; !strings.HasPrefix(body, "0\n") {
		t.Fatalf("the held lookup answered %q", body)
	}
	if out, err := g.Run("mod", "download", "example.com/other@v1.0.0"); err != nil {
		t.Fatalf("go mod download once the slot is free: %v\n%s", err, out)
	}
	if m := get(t, s.url+"/metrics"); !strings.Contains(m, "sumd_upstream_lookup_fetches_refused_total 1\n") {
		t.Errorf("metrics lack the refusal:\n%s", grepLines(m, "sumd_upstream_lookup"))
	}
}
