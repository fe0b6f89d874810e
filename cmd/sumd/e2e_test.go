package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"

	"github.com/sumd-project/sumd/internal/testproxy"
)

const e2eName = "sum.e2e.example"

// special are the module versions whose shapes the go command treats
// specially: escaping, pseudo-versions, +incompatible without go.mod, /v2.
var special = []testproxy.Module{
	{Path: "example.com/plain", Version: "v1.0.0", Files: map[string]string{
		"go.mod": "module example.com/plain\n\ngo 1.21\n", "plain.go": "package plain\n"}},
	{Path: "example.com/Upper/m", Version: "v1.0.0", Files: map[string]string{
		"go.mod": "module example.com/Upper/m\n\ngo 1.21\n", "m.go": "package m\n"}},
	{Path: "example.com/pseudo", Version: "v0.0.0-20240101000000-abcdefabcdef", Files: map[string]string{
		"go.mod": "module example.com/pseudo\n\ngo 1.21\n", "p.go": "package pseudo\n"}},
	{Path: "example.com/old", Version: "v2.0.0+incompatible", Files: map[string]string{
		"old.go": "package old\n"}},
	{Path: "example.com/plain/v2", Version: "v2.1.0", Files: map[string]string{
		"go.mod": "module example.com/plain/v2\n\ngo 1.21\n", "plain.go": "package plain\n"}},
}

// e2eLog is a log with a proxy tree: the special modules, then 300 versions
// of example.com/many, so that the tree spans two full level-0 tiles and
// the go command must read level-1 tiles, with 50 more versions in the
// proxy that are not yet recorded.
type e2eLog struct {
	dir, db, key, vkey string
	proxyDir, proxyURL string
	many               []testproxy.Module
}

func newE2ELog(t *testing.T) *e2eLog {
	dir := t.TempDir()
	e := &e2eLog{dir: dir, db: filepath.Join(dir, "sumd.db"), proxyDir: filepath.Join(dir, "proxy")}
	e.vkey = strings.TrimSpace(sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys")))
	e.key = filepath.Join(dir, "keys", e2eName+".key")
	e.many = testproxy.Versions("example.com/many", 350)
	var err error
	e.proxyURL, err = testproxy.Build(e.proxyDir, append(append([]testproxy.Module{}, special...), e.many...))
	if err != nil {
		t.Fatal(err)
	}
	// The special modules go in one by one from their zips, as an operator
	// would add them, the first one creating the log.
	for i, m := range special {
		args := []string{"add", "-db", e.db, "-key", e.key}
		if i == 0 {
			args = append(args, "-create")
		}
		mv := module.Version{Path: m.Path, Version: m.Version}
		sumd(t, append(args, m.Path+"@"+m.Version, testproxy.ZipPath(e.proxyDir, mv))...)
	}
	e.addGoSum(t, e.many[:300])
	return e
}

// addGoSum records mods through `sumd add -gosum`.
func (e *e2eLog) addGoSum(t *testing.T, mods []testproxy.Module) {
	file := writeFile(t, filepath.Join(e.dir, fmt.Sprintf("%d.sum", len(mods))), goSumFile(t, e.proxyDir, mods))
	sumd(t, "add", "-db", e.db, "-key", e.key, "-gosum", file)
}

func (e *e2eLog) serve(t *testing.T) *sumdServer {
	return startServer(t, "-db", e.db, "-key", e.key)
}

func args(mods ...testproxy.Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Path+"@"+m.Version)
	}
	return out
}

func download(t *testing.T, g *testproxy.Go, mods ...testproxy.Module) {
	t.Helper()
	if out, err := g.Run(append([]string{"mod", "download"}, args(mods...)...)...); err != nil {
		t.Fatalf("go mod download failed: %v\n%s", err, out)
	}
}

// TestGoCommand is the proof that sumd is a checksum database the go
// command accepts: it downloads every special module and versions spread
// over two tiles through sumd, keeps accepting it across a restart with a
// grown tree, detects a tampered zip, and finds sumd through GOPROXY.
func TestGoCommand(t *testing.T) {
	e := newE2ELog(t)
	s := e.serve(t)
	if want := e.vkey + " " + s.url; s.gosumdb != want {
		t.Fatalf("sumd serve printed GOSUMDB %q, want %q", s.gosumdb, want)
	}
	g := testproxy.NewGo(t)
	g.Env = append(g.Env, "GOPROXY="+e.proxyURL, "GOSUMDB="+s.gosumdb)
	download(t, g, special...)
	download(t, g, e.many[0], e.many[255], e.many[256], e.many[299])

	top := t
	t.Run("restart", func(t *testing.T) {
		// The client keeps the tree it saw in $GOPATH/pkg/sumdb; after a
		// restart with a grown tree it must verify that the new tree
		// extends it, from old partial tiles.
		s.stop()
		e.addGoSum(t, e.many[300:])
		s = e.serve(top) // outlives this subtest
		g.Env = append(g.Env, "GOSUMDB="+s.gosumdb)
		if err := g.CleanModCache(); err != nil {
			t.Fatal(err)
		}
		download(t, g, e.many[1], e.many[320], e.many[349])
		download(t, g, special[0])
	})

	t.Run("unknown version", func(t *testing.T) {
		mods := testproxy.Versions("example.com/unrecorded", 1)
		if _, err := testproxy.Build(e.proxyDir, mods); err != nil {
			t.Fatal(err)
		}
		out, err := g.Run("mod", "download", args(mods...)[0])
		if err == nil || !strings.Contains(out, "not found: example.com/unrecorded@v1.0.0") {
			t.Fatalf("go mod download of an unrecorded version: %v\n%s\nwant failure showing sumd's 404 reason", err, out)
		}
	})

	t.Run("tampered zip", func(t *testing.T) {
		fresh := testproxy.NewGo(t)
		fresh.Env = append(fresh.Env, "GOPROXY="+e.proxyURL, "GOSUMDB="+s.gosumdb)
		m := module.Version{Path: "example.com/plain/v2", Version: "v2.1.0"}
		if err := testproxy.TamperZip(e.proxyDir, m); err != nil {
			t.Fatal(err)
		}
		out, err := fresh.Run("mod", "download", m.Path+"@"+m.Version)
		want := "example.com/plain/v2@v2.1.0: verifying module: checksum mismatch"
		if err == nil || !strings.Contains(out, want) || !strings.Contains(out, e2eName+": h1:") {
			t.Fatalf("go mod download of a tampered zip: %v\n%s\nwant %q against %s's hash", err, out, want, e2eName)
		}
	})

	t.Run("GOPROXY discovery", func(t *testing.T) {
		// No URL in GOSUMDB: the go command asks the first GOPROXY entry
		// (sumd) for /sumdb/<name>/supported and sends every sumdb request
		// there, and falls through to the real proxy for module files.
		fresh := testproxy.NewGo(t)
		fresh.Env = append(fresh.Env, "GOPROXY="+s.url+","+e.proxyURL, "GOSUMDB="+e.vkey)
		download(t, fresh, special[0], special[1], e.many[300])
		if !strings.Contains(s.stderr.String(), "/sumdb/"+e2eName+"/lookup/") {
			t.Errorf("sumd logged no lookup under /sumdb/%s/; stderr:\n%s", e2eName, s.stderr)
		}
	})
}
