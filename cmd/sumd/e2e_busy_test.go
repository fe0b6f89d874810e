package main

import (
	"context"
	"io"
	"net"
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

// TestPerClientFetches: with -upstream-per-client 1 and one lookup of
// 127.0.0.1 waiting for a held fetch, that address's lookup of another
// version gets 503 with the reason, while 127.0.0.2's is served: the
// client is the connection's peer, as the access layer saw it.
func TestPerClientFetches(t *testing.T) {
	dir := t.TempDir()
	proxyDir := filepath.Join(dir, "proxy")
	held := testproxy.Module{Path: "example.com/held", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/held\n"}}
	other := testproxy.Module{Path: "example.com/other", Version: "v1.0.0", Files: map[string]string{"go.mod": "module example.com/other\n"}}
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
	defer close(release)

	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	s := startServer(t, "-create", "-db", filepath.Join(dir, "sumd.db"), "-key", filepath.Join(dir, "keys", e2eName+".key"),
		"-upstream", proxy.URL, "-upstream-per-client", "1")
	go http.Get(s.url + "/lookup/example.com/held@v1.0.0")
	<-holding

	from := func(ip string) (int, string) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
		resp, err := c.Get(s.url + "/lookup/example.com/other@v1.0.0")
		if err != nil {
			t.Fatalf("cannot connect from %s (Linux routes all of 127.0.0.0/8 to loopback): %v", ip, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := from("127.0.0.1"); code != http.StatusServiceUnavailable || !strings.Contains(body, "for this client at once") {
		t.Errorf("the busy client's second lookup: %d %q, want 503 for this client", code, body)
	}
	if code, body := from("127.0.0.2"); code != http.StatusOK {
		t.Errorf("another client's lookup: %d %q, want 200", code, body)
	}
	if m := get(t, s.url+"/metrics"); !strings.Contains(m, "sumd_upstream_client_fetches_refused_total 1\n") {
		t.Errorf("metrics lack the refusal:\n%s", grepLines(m, "sumd_upstream_client"))
	}
}
