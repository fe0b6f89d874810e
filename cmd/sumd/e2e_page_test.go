package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sumd-project/sumd/internal/testenv"
	"github.com/sumd-project/sumd/internal/testproxy"
)

// The status page in a real browser: headless Chromium (Debian's chromium
// package), driven by chromedp, against the sumd binary serving a few
// thousand records. chromedp is imported here only, so that no package
// whose tests run often pays for it.

// pageRecords is how many records the browser's log holds.
const pageRecords = 3000

// findChromium returns the Chromium binary, or ends the test as testenv
// does: a skip locally, a failure in CI.
func findChromium(t *testing.T) string {
	t.Helper()
	var err error
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		var path string
		if path, err = exec.LookPath(name); err == nil {
			return path
		}
	}
	testenv.Need(t, "Chromium (Debian package chromium)", err)
	return ""
}

// browser starts a headless Chromium with a fresh profile, the flags of
// the machine notes (no network of its own, nothing in the background),
// and returns a context driving one tab. On failure, the test writes a
// screenshot of the tab; see screenshotOnFailure.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(findChromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	t.Cleanup(func() { screenshotOnFailure(t, tab) })
	return tab
}

// screenshotOnFailure writes the tab as a PNG if the test failed, to
// $SUMD_TEST_ARTIFACTS (CI can keep it) or a directory under the system's
// temporary directory, and logs where.
func screenshotOnFailure(t *testing.T, tab context.Context) {
	if !t.Failed() {
		return
	}
	dir := os.Getenv("SUMD_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "sumd-test-artifacts")
	}
	ctx, cancel := context.WithTimeout(tab, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("no screenshot: %v", err)
		return
	}
	file := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = os.WriteFile(file, png, 0o644)
	}
	t.Logf("screenshot of the failure: %s", file)
}

// text returns the visible text of the element sel selects.
func text(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

// target is the module the browser looks for: a long path, as real ones
// are, that a phone's screen must wrap.
const target = "example.com/platformengineering/internaltools/target"

// pageGoSum is a go.sum of n records over 60 modules, and 3 versions of
// target whose ids are n .. n+2.
func pageGoSum(n int) []byte {
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "h1:" + base64.StdEncoding.EncodeToString(sum[:])
	}
	var b strings.Builder
	line := func(path, version string) {
		fmt.Fprintf(&b, "%s %s %s\n%s %s/go.mod %s\n", path, version, hash(path+version), path, version, hash(path+version+"/go.mod"))
	}
	for i := range n {
		line(fmt.Sprintf("example.com/lib%02d", i%60), fmt.Sprintf("v1.%d.0", i))
	}
	for _, v := range []string{"v1.0.0", "v1.2.0", "v1.10.0"} {
		line(target, v)
	}
	return []byte(b.String())
}

// TestStatusPageInBrowser loads the page, searches a module, follows the
// link to one of its versions and checks the record and its verified
// inclusion proof; then checks the page fits a phone's width.
func TestStatusPageInBrowser(t *testing.T) {
	testenv.SkipShort(t, "a browser test")
	tab := browser(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "sumd.db")
	sumd(t, "keygen", "-name", e2eName, "-dir", filepath.Join(dir, "keys"))
	key := filepath.Join(dir, "keys", e2eName+".key")
	gosumFile := writeFile(t, filepath.Join(dir, "seed.sum"), pageGoSum(pageRecords))
	sumd(t, "add", "-create", "-db", db, "-key", key, "-gosum", gosumFile)
	s := startServer(t, "-db", db, "-key", key)

	if err := chromedp.Do(tab,
		chromedp.Navigate(s.url+"/"),
		chromedp.WaitVisible(chromedp.CSS("#tree-size")),
	); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	size, health, recent := text(t, tab, "#tree-size"), text(t, tab, "#health"), text(t, tab, "#recent")
	if want := strconv.Itoa(pageRecords + 3); size != want || health != "ok" {
		t.Errorf("page shows tree size %q and health %q, want %s and ok", size, health, want)
	}
	if !strings.Contains(recent, target) || !strings.Contains(recent, strconv.Itoa(pageRecords+2)) {
		t.Errorf("latest records lack the newest one:\n%s", recent)
	}

	if err := chromedp.Do(tab,
		chromedp.SendKeys(chromedp.CSS("#q"), target),
		chromedp.Submit(chromedp.CSS("#q")),
		chromedp.WaitVisible(chromedp.CSS("#versions")),
	); err != nil {
		t.Fatalf("searching: %v", err)
	}
	versions := text(t, tab, "#versions")
	i10, i2, i0 := strings.Index(versions, "v1.10.0"), strings.Index(versions, "v1.2.0"), strings.Index(versions, "v1.0.0")
	if i10 < 0 || i2 < 0 || i0 < 0 || !(i10 < i2 && i2 < i0) {
		t.Errorf("versions of the target, want v1.10.0, v1.2.0, v1.0.0 newest first:\n%s", versions)
	}

	// sumd add -gosum gives ids in key order (v1.10.0 before v1.2.0): ask.
	id := int(lookupID(t, s.url, testproxy.Module{Path: target, Version: "v1.2.0"}))
	if err := chromedp.Do(tab,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#versions a[href="record?id=%d"]`, id))),
		chromedp.WaitVisible(chromedp.CSS("#proof-status")),
	); err != nil {
		t.Fatalf("following the link to a version: %v", err)
	}
	url, err := chromedp.Run(tab, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	tiles, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll("#tiles a").length`))
	if err != nil {
		t.Fatal(err)
	}
	recordID, gosumLines, proof := text(t, tab, "#record-id"), text(t, tab, "#gosum"), text(t, tab, "#proof-status")
	if !strings.HasSuffix(url, fmt.Sprintf("/record?id=%d", id)) || recordID != strconv.Itoa(id) {
		t.Errorf("followed to %s showing record %q, want record %d", url, recordID, id)
	}
	if !strings.HasPrefix(gosumLines, target+" v1.2.0 h1:") || !strings.Contains(gosumLines, target+" v1.2.0/go.mod h1:") {
		t.Errorf("record page shows go.sum lines %q", gosumLines)
	}
	// 3003 records: the proof reads a level-0 tile and the level-1 tile.
	if !strings.HasPrefix(proof, "✓") || tiles < 2 {
		t.Errorf("proof status %q with %d tiles, want verified, from two tiles or more", proof, tiles)
	}

	// A phone: nothing wider than the screen but what scrolls in its box.
	if err := chromedp.Do(tab, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"/", "/module?path=" + target, fmt.Sprintf("/record?id=%d", id)} {
		if err := chromedp.Do(tab,
			chromedp.Navigate(s.url+page),
			chromedp.WaitVisible(chromedp.CSS("footer")),
		); err != nil {
			t.Fatalf("loading %s as a phone: %v", page, err)
		}
		// Not window.innerWidth: a mobile browser widens its viewport to
		// fit what overflows.
		width, err := chromedp.Run(tab, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if width > 390 {
			t.Errorf("%s is %d px wide, more than a 390 px phone screen", page, width)
		}
	}
}
