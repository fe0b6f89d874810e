package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestPublishConcurrentList: sumd add -proxy-dir read the version list of
// the GOPROXY tree, added its version and wrote the list back with no
// lock, so two runs publishing versions of one module at once could each
// write a list without the other's version, which the go command then
// never lists. Runs now hold a lock on the tree while they publish: every
// version of many runs at once ends up listed.
func TestPublishConcurrentList(t *testing.T) {
	const n = 24
	src := t.TempDir()
	for name, data := range map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var mods []*moduleSource
	for i := range n {
		s, err := openModule(fmt.Sprintf("example.com/m@v1.0.%d", i), src)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		mods = append(mods, s)
	}
	for round := range 5 {
		dir := filepath.Join(t.TempDir(), "proxy")
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i, s := range mods {
			wg.Go(func() { errs[i] = publish(dir, s, io.Discard) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("publish v1.0.%d: %v", i, err)
			}
		}
		list, err := os.ReadFile(filepath.Join(dir, "example.com", "m", "@v", "list"))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(strings.Fields(string(list))); got != n {
			t.Fatalf("round %d: %d versions published at once, %d listed:\n%s", round, n, got, list)
		}
	}
}
