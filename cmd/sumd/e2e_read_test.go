package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testproxy"
)

var readListenerURL = regexp.MustCompile(`msg="serving the checksum database protocol on a read listener too" url=(\S+)`)

// TestGoCommandReadListener is the proof of -read-listen with the real go
// command: through the read listener alone it verifies downloads across
// two tiles (level-1 tiles included), records first lookups from the
// upstream proxy, and finds the database through GOPROXY discovery, falling
// through to the real proxy on the read listener's 404s; the main listener
// serves the same log.
func TestGoCommandReadListener(t *testing.T) {
	e := newE2ELog(t)
	s := startServer(t, "-db", e.db, "-key", e.key, "-upstream", e.proxyURL, "-read-listen", "127.0.0.1:0")
	var read string
	for deadline := time.Now().Add(5 * time.Second); read == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := readListenerURL.FindStringSubmatch(s.stderr.String()); m != nil {
			read = m[1]
		}
	}
	if read == "" || read == s.url {
		t.Fatalf("read listener URL %q (main %s); stderr:\n%s", read, s.url, s.stderr)
	}

	t.Run("GOSUMDB", func(t *testing.T) {
		g := testproxy.NewGo(t)
		g.Env = append(g.Env, "GOPROXY="+e.proxyURL, "GOSUMDB="+e.vkey+" "+read)
		download(t, g, special...)
		download(t, g, e.many[0], e.many[255], e.many[256], e.many[299])
		download(t, g, e.many[300]) // a first lookup, recorded from upstream
	})
	t.Run("sumd verify -full", func(t *testing.T) {
		// An auditor reads every record from the data tiles, the full one
		// sent with sendfile from a memory file on Linux, and rebuilds the
		// signed tree from them: the bytes are the log's.
		out, errOut, err := sumdRun(t, "verify", "-url", read, "-key", e.vkey, "-full")
		if err != nil {
			t.Fatalf("sumd verify -full through the read listener: %v\n%s\n%s", err, out, errOut)
		}
		if !strings.Contains(out+errOut, "records") {
			t.Errorf("sumd verify -full said nothing of the records it read:\n%s\n%s", out, errOut)
		}
	})
	t.Run("GOPROXY discovery", func(t *testing.T) {
		g := testproxy.NewGo(t)
		g.Env = append(g.Env, "GOPROXY="+read+","+e.proxyURL, "GOSUMDB="+e.vkey)
		download(t, g, special[1], e.many[1], e.many[301])
		if !strings.Contains(s.stderr.String(), "path=/sumdb/"+e2eName+"/lookup/example.com/many@"+e.many[301].Version) {
			t.Errorf("sumd logged no lookup under /sumdb/%s/; stderr:\n%s", e2eName, s.stderr)
		}
	})
	t.Run("tampered zip", func(t *testing.T) {
		g := testproxy.NewGo(t)
		g.Env = append(g.Env, "GOPROXY="+e.proxyURL, "GOSUMDB="+e.vkey+" "+read)
		m := e.many[299]
		if err := testproxy.TamperZip(e.proxyDir, module.Version{Path: m.Path, Version: m.Version}); err != nil {
			t.Fatal(err)
		}
		out, err := g.Run("mod", "download", m.Path+"@"+m.Version)
		if err == nil || !strings.Contains(out, "verifying module: checksum mismatch") {
			t.Fatalf("go mod download of a tampered zip through the read listener: %v\n%s\nwant a checksum mismatch", err, out)
		}
	})
	// Two first lookups: the main listener serves the same grown log.
	if head := get(t, s.url+"/latest"); !strings.HasPrefix(head, "go.sum database tree\n307\n") {
		t.Errorf("main listener's tree head %q, want 307 records", head)
	}
	if head, main := get(t, read+"/latest"), get(t, s.url+"/latest"); head != main {
		t.Errorf("read listener's /latest %q, main's %q", head, main)
	}
}
