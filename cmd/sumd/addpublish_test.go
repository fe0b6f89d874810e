//go:build unix

package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/module"
)

// TestPublishConcurrentList: sumd add -proxy-dir read the version list of
// the GOPROXY tree, added its version and wrote the list back with no
// lock, so two runs publishing versions of one module at once could each
// write a list without the other's version, which the go command then
// never lists. Runs now hold a lock on the tree while they publish: a run
// held inside (publishInside) keeps another out until it is done, and
// both versions end up listed.
func TestPublishConcurrentList(t *testing.T) {
	src := t.TempDir()
	for name, data := range map[string]string{"go.mod": "module example.com/m\n", "m.go": "package m\n"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var mods []*moduleSource
	for _, v := range []string{"v1.0.0", "v1.0.1"} {
		s, err := openModule("example.com/m@"+v, src)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		mods = append(mods, s)
	}
	dir := filepath.Join(t.TempDir(), "proxy")
	inside, release := make(chan module.Version, 2), make(chan struct{})
	waiting := make(chan struct{}, 1)
	publishInside = func(m module.Version) {
		inside <- m
		if m == mods[0].m {
			<-release
		}
	}
	proxyLockWaiting = func() { waiting <- struct{}{} }
	defer func() { publishInside, proxyLockWaiting = nil, nil }()
	errs := make([]error, len(mods))
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = publish(dir, mods[0], io.Discard) })
	<-inside // the first run holds the lock, publishing
	wg.Go(func() { errs[1] = publish(dir, mods[1], io.Discard) })
	select {
	case <-waiting:
	case m := <-inside:
		t.Errorf("%s was published while %s was", m, mods[0].m)
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("publish %s: %v", mods[i].m, err)
		}
	}
	list, err := os.ReadFile(filepath.Join(dir, "example.com", "m", "@v", "list"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(list)); len(got) != len(mods) {
		t.Errorf("%d versions published at once, %d listed:\n%s", len(mods), len(got), list)
	}
}
