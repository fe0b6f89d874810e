package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sumd-project/sumd/internal/testenv"
)

// TestSharedCache puts a real nginx with proxy_cache in front of two sumds,
// as a site may put a CDN or a caching proxy: one behind basic
// authentication, one anonymous. nginx keys its cache on the URL alone and
// keeps any answer marked public, whoever asked. A reader's lookup must not
// reach an anonymous client or a reader limited to other modules through
// it; the anonymous sumd's answers are still cached (which shows the cache
// works, so the first part can fail).
func TestSharedCache(t *testing.T) {
	nginx := testenv.LookPath(t, "nginx")
	a := newAccessSite(t)
	dir := t.TempDir()
	sumd(t, "keygen", "-name", "open.example", "-dir", filepath.Join(dir, "keys"))
	open := startServer(t, "-create", "-db", filepath.Join(dir, "open.db"), "-key", filepath.Join(dir, "keys", "open.example.key"),
		"-upstream", a.proxyURL)

	// nginx takes its listening socket from the test, bound to a port
	// the system chose, through the NGINX variable (its way of handing
	// sockets to a new binary on upgrade), so that no other process can
	// take the port between its choice and nginx's start.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	addr := ln.Addr().String()
	conf := filepath.Join(dir, "nginx.conf")
	user := ""
	if os.Getuid() == 0 {
		user = "user root root;\n" // the workers read the test's directories, which are root's
	}
	writeFile(t, conf, fmt.Appendf(nil, `%sworker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	proxy_cache_path %[2]s/cache keys_zone=sumd:1m;
	server {
		listen %[3]s;
		proxy_cache sumd;
		add_header X-Cache-Status $upstream_cache_status always;
		location /open/ { proxy_pass %[4]s/; }
		location / { proxy_pass %[5]s; }
	}
}
`, user, dir, addr, open.url, a.s.url))
	cmd := exec.Command(nginx, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.ExtraFiles = []*os.File{sock} // descriptor 3
	cmd.Env = append(os.Environ(), "NGINX=3;")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // the master stops its workers
		cmd.Wait()
	})
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second}

	get := func(path, user string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, user+"-pw")
		}
		var resp *http.Response
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if resp, err = client.Do(req); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			data, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx: %v\n%s", err, data)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Cache-Status"), string(body)
	}

	// example.com/Upper/m: recorded by dev's lookup; team may read only
	// example.com/plain.
	lookup := "/lookup/example.com/!upper/m@v1.0.0"
	for _, path := range []string{lookup, "/latest"} {
		if code, _, body := get(path, "dev"); code != 200 {
			t.Fatalf("dev's GET %s through nginx: %d %q", path, code, body)
		}
		for _, user := range []string{"", "team"} {
			want := 401
			if user == "team" {
				want = 404
				if path == "/latest" {
					want = 200 // a tree head is every reader's
				}
			}
			if code, cache, body := get(path, user); code != want || cache == "HIT" {
				t.Errorf("GET %s as %q through nginx after dev's: %d (cache %s) %q; want %d from sumd", path, user, code, cache, body, want)
			}
		}
	}
	if code, cache, body := get("/open"+lookup, ""); code != 200 || cache == "HIT" {
		t.Fatalf("GET /open%s: %d (cache %s) %q", lookup, code, cache, body)
	}
	if code, cache, body := get("/open"+lookup, ""); code != 200 || cache != "HIT" {
		t.Errorf("GET /open%s again: %d (cache %s) %q; want 200 from nginx's cache", lookup, code, cache, body)
	}
}
