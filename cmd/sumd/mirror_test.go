package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sumd-project/sumd/internal/sumdbclient"
)

// TestOriginIsSumGolangOrg: the origins a new mirror without -origin-key
// may follow with sum.golang.org's built-in key are sum.golang.org itself
// and a proxy relaying it; any other gets the built-in key only by mistake.
func TestOriginIsSumGolangOrg(t *testing.T) {
	for url, want := range map[string]bool{
		"https://sum.golang.org":                         true,
		"https://sum.golang.org/":                        true,
		"https://SUM.golang.org:443":                     true,
		"https://proxy.golang.org/sumdb/sum.golang.org":  true,
		"https://athens.corp/sumdb/sum.golang.org/":      true,
		"https://sum.golang.google.cn":                   true,
		"http://127.0.0.1:8080":                          false,
		"https://sumd.corp.example/sumdb/sumd.local":     false,
		"https://sum.golang.org.evil.example":            false,
		"https://corp.example/sumdb/sum.golang.org/more": false,
	} {
		if got := originIsSumGolangOrg(url); got != want {
			t.Errorf("originIsSumGolangOrg(%q) = %v, want %v", url, got, want)
		}
	}
}

// TestMirrorInterruptedHint: a round interrupted (SIGINT, SIGTERM) while
// it waited on the origin fails with a *sumdbclient.FetchError of no
// status wrapping context.Canceled, which mirrorError sorted as an
// origin out of reach: exit 2 and "check -origin and that the origin is
// reachable", for a run the user stopped.
func TestMirrorInterruptedHint(t *testing.T) {
	for _, err := range []error{
		&sumdbclient.FetchError{Path: "/latest", Err: &url.Error{Op: "Get", URL: "https://origin.example/latest", Err: context.Canceled}},
		&sumdbclient.FetchError{Path: "/tile/8/0/000", Status: 503, Err: context.Canceled}, // cancelled in the wait before a retry
		context.Canceled,
	} {
		var ce *cliError
		if !errors.As(mirrorError(err, "mirror.db"), &ce) || ce.code != 1 || strings.Contains(ce.hint, "reachable") || !strings.Contains(ce.hint, "interrupted") {
			t.Errorf("mirrorError(%v) = %v; want exit 1 and a hint that the run was interrupted", err, mirrorError(err, "mirror.db"))
		}
	}
}

// TestMirrorLowDisk: sumd mirror on an existing mirror stopped mid-round
// by -min-free-disk got no hint at all (mirrorError knew no low disk);
// it is told to free space on the mirror's disk or lower -min-free-disk,
// as sumd mirror import is (TestImportLowDisk), and the next run with
// the room resumes.
func TestMirrorLowDisk(t *testing.T) {
	dir, key, db, m := restoreFixture(t)
	var buf bytes.Buffer
	for _, r := range syntheticRecords(20, 10) {
		buf.Write(r.Text())
	}
	sumd(t, "add", "-db", db, "-key", key, "-gosum", writeFile(t, filepath.Join(dir, "more.sum"), buf.Bytes()))
	p := startServer(t, "-db", db, "-key", key)
	defer p.stop()
	_, errOut, err := sumdRun(t, "mirror", "-mirror", m, "-origin", p.url, "-min-free-disk", "100000000")
	if err == nil || !strings.Contains(errOut, "hint: ") || !strings.Contains(errOut, "lower -min-free-disk") || !strings.Contains(errOut, filepath.Dir(m)) {
		t.Errorf("mirror under -min-free-disk: %v\n%s\nwant a hint to free space in %s or lower -min-free-disk", err, errOut, filepath.Dir(m))
	}
	if out := sumd(t, "mirror", "-mirror", m, "-origin", p.url); !strings.Contains(out, "tree 30 (was 20)") {
		t.Errorf("the same mirror run with the room printed %q", out)
	}
	// A full disk (no floor) got no hint at all.
	var ce *cliError
	if err := fmt.Errorf("failed to commit: %w", syscall.ENOSPC); !errors.As(mirrorError(err, m), &ce) || !strings.Contains(ce.hint, "is full") || !strings.Contains(ce.hint, filepath.Dir(m)) {
		t.Errorf("mirrorError(%v) = %v; want a hint that the disk of %s is full", err, mirrorError(err, m), filepath.Dir(m))
	}
}

// TestMirrorExclusionsOnly: a -modules list of "!" entries alone, meant to
// keep the private modules out of a full mirror, is refused as empty
// (usage, exit 2) with a hint saying that "!" entries only exclude from
// what the list selects, and that a full mirror takes no -modules, where
// the hint named go.sum files and patterns as if the list had none.
func TestMirrorExclusionsOnly(t *testing.T) {
	mdb := filepath.Join(t.TempDir(), "m.db")
	_, errOut, err := sumdRun(t, "mirror", "-mirror", mdb, "-origin", "http://127.0.0.1:1", "-modules", "!corp.example/*")
	_, hint, _ := strings.Cut(errOut, "hint:")
	if statusOf(err) != 2 || !strings.Contains(hint, "only exclude") || !strings.Contains(hint, "full mirror") {
		t.Errorf("sumd mirror -modules '!corp.example/*': %v\n%s\nwant exit 2 and a hint that '!' entries only exclude", err, errOut)
	}
	if _, err := os.Stat(mdb); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused sumd mirror left %s: %v", mdb, err)
	}
}

// TestMirrorGoSumGoneHint: a run of a partial mirror whose remembered
// go.sum file cannot be read any more (moved, removed) follows the origin
// and then fails with a hint naming -modules, where it gave none.
func TestMirrorGoSumGoneHint(t *testing.T) {
	dir := t.TempDir()
	vkey, key, db := syntheticLog(t, dir, "sumd.db", 20)
	p := startServer(t, "-db", db, "-key", key)
	gs := writeFile(t, filepath.Join(dir, "app.sum"), syntheticRecords(0, 1)[0].Text())
	mdb := filepath.Join(dir, "m.db")
	mirrorOf(t, mdb, p.url, vkey, "-modules", gs)
	if err := os.Remove(gs); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := sumdRun(t, "mirror", "-mirror", mdb)
	_, hint, _ := strings.Cut(errOut, "hint:")
	if err == nil || !strings.Contains(hint, "-modules") {
		t.Errorf("sumd mirror with its go.sum file removed: %v\n%s\nwant a hint naming -modules", err, errOut)
	}
}
