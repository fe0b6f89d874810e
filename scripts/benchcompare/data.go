package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// writeGoSum writes n records as go.sum lines: example.com/load/m<i/1000>
// at v1.0.<i%1000>, the names scripts/load and the lookup paths use, with
// made-up but well-formed hashes. shuffle writes them in random order.
func writeGoSum(file string, n int, shuffle bool) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	order := func(i int) int { return i }
	if shuffle {
		perm := rand.New(rand.NewPCG(1, 2)).Perm(n)
		order = func(i int) int { return perm[i] }
	}
	for i := range n {
		j := order(i)
		p, v := fmt.Sprintf("example.com/load/m%d", j/1000), fmt.Sprintf("v1.0.%d", j%1000)
		fmt.Fprintf(w, "%s %s %s\n%s %s/go.mod %s\n", p, v, fakeHash(p+v), p, v, fakeHash(p+v+"/go.mod"))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fakeHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
}

// lookupPaths lists the lookups of n random records of a log of size records.
func lookupPaths(records, n int) []string {
	r := rand.New(rand.NewPCG(3, 4))
	paths := make([]string, n)
	for i := range paths {
		j := r.IntN(records)
		paths[i] = fmt.Sprintf("/lookup/example.com/load/m%d@v1.0.%d", j/1000, j%1000)
	}
	return paths
}

// tilePaths lists the full tiles of level 0 (hash tiles) or the full data
// tiles (data) of a log of size records.
func tilePaths(records int, data bool) []string {
	var paths []string
	for n := range int64(records / 256) {
		t := tlog.Tile{H: 8, L: 0, N: n, W: 256}
		if data {
			t.L = -1
		}
		paths = append(paths, "/"+t.Path())
	}
	return paths
}

// exportTiles copies the tiles at paths from the server at url into dir,
// as files at the same paths, for nginx to serve.
func exportTiles(url, dir string, paths []string) error {
	for _, p := range paths {
		resp, err := http.Get(url + p)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %v %s", p, err, resp.Status)
		}
		file := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// firstPath is the i'th module of the generated GOPROXY tree; scripts/load
// names them alike.
func firstPath(i int) string { return fmt.Sprintf("example.com/first/m%d", i) }

// writeProxyTree writes n module versions example.com/first/m<i>@v1.0.0
// as a GOPROXY file tree under dir: small modules (a go.mod, a source
// file, a test and a README, about 2 KB zipped), as first lookups and
// uploads record them.
func writeProxyTree(dir string, n int) error {
	source := strings.Repeat("// Package m is generated for make bench-compare.\n", 20)
	for i := range n {
		p := firstPath(i)
		vdir := filepath.Join(dir, filepath.FromSlash(p), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return err
		}
		goMod := fmt.Sprintf("module %s\n\ngo 1.21\n", p)
		files := map[string]string{
			"go.mod":    goMod,
			"m.go":      fmt.Sprintf("%spackage m\n\nconst N = %d\n", source, i),
			"m_test.go": "package m\n\nimport \"testing\"\n\nfunc TestN(t *testing.T) {}\n",
			"README.md": strings.Repeat(fmt.Sprintf("Module %d of the bench-compare proxy tree.\n", i), 20),
		}
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		for _, name := range []string{"README.md", "go.mod", "m.go", "m_test.go"} {
			w, err := zw.Create(p + "@v1.0.0/" + name)
			if err != nil {
				return err
			}
			io.WriteString(w, files[name])
		}
		if err := zw.Close(); err != nil {
			return err
		}
		for name, data := range map[string][]byte{
			"v1.0.0.zip":  buf.Bytes(),
			"v1.0.0.mod":  []byte(goMod),
			"v1.0.0.info": []byte(`{"Version":"v1.0.0","Time":"2024-01-01T00:00:00Z"}`),
			"list":        []byte("v1.0.0\n"),
		} {
			if err := os.WriteFile(filepath.Join(vdir, name), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeLines writes one path per line.
func writeLines(file string, lines []string) error {
	return os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}
